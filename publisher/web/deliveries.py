"""The deliveries page: every delivery of every item, by state, for the people who look after them.

Editors and admins retry, mark as sent or cancel from here (one delivery, or every failed one of a
channel at once); reviewers read. Each action is a conditional change in dispatch, so an action on
a delivery that moved on since the page was drawn changes nothing and says so.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import String, case, cast, func, or_, select
from sqlalchemy.orm import contains_eager, joinedload

from .. import dispatch
from ..delivery_words import ACTIONS, explain, refusal
from ..extensions import db
from ..models import Channel, Delivery, DeliveryEvent, DeliveryStatus, Item, Role
from ..security import role_required

bp = Blueprint("deliveries", __name__)
PER_PAGE = 50
BULK_BATCH = 500

# Waiting for another try after something went wrong (not a first try, not an editor's retry).
RETRY_REASONS = ("rate_limited", "retryable", "queue_lost", "worker_lost", "unknown", "held", "released")
TABS = {
    "retrying": (_l("Retrying"), (Delivery.status == DeliveryStatus.SCHEDULED) & (Delivery.attempt > 0)
                 & Delivery.last_reason.in_(RETRY_REASONS)),
    "failed": (_l("Failed"), Delivery.status == DeliveryStatus.FAILED),
    "unconfirmed": (_l("Unconfirmed"), Delivery.status == DeliveryStatus.UNCONFIRMED),
    "sent": (_l("Sent"), Delivery.status == DeliveryStatus.SENT),
    "all": (_l("All"), None),
}


def _filters() -> tuple[str, int | None, str]:
    tab = request.args.get("state", "failed")
    if tab not in TABS:
        tab = "failed"
    return tab, request.args.get("channel", type=int), request.args.get("q", "").strip()


def _narrow(query, channel_id: int | None, q: str):
    """The channel and item-search filters (the tabs add the state)."""
    if channel_id:
        query = query.where(Delivery.channel_id == channel_id)
    if q:
        pattern = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        words = Item.title.ilike(f"%{pattern}%", escape="\\")
        query = query.where(or_(words, cast(Item.id, String) == q.lstrip("#")))
    return query


def _counts(channel_id: int | None, q: str) -> dict[str, int]:
    """Rows per tab under the same channel and search, in one query."""
    columns = [func.count(case((cond, 1))) if cond is not None else func.count(Delivery.id)
               for _label, cond in TABS.values()]
    row = db.session.execute(_narrow(select(*columns).join(Item, Item.id == Delivery.item_id), channel_id, q)).one()
    return dict(zip(TABS, row, strict=True))


def _last_reasons(ids: list[int]) -> dict[int, str]:
    """The reason of each delivery's newest event: what the sentence is about."""
    if not ids:
        return {}
    newest = select(func.max(DeliveryEvent.id)).where(DeliveryEvent.delivery_id.in_(ids)) \
        .group_by(DeliveryEvent.delivery_id)
    rows = db.session.execute(select(DeliveryEvent.delivery_id, DeliveryEvent.reason)
                              .where(DeliveryEvent.id.in_(newest.scalar_subquery())))
    return {delivery_id: reason for delivery_id, reason in rows}


@bp.get("/deliveries")
@login_required
def index():
    tab, channel_id, q = _filters()
    query = _narrow(select(Delivery).join(Delivery.item).options(contains_eager(Delivery.item),
                                                                  joinedload(Delivery.channel)), channel_id, q)
    if TABS[tab][1] is not None:
        query = query.where(TABS[tab][1])
    rows = db.paginate(query.order_by(Delivery.id.desc()), page=request.args.get("page", 1, type=int),
                       per_page=PER_PAGE, error_out=False)
    reasons = _last_reasons([d.id for d in rows])
    channels = db.session.scalars(select(Channel).order_by(Channel.name)).all()
    return render_template(
        "web/deliveries/index.html", rows=rows, tab=tab, tabs={key: label for key, (label, _c) in TABS.items()},
        counts=_counts(channel_id, q), channel_id=channel_id, q=q, channels=channels,
        sentence={d.id: explain(d, reasons.get(d.id, "scheduled")) for d in rows},
        can_act=current_user.can(Role.EDITOR), is_admin=current_user.role == Role.ADMIN,
        channel=next((c for c in channels if c.id == channel_id), None),
    )


def _back():
    """To the page the action came from, with its filters (only ever this page)."""
    target = request.form.get("next", "")
    return redirect(target if target.startswith("/deliveries") and "//" not in target else url_for(".index"))


def _check_csrf() -> None:
    if not FlaskForm().validate_on_submit():  # only the CSRF token to check
        abort(400)


@bp.post("/deliveries/<int:delivery_id>/<action>")
@role_required(Role.EDITOR)
def act(delivery_id: int, action: str):
    if action not in ACTIONS:
        abort(404)
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None:
        abort(404)
    _check_csrf()
    apply_action(delivery, action)
    return _back()


def apply_action(delivery: Delivery, action: str) -> None:
    """An editor's retry, mark-as-sent or cancel (conditional in dispatch), said in a flash message."""
    run, done = ACTIONS[action]
    channel = delivery.channel.name
    if run(delivery):
        db.session.commit()
        flash(done % {"channel": channel}, "success")
    else:
        db.session.rollback()
        db.session.refresh(delivery)
        flash(refusal(channel, delivery.state), "error")


@bp.post("/deliveries/retry-failed")
@role_required(Role.EDITOR)
def retry_failed():
    """Every failed delivery of one channel that the page shows (its search included), tried again."""
    _check_csrf()
    channel = db.session.get(Channel, request.form.get("channel", type=int) or 0)
    if channel is None:
        flash(_("Choose a channel first: failed deliveries are retried one channel at a time."), "error")
        return _back()
    query = _narrow(select(Delivery).join(Delivery.item).where(TABS["failed"][1]), channel.id,
                    request.form.get("q", "").strip()).order_by(Delivery.id)
    retried = last_id = 0
    while True:  # in batches, each committed, so a long list does not hold one long transaction
        batch = db.session.scalars(query.where(Delivery.id > last_id).limit(BULK_BATCH)).all()
        if not batch:
            break
        retried += sum(dispatch.retry_now(d) for d in batch)
        last_id = batch[-1].id
        db.session.commit()
    if retried:
        flash(_("%(count)d failed deliveries to %(channel)s will be tried again now.", count=retried,
                channel=channel.name), "success")
    else:
        flash(_("No failed delivery to %(channel)s was left to retry.", channel=channel.name), "info")
    return _back()
