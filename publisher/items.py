"""Creating and scheduling items: the rules shared by the web pages and the JSON API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import select

from . import dispatch
from .extensions import db
from .models import Channel, Column, Delivery, Format, Item, Origin, User, utcnow

# A time a little in the past still means "now": the form took a while to fill in.
PAST_GRACE = timedelta(minutes=2)


@dataclass
class Invalid(Exception):
    """Bad input: messages by field name, already in the user's language. Nothing was changed."""

    errors: dict[str, str] = field(default_factory=dict)


def validate_item(data: dict) -> dict:
    errors: dict[str, str] = {}
    title = (data.get("title") or "").strip()
    if not title:
        errors["title"] = _("A title is required.")
    elif len(title) > 300:
        errors["title"] = _("The title is longer than 300 characters.")
    origin = data.get("origin") or Origin.PGC
    if origin not in set(Origin):
        errors["origin"] = _("Unknown origin.")
    fmt = data.get("format") or Format.ARTICLE
    if fmt not in set(Format):
        errors["format"] = _("Unknown format.")
    column_id = data.get("column_id") or None
    if column_id is not None and db.session.get(Column, int(column_id)) is None:
        errors["column_id"] = _("No such column.")
    if errors:
        raise Invalid(errors)
    return {"title": title, "body": data.get("body") or "", "origin": origin, "format": fmt,
            "column_id": int(column_id) if column_id else None}


def create_item(data: dict, author: User | None) -> Item:
    item = Item(**validate_item(data), author=author)
    db.session.add(item)
    db.session.flush()
    return item


def resolve_channels(channel_ids: list[int]) -> list[Channel]:
    ids = {int(i) for i in channel_ids}
    if not ids:
        raise Invalid({"channel_ids": _("Choose at least one channel.")})
    channels = list(db.session.scalars(select(Channel).where(Channel.id.in_(ids))))
    missing = ids - {c.id for c in channels}
    if missing:
        raise Invalid({"channel_ids": _("No such channel: %(ids)s", ids=", ".join(map(str, sorted(missing))))})
    disabled = [c.name for c in channels if not c.enabled]
    if disabled:
        raise Invalid({"channel_ids": _("These channels are switched off: %(names)s", names=", ".join(disabled))})
    return channels


def schedule_item(item: Item, channel_ids: list[int], due_at: datetime | None) -> list[Delivery]:
    """Deliveries for the item on each channel at `due_at` (aware; None = now). The caller commits."""
    now = utcnow()
    if due_at is None:
        due_at = now
    if due_at.tzinfo is None:
        raise Invalid({"due_at": _("The time needs a timezone.")})
    if due_at < now - PAST_GRACE:
        raise Invalid({"due_at": _("This time is in the past. Choose a later time or publish now.")})
    channels = resolve_channels(channel_ids)
    return dispatch.schedule(item, channels, max(due_at, now))


def default_channel_ids(item: Item) -> list[int]:
    """The channels a new plan for this item offers: its column's default channels."""
    return [c.id for c in item.column.default_channels if c.enabled] if item.column else []


class Conflict(Exception):
    """Someone else changed the item since the caller read it; the message says what to do."""


def move_item(item: Item, planned_at: datetime, version: int | None) -> list[Delivery]:
    """Move an item on the calendar: its planned time and every delivery that has not started.

    Refused (Conflict) when `version` is not the item's current one, so a drag based on a stale
    calendar never overwrites someone else's change; refused (Invalid) for a time in the past or
    an item that already went out (republishing is an explicit act). The caller commits.
    """
    if version is not None and version != item.version:
        raise Conflict(_("Someone else changed this item in the meantime. Reload to see their version."))
    if planned_at.tzinfo is None:
        raise Invalid({"planned_at": _("The time needs a timezone.")})
    if planned_at < utcnow() - PAST_GRACE:
        raise Invalid({"planned_at": _("This time is in the past. Choose a later time.")})
    if item.status == "published" or any(d.status not in ("scheduled", "cancelled") for d in item.deliveries):
        raise Invalid({"planned_at": _("This item has already gone out on a channel; republish it instead.")})
    item.planned_at = planned_at
    moved = [d for d in item.deliveries if d.status == "scheduled"]
    for delivery in moved:
        dispatch.reschedule(delivery, planned_at)
    db.session.flush()  # bumps the version: the calendar's next drag must be based on this one
    return moved


def fill_slot(column: Column, at: datetime, author: User | None) -> Item:
    """A draft for an open slot of `column`, with the issue number and theme the slot predicts.

    No delivery yet: the draft goes out only once it is written, planned on channels (the column's
    default channels are offered) and approved. The caller commits.
    """
    from . import schedule

    slot = next((s for s in schedule.slots(column, at, at + timedelta(seconds=1)) if s.at == at), None)
    if slot is None:
        raise Invalid({"at": _("There is no slot of this column at that time.")})
    if not slot.open:
        raise Invalid({"at": _("This slot is already filled.")})
    title = _("%(column)s · No. %(number)d", column=column.name, number=slot.issue_number)
    if slot.theme:
        title = f"{title} · {slot.theme}"
    item = Item(title=title, column=column, planned_at=slot.at, theme=slot.theme, author=author)
    db.session.add(item)
    db.session.flush()
    return item
