"""/api/items: list, create (and schedule), read, edit, delete items; schedule them on more channels."""

from __future__ import annotations

from datetime import datetime

from flask import url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from ..extensions import db
from ..items import Invalid, create_item, schedule_item, validate_item
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
from .api_json import delivery_json, item_json

ITEM_FIELDS = ("title", "body", "origin", "format", "column_id")
TEXT_FIELDS = ("title", "body", "origin", "format")


def _item(item_id: int) -> Item:
    item = db.session.get(Item, item_id)
    if item is None:
        raise not_found(_("item"))
    return item


def _type_errors(data: dict) -> dict[str, str]:
    errors: dict[str, str] = {}
    check_text(data, TEXT_FIELDS, errors)
    if data.get("column_id") is not None and not is_int(data["column_id"]):
        errors["column_id"] = _("Must be an id (integer) or null.")
    return errors


def _schedule_args(data: dict, errors: dict[str, str]) -> tuple[list[int] | None, datetime | None]:
    channel_ids = check_id_list(data, "channel_ids", errors)
    due_at = parse_time(data["due_at"], "due_at", errors) if data.get("due_at") is not None else None
    return channel_ids, due_at


def list_items():
    errors: dict[str, str] = {}
    query = select(Item).options(selectinload(Item.deliveries))
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
    if not errors.keys() & set(ITEM_FIELDS):
        try:
            item = create_item(data, current_user._get_current_object())
        except Invalid as exc:
            errors.update(exc.errors)
    if errors:
        raise Invalid(errors)
    if channel_ids is not None:
        schedule_item(item, channel_ids, due_at)
    db.session.commit()
    location = url_for("api.item", item_id=item.id)
    return item_json(item), 201, {"Location": location}


def get_item(item_id: int):
    return item_json(_item(item_id))


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
    merged = {name: getattr(item, name) for name in ITEM_FIELDS} | {k: data[k] for k in ITEM_FIELDS if k in data}
    for name, value in validate_item(merged).items():
        setattr(item, name, value)
    try:
        db.session.commit()  # UPDATE … WHERE version = <the one we read>: a concurrent save loses
    except StaleDataError:
        db.session.rollback()
        raise _stale(db.session.get(Item, item_id).version) from None
    return item_json(item)


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
    deliveries = schedule_item(item, channel_ids, due_at)
    db.session.commit()
    return {"data": [delivery_json(d) for d in deliveries]}, 201
