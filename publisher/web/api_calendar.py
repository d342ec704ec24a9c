"""/api/calendar: the calendar page's events, and moving an item or filling a slot from the page.

Times: FullCalendar cannot show a named timezone without extra plugins, so events carry the
organisation's wall-clock time without an offset and the page runs FullCalendar in 'UTC', which
shows them unchanged whatever the browser's zone. The range it asks for, and the time an item is
dropped on, come back the same way: org-local wall-clock (see publisher/web/calendar_view.py).

An event is an item at its planned time (drafts included), or an open slot of a column: a
placeholder with the issue number and theme the slot will get. Both come from a handful of queries
whatever the number of items or columns (the calendar may show a thousand items a month).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from flask import current_app, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import Select, select

from .. import calendar_cache, schedule
from ..extensions import db
from ..i18n import locale_code, org_zone
from ..items import Conflict, Invalid, fill_slot, move_item
from ..models import Channel, Column, Delivery, DeliveryStatus, Item, ItemEvent, ItemStatus, Origin, Role, utcnow
from .api_common import ApiError, is_int, json_body, not_found, require

MAX_RANGE = timedelta(days=100)  # a month view asks for 6 weeks; more is a mistake or a scraper
NO_COLUMN = "none"  # the column filter's value for items without a column
NO_COLUMN_COLOR = "#9ca3af"
HEX_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}")
MOVABLE_DELIVERIES = {DeliveryStatus.SCHEDULED, DeliveryStatus.CANCELLED}  # what items.move_item accepts

ITEM_STATUS_LABELS = {
    ItemStatus.DRAFT: _l("Draft"),
    ItemStatus.IN_REVIEW: _l("In review"),
    ItemStatus.APPROVED: _l("Approved"),
    ItemStatus.SCHEDULED: _l("Scheduled"),
    ItemStatus.PUBLISHED: _l("Published"),
}
DELIVERY_STATUS_LABELS = {
    DeliveryStatus.SCHEDULED: _l("Scheduled"),
    DeliveryStatus.QUEUED: _l("Queued"),
    DeliveryStatus.SENDING: _l("Sending"),
    DeliveryStatus.SENT: _l("Sent"),
    DeliveryStatus.FAILED: _l("Failed"),
    DeliveryStatus.UNCONFIRMED: _l("Unconfirmed"),
    DeliveryStatus.CANCELLED: _l("Cancelled"),
}
ORIGIN_LABELS = {Origin.PGC: _l("Editorial (PGC)"), Origin.UGC: _l("Community (UGC)")}


def color(value: str | None) -> str:
    # Colours end up in style attributes: only a plain hex colour gets there.
    return value if value and HEX_COLOR.fullmatch(value) else NO_COLUMN_COLOR


# --- GET /api/calendar/events ------------------------------------------------------------------

def events():
    zone = org_zone()
    start = _wall_clock(request.args.get("start"), _("The start of the range is missing."), zone)
    end = _wall_clock(request.args.get("end"), _("The end of the range is missing."), zone)
    if end <= start:
        raise _bad(_("The end of the range must come after its start."))
    if end - start > MAX_RANGE:
        raise _bad(_("The range is too long: at most %(days)d days at a time.", days=MAX_RANGE.days))
    version = calendar_cache.version()
    # End the read transaction begun by the login: what is read next is at least as new as the
    # version just read, so an answer is never stored under a version newer than its data.
    db.session.commit()
    editor = current_user.can(Role.EDITOR)
    request_key = f"{request.full_path}|{locale_code()}|{editor}"

    def compute() -> tuple[bytes, float]:
        found, fresh_for = _calendar(start, end, zone, _filtered, _slot_wanted)
        # orjson: a month is a thousand events, and the standard encoder took a fifth of the time.
        return orjson.dumps(found), fresh_for

    return current_app.response_class(calendar_cache.cached(version, request_key, compute),
                                      mimetype="application/json")


def _calendar(start: datetime, end: datetime, zone: ZoneInfo, narrow: Callable[[Select], Select],
              slot_wanted: Callable[[Column], bool]) -> tuple[list[dict], float]:
    """The events of [start, end) (items narrowed by `narrow`, the open slots `slot_wanted` keeps),
    and how many seconds they stay true if nothing is written (until the first counted slot passes)."""
    # Core execution: plain rows, without the ORM's per-row bookkeeping (the calendar may show a thousand).
    rows = db.session.connection().execute(narrow(_item_query(start, end))).all()
    all_columns = list(db.session.scalars(select(Column).order_by(Column.name)))
    channels = dict(db.session.execute(select(Channel.id, Channel.name)).all())
    # Rows unpacked once (attribute access on a thousand rows shows in the timings): item -> deliveries.
    items: dict[int, tuple[tuple, list[tuple[str, int, str]]]] = {}
    for *item, channel_id, delivery_status in rows:
        entry = items.get(item[0]) or items.setdefault(item[0], (tuple(item), []))
        if channel_id is not None:
            entry[1].append((channels.get(channel_id, ""), channel_id, delivery_status))
    unnumbered = {item[COLUMN_ID] for item, _deliveries in items.values()
                  if item[COLUMN_ID] is not None and item[ISSUE] is None and item[STATUS] != ItemStatus.PUBLISHED}
    slots_of = {c.id for c in all_columns if slot_wanted(c)}
    numbers = schedule.Numbering([c for c in all_columns if c.id in unnumbered | slots_of], start, end,
                                 items_of=unnumbered, slots_of=slots_of)
    texts = _texts()
    editor = current_user.can(Role.EDITOR)
    columns = {c.id: _column(c.id, c.name, c.color) for c in all_columns}
    found = [_item_event(item, sorted(deliveries), zone, numbers, texts, editor, columns)
             for item, deliveries in items.values()]
    found += [_slot_event(column, slot, zone, texts) for column, slot in numbers.slots if slot.open]
    return found, numbers.fresh_for


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def _wall_clock(raw: str | None, missing: str, zone: ZoneInfo) -> datetime:
    """An ISO date or date-time read as the organisation's wall-clock time, returned in UTC.

    Any offset is dropped on purpose: FullCalendar runs in 'UTC' here and sends "…Z" for what
    is really org-local time (see the module docstring).
    """
    if not raw:
        raise _bad(missing)
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _bad(_("%(value)s is not a date (expected e.g. 2030-03-01T00:00:00).", value=raw)) from None


# The item fields of _item_query, by position; the delivery's channel and status follow them.
ITEM_FIELDS = (Item.id, Item.title, Item.status, Item.version, Item.origin, Item.format, Item.planned_at,
               Item.issue_number, Item.theme, Item.column_id)
STATUS, ISSUE, COLUMN_ID = 2, 7, 9


def _item_query(start: datetime, end: datetime) -> Select:
    # One query of plain columns (no ORM objects, no lazy loads): items with their deliveries, if any.
    return (
        # Column and channel names come from their own small queries: narrower rows, fewer joins.
        select(*ITEM_FIELDS, Delivery.channel_id, Delivery.state)
        .outerjoin(Delivery, Delivery.item_id == Item.id)
        .where(Item.planned_at >= start, Item.planned_at < end)
        .order_by(Item.planned_at, Item.id, Delivery.id)
    )


def _filtered(stmt: Select) -> Select:
    """Narrow to the chosen columns, channels, item statuses and origins (each may repeat: any of them).

    With a channel chosen, only items planned on it are shown, and their events list that channel only.
    """
    columns = request.args.getlist("column")
    if columns:
        _check(columns, lambda v: v.isdigit() or v == NO_COLUMN, _("Unknown column: %(values)s"))
        wanted = Item.column_id.in_([int(v) for v in columns if v.isdigit()])
        stmt = stmt.where(wanted | Item.column_id.is_(None) if NO_COLUMN in columns else wanted)
    channels = request.args.getlist("channel")
    if channels:
        _check(channels, str.isdigit, _("Unknown channel: %(values)s"))
        stmt = stmt.where(Delivery.channel_id.in_([int(v) for v in channels]))
    statuses = request.args.getlist("status")
    if statuses:
        _check(statuses, lambda v: v in ITEM_STATUS_LABELS, _("Unknown status: %(values)s"))
        stmt = stmt.where(Item.status.in_(statuses))
    origins = request.args.getlist("origin")
    if origins:
        _check(origins, lambda v: v in ORIGIN_LABELS, _("Unknown origin: %(values)s"))
        stmt = stmt.where(Item.origin.in_(origins))
    return stmt


def _slot_wanted(column: Column) -> bool:
    """Open slots follow the column filter; they are neither on a channel, nor of an origin, nor in
    a status, so those filters hide them."""
    if any(request.args.getlist(name) for name in ("channel", "status", "origin")):
        return False
    columns = request.args.getlist("column")
    return not columns or str(column.id) in columns


def _check(values: list[str], valid: Callable[[str], bool], message: str) -> None:
    bad = [v for v in values if not valid(v)]
    if bad:
        raise _bad(message % {"values": ", ".join(bad)})


@dataclass(frozen=True)
class _Texts:
    """Translated once per request: a thousand events would otherwise mean a gettext call each."""

    statuses: dict[str, str]  # item status -> its name
    deliveries: dict[str, str]  # delivery status -> its name
    number: str  # "No. %(number)d"
    open_slot: str
    sent: str  # "%(sent)d/%(total)d sent"
    counts: dict[str, str]  # delivery status that needs an editor's eye -> "%(n)d failed" …


def _texts() -> _Texts:
    return _Texts(
        statuses={status: str(label) for status, label in ITEM_STATUS_LABELS.items()},
        deliveries={status: str(label) for status, label in DELIVERY_STATUS_LABELS.items()},
        number=_("No. %(number)d"),
        open_slot=_("Open slot"),
        sent=_("%(sent)d/%(total)d sent"),
        counts={
            DeliveryStatus.FAILED: _("%(n)d failed"),
            DeliveryStatus.UNCONFIRMED: _("%(n)d to check"),
            DeliveryStatus.CANCELLED: _("%(n)d cancelled"),
        },
    )


def _local(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).replace(tzinfo=None).isoformat(timespec="seconds")  # wall-clock, no offset


def _column(column_id: int | None, name: str | None, value: str | None) -> dict | None:
    return {"id": column_id, "name": name, "color": color(value)} if column_id is not None else None


def _item_event(item: tuple, deliveries: list[tuple[str, int, str]], zone: ZoneInfo, numbers: schedule.Numbering,
                texts: _Texts, editor: bool, columns: dict[int, dict]) -> dict:
    """One event per item at its planned time, its deliveries (channel name, id, status) summarised."""
    item_id, name, status, version, origin, fmt, planned_at, issue_number, theme, column_id = item
    statuses = [delivery_status for _name, _id, delivery_status in deliveries]
    published = status == ItemStatus.PUBLISHED
    number = issue_number if issue_number is not None or published else \
        numbers.predicted(column_id, planned_at)
    title = f"{texts.number % {'number': number}} · {name}" if number is not None else name
    summary = _summary(statuses, texts) if deliveries else texts.statuses.get(status, "")
    classes = [f"pub-status-{status}"]
    if DeliveryStatus.FAILED in statuses or DeliveryStatus.UNCONFIRMED in statuses:
        classes.append("pub-problem")
    column = columns.get(column_id)
    return {
        "id": f"item-{item_id}",
        "title": f"{title} · {summary}",
        "start": _local(planned_at, zone),
        "url": f"/items/{item_id}",
        "color": column["color"] if column else NO_COLUMN_COLOR,
        "editable": editor and not published and all(s in MOVABLE_DELIVERIES for s in statuses),
        "classNames": classes,
        "extendedProps": {
            "kind": "item",
            "itemId": item_id,
            "itemTitle": name,
            "version": version,
            "status": status,
            "statusLabel": texts.statuses.get(status, status),
            "issueNumber": number,
            "numberFinal": issue_number is not None,
            "theme": theme,
            "column": column,
            "origin": origin,
            "format": fmt,
            "deliveries": [
                {"channelId": channel_id, "channel": channel, "status": state,
                 "statusLabel": texts.deliveries.get(state, state)}
                for channel, channel_id, state in deliveries
            ],
        },
    }


def _slot_event(column: Column, slot: schedule.Slot, zone: ZoneInfo, texts: _Texts) -> dict:
    at, number, theme = slot.at, slot.issue_number, slot.theme
    label = texts.number % {"number": number} + (f" · {theme}" if theme else "")
    col = color(column.color)
    return {
        "id": f"slot-{column.id}-{at.isoformat()}",
        "title": f"{texts.open_slot} · {column.name} · {label}",
        "start": _local(at, zone),
        "editable": False,
        "backgroundColor": "transparent",
        "borderColor": col,
        "textColor": col,
        "classNames": ["pub-slot"],
        "extendedProps": {
            "kind": "slot",
            "column": _column(column.id, column.name, column.color),
            "issueNumber": number,
            "theme": theme,
            "at": at.isoformat(),
            "label": label,
        },
    }


def _summary(statuses: list[str], texts: _Texts) -> str:
    """"2/3 sent", then what needs an editor's eye: "2/3 sent, 1 failed"."""
    parts = [texts.sent % {"sent": statuses.count(DeliveryStatus.SENT), "total": len(statuses)}]
    parts += [text % {"n": statuses.count(status)} for status, text in texts.counts.items() if status in statuses]
    return ", ".join(parts)


