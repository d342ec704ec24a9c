"""/api/items: list, create (and schedule), read, edit, delete items; schedule them on more channels."""

from __future__ import annotations

from datetime import datetime

from flask import request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from .. import workflow
from ..extensions import db
from ..items import Conflict, Invalid, create_item, validate_item
from ..models import ACTIVE_STATUSES, Delivery, Format, Item, ItemStatus, Origin, Role
from .api_common import (
    ApiError,
    check_id_list,
    check_text,
    choice_arg,
    int_arg,
    is_int,
    json_body,
    not_found,
    paginate,
    paging_args,
    parse_time,
    require,
    time_arg,
)
from .api_json import delivery_json, item_event_json, item_json

ITEM_FIELDS = ("title", "body", "origin", "format", "column_id", "theme", "cover_id", "file_id", "link_url",
               "duration_seconds", "event_start", "event_end", "event_place", "event_url", "media_ids", "planned_at")
TEXT_FIELDS = ("title", "body", "origin", "format", "theme", "link_url", "event_place", "event_url")
ID_FIELDS = ("column_id", "cover_id", "file_id")
TIME_FIELDS = ("event_start", "event_end", "planned_at")


def _item(item_id: int) -> Item:
    item = db.session.get(Item, item_id)
    if item is None:
        raise not_found(_("item"))
    return item


def _type_errors(data: dict) -> dict[str, str]:
    """Checks the JSON types, and turns the times into datetimes (in place)."""
    errors: dict[str, str] = {}
    check_text(data, TEXT_FIELDS, errors)
    for name in ID_FIELDS:
        if data.get(name) is not None and not is_int(data[name]):
            errors[name] = _("Must be an id (integer) or null.")
    if data.get("duration_seconds") is not None and (not is_int(data["duration_seconds"])
                                                     or data["duration_seconds"] < 0):
        errors["duration_seconds"] = _("Must be a whole number of seconds or null.")
    check_id_list(data, "media_ids", errors)
    for name in TIME_FIELDS:
        if data.get(name) is not None:
            data[name] = parse_time(data[name], name, errors)
    return errors


def _guard(run):
    """Workflow refusals as API errors: 403 for the role, 409 for the item's state."""
    try:
        return run()
    except workflow.NotAllowed as exc:
        raise ApiError(403, "forbidden", str(exc)) from None
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None


def _schedule_args(data: dict, errors: dict[str, str]) -> tuple[list[int] | None, datetime | None]:
    channel_ids = check_id_list(data, "channel_ids", errors)
    due_at = parse_time(data["due_at"], "due_at", errors) if data.get("due_at") is not None else None
    return channel_ids, due_at


def list_items():
    errors: dict[str, str] = {}
    query = select(Item).options(selectinload(Item.deliveries), selectinload(Item.media))
    for name, column, choices in (("status", Item.status, ItemStatus), ("origin", Item.origin, Origin),
                                  ("format", Item.format, Format)):
        value = choice_arg(name, choices, errors)
        if value is not None:
            query = query.where(column == value)
    column_id = int_arg("column_id", errors)
    if column_id is not None:
        query = query.where(Item.column_id == column_id)
    start, end = time_arg("from", errors), time_arg("to", errors)
    if start is not None or end is not None:
        # The next due time is the earliest pending attempt, as item_json reports it.
        next_due = (
            select(Delivery.item_id, func.min(Delivery.next_attempt_at).label("at"))
            .where(Delivery.status.in_(ACTIVE_STATUSES))
            .group_by(Delivery.item_id)
            .subquery()
        )
        query = query.join(next_due, next_due.c.item_id == Item.id)
        if start is not None:
            query = query.where(next_due.c.at >= start)
        if end is not None:
            query = query.where(next_due.c.at < end)
    paging = paging_args(errors)
    if errors:
        raise Invalid(errors)
    rows, meta = paginate(query, Item.id, paging)
    return {"data": [item_json(i) for i in rows], "pagination": meta}


def create():
    require(Role.EDITOR)
    data = json_body({*ITEM_FIELDS, "channel_ids", "due_at"})
    errors = _type_errors(data)
    channel_ids, due_at = _schedule_args(data, errors)
    if "due_at" not in errors and due_at is not None and channel_ids is None:
        errors["channel_ids"] = _("A time was given but no channels to publish on.")
    item = None
    user = current_user._get_current_object()
    if not errors.keys() & set(ITEM_FIELDS):
        try:
            item = create_item(data, user)
        except Invalid as exc:
            errors.update(exc.errors)
    if errors:
        raise Invalid(errors)
    if data.get("planned_at") is not None:
        item.planned_at = data["planned_at"]
    workflow.record(item, user, "created")
    if channel_ids is not None:
        _guard(lambda: workflow.plan(item, channel_ids, due_at, user))
    db.session.commit()
    location = url_for("api.item", item_id=item.id)
    return item_json(item, predicted=True), 201, {"Location": location}


