"""Calendar subscriptions (iCalendar, RFC 5545): the plan of the organisation or of one column, so
editors see it in Outlook, Google Calendar or Apple Calendar.

UIDs never change for the same thing (an item keeps its UID however often it moves, a slot is named
by its column and time), so calendar apps update events instead of duplicating them. Times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from . import schedule
from .extensions import db
from .models import Column, Delivery, Item, utcnow

EVENT_LENGTH = timedelta(minutes=30)
PAST = timedelta(days=180)  # planned items this far back stay visible, so last month's plan can be checked
SLOTS_AHEAD = timedelta(days=60)
PREDICTED = timedelta(days=400)  # how far ahead unpublished items get a predicted issue number
STATUS_WORDS = {"draft": _l("Draft"), "in_review": _l("In review"), "approved": _l("Approved"),
                "scheduled": _l("Scheduled"), "published": _l("Published")}


def _host(base_url: str) -> str:
    return urlparse(base_url).hostname or "localhost"


def item_summary(item: Item, predicted: dict[int, int]) -> str:
    """ "column · No. N · title": the final number once published, else the one its slot predicts."""
    parts = [item.column.name] if item.column else []
    number = item.issue_number or predicted.get(item.id)
    if number is not None:
        parts.append(_("No. %(number)d", number=number))
    parts.append(item.title)
    return " · ".join(parts)


def _item_event(item: Item, predicted: dict[int, int], base_url: str, host: str, stamp: datetime) -> Event:
    channels = sorted({d.channel.name for d in item.deliveries})
    if not channels and item.column is not None:  # not planned on channels yet: the column's defaults
        channels = [c.name for c in item.column.default_channels]
    event = Event()
    event.add("uid", f"item-{item.id}@{host}")
    event.add("dtstamp", stamp)
    event.add("dtstart", item.planned_at.astimezone(UTC))
    event.add("dtend", item.planned_at.astimezone(UTC) + EVENT_LENGTH)
    event.add("summary", item_summary(item, predicted))
    event.add("url", f"{base_url}/items/{item.id}")
    event.add("description", "\n".join([
        _("Status: %(status)s", status=STATUS_WORDS.get(item.status, item.status)),
        _("Channels: %(channels)s", channels=", ".join(channels) or "—"),
        f"{base_url}/items/{item.id}",
    ]))
    event.add("last-modified", item.updated_at.astimezone(UTC))
    return event


def _slot_event(column: Column, slot: schedule.Slot, base_url: str, host: str, stamp: datetime) -> Event:
    title = _("Open slot: %(column)s No. %(number)d", column=column.name, number=slot.issue_number)
    event = Event()
    event.add("uid", f"slot-{column.id}-{slot.at.astimezone(UTC):%Y%m%dT%H%M%SZ}@{host}")
    event.add("dtstamp", stamp)
    event.add("dtstart", slot.at.astimezone(UTC))
    event.add("dtend", slot.at.astimezone(UTC) + EVENT_LENGTH)
    event.add("summary", f"{title} · {slot.theme}" if slot.theme else title)
    event.add("url", f"{base_url}/columns/{column.slug}")
    event.add("transp", "TRANSPARENT")  # a placeholder does not make anyone busy
    return event


def build(name: str, zone: str, base_url: str, column: Column | None = None, open_slots: bool = True) -> bytes:
    """The calendar of the organisation (column None) or of one column."""
    now = utcnow()
    base_url = base_url.rstrip("/")
    host = _host(base_url)
    cal = Calendar()
    cal.add("prodid", "-//publisher//editorial calendar//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", zone)
    query = (
        select(Item)
        .options(joinedload(Item.column), selectinload(Item.deliveries).joinedload(Delivery.channel))
        .where(Item.planned_at.is_not(None), Item.planned_at >= now - PAST)
        .order_by(Item.planned_at, Item.id)
    )
    if column is not None:
        query = query.where(Item.column_id == column.id)
    columns = [column] if column is not None else db.session.scalars(
        select(Column).where(Column.active.is_(True)).order_by(Column.id)).all()
    # One expansion per column gives every slot's predicted number and the open slots.
    upcoming = {col.id: schedule.slots(col, now, now + PREDICTED, now) for col in columns}
    predicted = {s.item_id: s.issue_number for found in upcoming.values() for s in found if s.item_id}
    for item in db.session.scalars(query):
        cal.add_component(_item_event(item, predicted, base_url, host, now))
    if open_slots:
        for col in columns:
            for slot in upcoming[col.id]:
                if slot.open and slot.at < now + SLOTS_AHEAD:
                    cal.add_component(_slot_event(col, slot, base_url, host, now))
    return cal.to_ical()