# --- POST /api/calendar/items/<id>/move and /api/calendar/slots/fill ----------------------------

def _instant(value: Any, name: str) -> datetime:
    """A time from the page: org-local wall-clock without an offset (as FullCalendar gives it), or with one."""
    if not isinstance(value, str):
        raise Invalid({name: _("Give the time as an ISO 8601 string, e.g. 2030-03-01T09:00:00.")})
    try:
        parsed = datetime.fromisoformat(value.removesuffix("Z") if value.endswith("Z") else value)
    except ValueError:
        raise Invalid({name: _("%(value)s is not a date (expected e.g. 2030-03-01T00:00:00).", value=value)}) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=org_zone())).astimezone(UTC)


def _refused(exc: Invalid, code: str) -> ApiError:
    """The rule's own words as the message: the page shows it as it is."""
    return ApiError(400, code, next(iter(exc.errors.values()), _("Some fields are not valid.")), exc.errors)


def move(item_id: int):
    require(Role.EDITOR)
    data = json_body({"planned_at", "version"})
    if not is_int(data.get("version")):
        raise Invalid({"version": _("Send the version of the item you moved (an integer).")})
    item = db.session.get(Item, item_id)
    if item is None:
        raise not_found(_("item"))
    planned_at = _instant(data.get("planned_at"), "planned_at")
    before = item.planned_at
    try:
        move_item(item, planned_at, data["version"])
    except Conflict as exc:
        raise ApiError(409, "stale_version", str(exc)) from None
    except Invalid as exc:
        raise _refused(exc, "invalid_state") from None
    changes = {"planned_at": [before.isoformat(timespec="seconds") if before else None,
                              planned_at.isoformat(timespec="seconds")]}
    db.session.add(ItemEvent(item=item, user=current_user._get_current_object(), action="edited", at=utcnow(),
                             changes=json.dumps(changes)))
    db.session.commit()
    second = timedelta(seconds=1)
    (event,), _fresh_for = _calendar(item.planned_at, item.planned_at + second, org_zone(),
                         lambda stmt: stmt.where(Item.id == item.id), lambda _column: False)
    return event


def fill():
    require(Role.EDITOR)
    data = json_body({"column_id", "at"})
    if not is_int(data.get("column_id")):
        raise Invalid({"column_id": _("Send the column's id (an integer).")})
    column = db.session.get(Column, data["column_id"])
    if column is None:
        raise not_found(_("column"))
    at = _instant(data.get("at"), "at")
    try:
        item = fill_slot(column, at, current_user._get_current_object())
    except Invalid as exc:
        raise _refused(exc, "slot_unavailable") from None
    db.session.add(ItemEvent(item=item, user=current_user._get_current_object(), action="created", at=utcnow()))
    db.session.commit()
    return {"item_id": item.id, "edit_url": f"/items/{item.id}/edit"}, 201, {"Location": url_for("api.item",
                                                                                               item_id=item.id)}