def get_item(item_id: int):
    return item_json(_item(item_id), predicted=True)


def update(item_id: int):
    """Edits the item only: deliveries that already went out are never sent again."""
    require(Role.EDITOR)
    item = _item(item_id)
    data = json_body({*ITEM_FIELDS, "version"})
    errors = _type_errors(data)
    if not is_int(data.get("version")):
        errors["version"] = _("Send the version of the item you edited (its \"version\" field).")
    if errors:
        raise Invalid(errors)
    if data["version"] != item.version:
        raise _stale(item.version)
    merged = workflow.current_values(item) | {k: data[k] for k in ITEM_FIELDS if k in data}
    values = validate_item(merged)
    values["planned_at"] = merged["planned_at"]
    _guard(lambda: workflow.edit(item, values, current_user._get_current_object()))
    try:
        db.session.commit()  # UPDATE … WHERE version = <the one we read>: a concurrent save loses
    except StaleDataError:
        db.session.rollback()
        raise _stale(db.session.get(Item, item_id).version) from None
    return item_json(item, predicted=True)


def _stale(current: int) -> ApiError:
    message = _("Someone saved this item after you loaded it. Load it again (it is now at version %(v)d) "
                "and repeat your edit.", v=current)
    return ApiError(409, "stale_version", message, {"version": message})


def delete(item_id: int):
    require(Role.EDITOR)
    item = _item(item_id)
    if item.status != ItemStatus.DRAFT or item.deliveries:
        raise ApiError(409, "conflict", _("Only a draft that was never scheduled can be deleted. "
                                          "Cancel its deliveries instead."))
    db.session.delete(item)
    try:
        db.session.commit()  # the version check refuses it if it was scheduled meanwhile
    except StaleDataError:
        db.session.rollback()
        raise ApiError(409, "conflict", _("The item was changed meanwhile; it was not deleted.")) from None
    return "", 204


def list_deliveries(item_id: int):
    return {"data": [delivery_json(d) for d in _item(item_id).deliveries]}


def schedule_more(item_id: int):
    require(Role.EDITOR)
    item = _item(item_id)
    data = json_body({"channel_ids", "due_at"})
    errors: dict[str, str] = {}
    channel_ids, due_at = _schedule_args(data, errors)
    if channel_ids is None and "channel_ids" not in errors:
        errors["channel_ids"] = _("Choose at least one channel.")
    if errors:
        raise Invalid(errors)
    user = current_user._get_current_object()
    deliveries = _guard(lambda: workflow.plan(item, channel_ids, due_at, user))
    db.session.commit()
    return {"data": [delivery_json(d) for d in deliveries]}, 201


# --- the approval workflow -------------------------------------------------------------------------

def _comment(data: dict) -> str:
    comment = data.get("comment", "")
    if not isinstance(comment, str):
        raise Invalid({"comment": _("Must be a string.")})
    return comment


def submit(item_id: int):
    item = _item(item_id)
    _guard(lambda: workflow.submit(item, current_user._get_current_object()))
    db.session.commit()
    return item_json(item, predicted=True)


def approve(item_id: int):
    item = _item(item_id)
    comment = _comment(json_body({"comment"}) if request.content_length else {})
    _guard(lambda: workflow.approve(item, current_user._get_current_object(), comment))
    db.session.commit()
    return item_json(item, predicted=True)


def send_back(item_id: int):
    item = _item(item_id)
    comment = _comment(json_body({"comment"}))
    _guard(lambda: workflow.send_back(item, current_user._get_current_object(), comment))
    db.session.commit()
    return item_json(item, predicted=True)


def republish(item_id: int):
    item = _item(item_id)
    data = json_body({"channel_ids", "due_at"})
    errors: dict[str, str] = {}
    channel_ids, due_at = _schedule_args(data, errors)
    if channel_ids is None and "channel_ids" not in errors:
        errors["channel_ids"] = _("Choose at least one channel.")
    if errors:
        raise Invalid(errors)
    deliveries = _guard(lambda: workflow.republish(item, channel_ids, due_at, current_user._get_current_object()))
    db.session.commit()
    return {"data": [delivery_json(d) for d in deliveries]}, 201


def history(item_id: int):
    return {"data": [item_event_json(e) for e in _item(item_id).history]}
