"""Creating and scheduling items: the rules shared by the web pages and the JSON API."""

from __future__ import annotations

import re
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


DURATION = re.compile(r"^(?:(\d+):)?(\d{1,3}):([0-5]\d)$")  # mm:ss or h:mm:ss


def parse_duration(value: str) -> int:
    """ "3:25" or "1:02:03" in seconds; ValueError otherwise."""
    match = DURATION.match(value.strip())
    if not match:
        raise ValueError(value)
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _is_link(value: str) -> bool:
    return value.startswith(("https://", "http://")) and len(value) > 8 and " " not in value


def _format_fields(data: dict, fmt: str, errors: dict[str, str]) -> dict:
    """The format's own fields, checked: what each format needs to be publishable."""
    from .media import check_ids

    out = {
        "cover_id": int(data["cover_id"]) if str(data.get("cover_id") or "").isdigit() else None,
        "file_id": int(data["file_id"]) if str(data.get("file_id") or "").isdigit() else None,
        "link_url": (data.get("link_url") or "").strip(),
        "event_start": data.get("event_start"),
        "event_end": data.get("event_end"),
        "event_place": (data.get("event_place") or "").strip(),
        "event_url": (data.get("event_url") or "").strip(),
        "media_ids": [int(i) for i in data.get("media_ids") or [] if str(i).isdigit()],
        "duration_seconds": data.get("duration_seconds"),
    }
    check_ids({**data, "format": fmt}, errors)
    if isinstance(data.get("duration"), str):
        try:
            out["duration_seconds"] = parse_duration(data["duration"]) if data["duration"].strip() else None
        except ValueError:
            errors["duration"] = _("Give the duration as minutes:seconds, e.g. 3:25.")
    for name in ("link_url", "event_url"):
        if out[name] and not _is_link(out[name]):
            errors[name] = _("Enter a full link starting with https://.")
    if fmt == Format.IMAGE and not out["media_ids"] and "media_ids" not in errors:
        errors["media_ids"] = _("An image post needs at least one image.")
    if fmt in (Format.VIDEO, Format.AUDIO) and not out["file_id"] and not out["link_url"] \
            and "file_id" not in errors and "link_url" not in errors:
        errors["file_id"] = _("Upload a file or give a link.")
    if fmt == Format.EVENT:
        start, end = out["event_start"], out["event_end"]
        if start is None and "event_start" not in errors:
            errors["event_start"] = _("An event needs a start time.")
        if start is not None and end is not None and end <= start:
            errors["event_end"] = _("The event must end after it starts.")
        if not out["event_place"] and not out["event_url"] and "event_url" not in errors:
            errors["event_place"] = _("Give a place, an online link, or both.")
    return out


def validate_item(data: dict) -> dict:
    """The item's fields, checked (messages by field name in Invalid). Format fields (see
    _format_fields) are checked for the chosen format; `media_ids` is the ordered image list."""
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
    theme = (data.get("theme") or "").strip()
    if len(theme) > 200:
        errors["theme"] = _("The theme is longer than 200 characters.")
    fields = _format_fields(data, fmt, errors)
    if errors:
        raise Invalid(errors)
    return {"title": title, "body": data.get("body") or "", "origin": origin, "format": fmt,
            "column_id": int(column_id) if column_id else None, "theme": theme, **fields}


def create_item(data: dict, author: User | None) -> Item:
    from .media import attach

    values = validate_item(data)
    media_ids = values.pop("media_ids")
    item = Item(**values, author=author)
    db.session.add(item)
    db.session.flush()
    if media_ids:
        attach(item, media_ids)
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
        if not dispatch.reschedule(delivery, planned_at):  # claimed by the scheduler meanwhile
            raise Conflict(_("A delivery of this item has just started. Reload to see where it stands."))
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
