"""/api/columns and /api/slots: columns, their slots (predicted issue numbers and themes, open or
filled) and filling a slot. Anyone logged in reads; editors and admins write."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import exists, select

from .. import schedule
from ..extensions import db
from ..items import Invalid, fill_slot
from ..models import Column, Item, Role, utcnow
from .api_common import ApiError, int_arg, json_body, not_found, parse_time, require, time_arg
from .api_json import iso, item_json
from .columns import apply_column, find_slot, validate_column

MAX_RANGE = timedelta(days=400)
DEFAULT_RANGE = timedelta(days=31)
FIELDS = {"name", "slug", "description", "color", "intro", "signoff", "hashtags", "cover_id", "timezone", "cadence",
          "cadence_start", "first_issue", "themes", "slots_ahead", "owner_id", "active", "default_channel_ids"}
REQUIRED = ("name", "slug")


def column_json(c: Column) -> dict[str, Any]:
    """The calendar secret (ics_token) is left out: it is shown to editors on the column page only."""
    return {
        "id": c.id, "name": c.name, "slug": c.slug, "description": c.description, "color": c.color,
        "intro": c.intro, "signoff": c.signoff, "hashtags": c.hashtag_list, "cover_id": c.cover_id,
        "timezone": c.timezone, "cadence": c.cadence, "cadence_start": iso(c.cadence_start),
        "first_issue": c.first_issue, "themes": c.theme_list, "slots_ahead": c.slots_ahead, "owner_id": c.owner_id,
        "active": c.active, "default_channel_ids": [ch.id for ch in c.default_channels],
        "created_at": iso(c.created_at),
    }


def slot_json(s: schedule.Slot) -> dict[str, Any]:
    return {"column_id": s.column_id, "at": iso(s.at), "issue_number": s.issue_number, "theme": s.theme,
            "open": s.open, "item_id": s.item_id}


def _column(column_id: int) -> Column:
    column = db.session.get(Column, column_id)
    if column is None:
        raise not_found(_("column"))
    return column


def _values(data: dict, column: Column | None) -> dict[str, Any]:
    """JSON values in the form validate_column checks: lists joined, the start parsed."""
    errors: dict[str, str] = {}
    values = {k: v for k, v in data.items() if k != "default_channel_ids"}
    if "default_channel_ids" in data:
        values["channel_ids"] = data["default_channel_ids"]
    for name, sep in (("themes", "\n"), ("hashtags", " ")):
        value = data.get(name)
        if isinstance(value, list):
            if all(isinstance(v, str) and v.strip() and sep not in v.strip() for v in value):
                values[name] = sep.join(v.strip().lstrip("#") if name == "hashtags" else v.strip() for v in value)
            else:
                errors[name] = _("Must be a list of non-empty strings.")
    if data.get("cadence_start") is not None:
        values["cadence_start"] = parse_time(data["cadence_start"], "cadence_start", errors)
    if data.get("cadence") is None and "cadence" in data:
        values["cadence"] = ""
    try:
        clean = validate_column(values, column) if not errors else {}
    except Invalid as exc:
        errors.update({("default_channel_ids" if k == "channel_ids" else k): v for k, v in exc.errors.items()})
    if errors:
        raise Invalid(errors)
    return clean


def list_columns():
    columns = db.session.scalars(select(Column).order_by(Column.name, Column.id))
    return {"data": [column_json(c) for c in columns]}


def get_column(column_id: int):
    return column_json(_column(column_id))


def create():
    require(Role.EDITOR)
    data = json_body(FIELDS)
    missing = {name: _("This field is required.") for name in REQUIRED if name not in data}
    if missing:
        raise Invalid(missing)
    from ..i18n import organisation

    data.setdefault("timezone", organisation().timezone)
    column = Column(owner_id=current_user.id, cadence_start=utcnow().replace(microsecond=0))
    apply_column(column, _values(data, None))
    db.session.add(column)
    db.session.commit()
    return column_json(column), 201, {"Location": url_for("api.column", column_id=column.id)}


def update(column_id: int):
    require(Role.EDITOR)
    column = _column(column_id)
    data = json_body(FIELDS)
    values = _values(data, column)
    apply_column(column, values)
    db.session.commit()
    return column_json(column)


def delete(column_id: int):
    require(Role.EDITOR)
    column = _column(column_id)
    if db.session.scalar(select(exists().where(Item.column_id == column.id))):
        raise ApiError(409, "conflict", _("Items belong to this column, so it cannot be deleted. Switch it off "
                                          "instead (\"active\": false), or move its items first."))
    db.session.delete(column)
    db.session.commit()
    return "", 204


def _range() -> tuple:
    errors: dict[str, str] = {}
    start, end = time_arg("start", errors), time_arg("end", errors)
    if not errors:
        start = start or utcnow()
        end = end or start + DEFAULT_RANGE
        if end <= start:
            errors["end"] = _("The end must be after the start.")
        elif end - start > MAX_RANGE:
            errors["end"] = _("Ask for at most %(days)d days at a time.", days=MAX_RANGE.days)
    return start, end, errors


def column_slots(column_id: int):
    column = _column(column_id)
    start, end, errors = _range()
    if errors:
        raise Invalid(errors)
    return {"data": [slot_json(s) for s in schedule.slots(column, start, end)]}


def all_slots():
    start, end, errors = _range()
    column_id = int_arg("column_id", errors)
    if errors:
        raise Invalid(errors)
    query = select(Column).where(Column.active.is_(True)).order_by(Column.id)
    if column_id is not None:
        query = query.where(Column.id == column_id)
    found = [s for c in db.session.scalars(query) for s in schedule.slots(c, start, end)]
    return {"data": [slot_json(s) for s in sorted(found, key=lambda s: (s.at, s.column_id))]}


def fill(column_id: int):
    """A numbered, themed draft for an open slot: 201 with the item, 409 if filled, 400 if not a slot."""
    require(Role.EDITOR)
    column = _column(column_id)
    data = json_body({"at"})
    errors: dict[str, str] = {}
    at = parse_time(data.get("at"), "at", errors)
    if errors:
        raise Invalid(errors)
    slot = find_slot(column, at)
    if slot is None:
        raise Invalid({"at": _("There is no slot of this column at that time.")})
    if not slot.open:
        raise ApiError(409, "conflict", _("This slot is already filled (item %(id)d).", id=slot.item_id))
    item = fill_slot(column, slot.at, current_user)
    db.session.commit()
    return item_json(item), 201, {"Location": url_for("api.item", item_id=item.id)}
