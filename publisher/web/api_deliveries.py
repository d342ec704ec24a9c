"""/api/deliveries: list and read deliveries with their history; cancel, retry or mark them as sent."""

from __future__ import annotations

from collections.abc import Callable

from flask_babel import gettext as _
from sqlalchemy import select

from .. import dispatch
from ..extensions import db
from ..items import Invalid
from ..models import Delivery, DeliveryStatus, Role
from .api_common import ApiError, choice_arg, int_arg, not_found, paginate, paging_args, require
from .api_json import delivery_json


def _delivery(delivery_id: int) -> Delivery:
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None:
        raise not_found(_("delivery"))
    return delivery


def list_deliveries():
    errors: dict[str, str] = {}
    query = select(Delivery)
    status = choice_arg("status", DeliveryStatus, errors)
    if status is not None:
        query = query.where(Delivery.in_state(status))
    for name, column in (("item_id", Delivery.item_id), ("channel_id", Delivery.channel_id)):
        value = int_arg(name, errors)
        if value is not None:
            query = query.where(column == value)
    paging = paging_args(errors)
    if errors:
        raise Invalid(errors)
    rows, meta = paginate(query, Delivery.id, paging)
    return {"data": [delivery_json(d) for d in rows], "pagination": meta}


def get_delivery(delivery_id: int):
    return delivery_json(_delivery(delivery_id), events=True)


def _act(delivery_id: int, action: Callable[[Delivery], bool], refusal: str):
    """Every action is a conditional update in dispatch: it does nothing unless the state allows it."""
    require(Role.EDITOR)
    delivery = _delivery(delivery_id)
    if not action(delivery):
        db.session.rollback()
        raise ApiError(409, "invalid_state", refusal % {"status": _delivery(delivery_id).state})
    db.session.commit()
    return delivery_json(_delivery(delivery_id), events=True)


def cancel(delivery_id: int):
    return _act(delivery_id, dispatch.cancel,
                _("Only a scheduled or unconfirmed delivery can be cancelled; this one is %(status)s."))


def retry(delivery_id: int):
    return _act(delivery_id, dispatch.retry_now,
                _("Only a failed or unconfirmed delivery can be retried; this one is %(status)s."))


def mark_sent(delivery_id: int):
    return _act(delivery_id, dispatch.mark_sent,
                _("Only a failed or unconfirmed delivery can be marked as sent; this one is %(status)s."))
