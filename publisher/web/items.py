"""Items: the list (home page), writing and scheduling, the item page with its live deliveries."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.exc import StaleDataError
from wtforms import (
    HiddenField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)

from channels import registry

from .. import dispatch
from ..extensions import db
from ..i18n import localtime, org_zone
from ..items import Invalid, create_item, schedule_item, validate_item
from ..markup import to_html
from ..models import ACTIVE_STATUSES, Channel, Column, Delivery, DeliveryStatus, Format, Item, Origin, Role
from ..security import role_required

bp = Blueprint("items", __name__)

FINAL_STATUSES = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.UNCONFIRMED, DeliveryStatus.CANCELLED)
PER_PAGE = 50


# --- forms ---------------------------------------------------------------------------------------

class CheckboxesField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class ItemForm(FlaskForm):
    # Choices are checked by publisher.items (validate_choice=False), so the page and the API
    # explain a bad value with the same words.
    title = StringField(_l("Title"))
    body = TextAreaField(_l("Text (Markdown)"))
    column_id = SelectField(_l("Column"), validate_choice=False)
    origin = SelectField(_l("Origin"), validate_choice=False, choices=[
        SelectChoice(Origin.PGC, _l("PGC: made by our team")), SelectChoice(Origin.UGC, _l("UGC: from the community")),
    ])
    format = SelectField(_l("Format"), validate_choice=False, choices=[
        SelectChoice(Format.ARTICLE, _l("Article")), SelectChoice(Format.IMAGE, _l("Image")),
        SelectChoice(Format.VIDEO, _l("Video")), SelectChoice(Format.AUDIO, _l("Audio")),
        SelectChoice(Format.EVENT, _l("Event")),
    ])


class EditForm(ItemForm):
    version = HiddenField()


class ScheduleForm(FlaskForm):
    channel_ids = CheckboxesField(_l("Channels"), coerce=int, validate_choice=False)
    when = RadioField(_l("When"), default="now",
                      choices=[SelectChoice("now", _l("Publish now")), SelectChoice("at", _l("At a date and time"))])
    due_at = StringField(_l("Date and time"))


class NewItemForm(ItemForm, ScheduleForm):
    pass


def _column_choices() -> list[SelectChoice]:
    columns = db.session.scalars(select(Column).order_by(Column.name))
    return [SelectChoice("", _("No column"))] + [SelectChoice(str(c.id), c.name) for c in columns]


def _offer_channels(form: ScheduleForm) -> list[tuple[int, str, str]]:
    """Offer the enabled channels in the form; returns (id, name, type label) for the page."""
    channels = db.session.scalars(select(Channel).where(Channel.enabled.is_(True)).order_by(Channel.name))
    offered = [(c.id, c.name, type_label(c.type)) for c in channels]
    form.channel_ids.choices = [SelectChoice(cid, name) for cid, name, _label in offered]
    return offered


def type_label(type_: str) -> str:
    try:
        return _(registry.get(type_).label)
    except registry.UnknownChannelType:
        return type_


def _item_data(form: ItemForm) -> dict:
    column_id = form.column_id.data or ""
    if column_id and not column_id.isdigit():
        raise Invalid({"column_id": _("No such column.")})
    return {"title": form.title.data, "body": form.body.data, "column_id": column_id or None,
            "origin": form.origin.data, "format": form.format.data}


def local_to_utc(value: str, zone: ZoneInfo) -> datetime:
    """A datetime-local value ("2030-01-01T20:00", seconds optional) read in `zone`."""
    try:
        naive = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Invalid({"due_at": _("Enter a date and time, e.g. 2030-01-01 20:00.")}) from None
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    utc = naive.replace(tzinfo=zone).astimezone(UTC)
    # A wall-clock time inside a daylight-saving jump does not exist; do not guess which one was meant.
    if utc.astimezone(zone).replace(tzinfo=None) != naive:
        raise Invalid({"due_at": _("%(time)s does not exist in %(zone)s (the clocks skip it). Choose another time.",
                                   time=value, zone=zone.key)})
    return utc


def _due_at(form: ScheduleForm, zone: ZoneInfo) -> datetime | None:
    if form.when.data != "at":
        return None
    if not (form.due_at.data or "").strip():
        raise Invalid({"due_at": _("Choose a date and time, or publish now.")})
    return local_to_utc(form.due_at.data, zone)


def _form_errors(form: FlaskForm) -> dict[str, str]:
    return {name: messages[0] for name, messages in form.errors.items() if messages}


def _load(item_id: int) -> Item:
    item = db.session.scalar(
        select(Item).where(Item.id == item_id).options(
            joinedload(Item.column), joinedload(Item.author),
            selectinload(Item.deliveries).options(joinedload(Delivery.channel), selectinload(Delivery.events)),
        )
    )
    if item is None:
        abort(404)
    return item


# --- what a delivery's state means, in words ---------------------------------------------------

STATUS_NAMES = {
    DeliveryStatus.SCHEDULED: _l("scheduled"), DeliveryStatus.QUEUED: _l("queued"),
    DeliveryStatus.SENDING: _l("being sent"), DeliveryStatus.SENT: _l("sent"), DeliveryStatus.FAILED: _l("failed"),
    DeliveryStatus.UNCONFIRMED: _l("unconfirmed"), DeliveryStatus.CANCELLED: _l("cancelled"),
}

REASON_LABELS = {
    "scheduled": _l("Planned"),
    "claimed": _l("Picked up"),
    "sending": _l("Sending"),
    "sent": _l("Sent"),
    "rate_limited": _l("Slowed down by the channel"),
    "retryable": _l("Temporary error"),
    "gave_up": _l("Gave up"),
    "permanent": _l("Refused by the channel"),
    "unknown": _l("No answer"),
    "render_error": _l("Could not be prepared"),
    "queue_lost": _l("Handed out again"),
    "worker_lost": _l("Interrupted"),
    "cancelled": _l("Cancelled"),
    "manual": _l("By an editor"),
}


def explain(delivery: Delivery) -> str:
    """One sentence for the delivery's current state, from the last thing that happened to it."""
    reason = delivery.events[-1].reason if delivery.events else "scheduled"
    status = delivery.status
    at = localtime(delivery.next_attempt_at, "HH:mm:ss")
    waiting = status == DeliveryStatus.SCHEDULED
    if waiting and reason == "scheduled":
        return _("Planned; it goes out at %(time)s.", time=localtime(delivery.due_at))
    if waiting and reason == "manual":
        return _("An editor asked to try again; it goes out at %(time)s.", time=at)
    if waiting and reason == "rate_limited":
        return _("The channel asked us to slow down; trying again at %(time)s.", time=at)
    if waiting and reason == "retryable":
        return _("The channel could not take it just now (it may be down or busy); trying again at %(time)s.",
                 time=at)
    if waiting and reason == "unknown":
        return _("We got no answer; sending again at %(time)s. The channel drops repeats, so it will not appear "
                 "twice.", time=at)
    if waiting and reason == "worker_lost":
        return _("The worker stopped in the middle of sending; trying again at %(time)s (the channel drops "
                 "repeats).", time=at)
    if waiting and reason == "queue_lost":
        return _("It waited too long for a worker, so it was handed out again.")
    if status == DeliveryStatus.FAILED and reason == "gave_up":
        return _("The channel kept failing, so we stopped after %(count)d tries. Retry when it works again.",
                 count=delivery.failures)
    if status == DeliveryStatus.FAILED and reason == "render_error":
        return _("The item could not be prepared for this channel; its settings may be incomplete.")
    if status == DeliveryStatus.UNCONFIRMED and reason == "worker_lost":
        return _("The worker stopped in the middle of sending, so we cannot tell whether it arrived. Look at the "
                 "channel, then mark it as sent or retry.")
    if status == DeliveryStatus.SENT and reason == "manual":
        return _("An editor marked it as sent.")
    return _status_sentence(status, at)


def _status_sentence(status: str, at: str) -> str:
    if status == DeliveryStatus.SCHEDULED:
        return _("Waiting; it goes out at %(time)s.", time=at)
    if status == DeliveryStatus.QUEUED:
        return _("Picked up by the scheduler; waiting for a free worker.")
    if status == DeliveryStatus.SENDING:
        return _("Being sent to the channel right now.")
    if status == DeliveryStatus.SENT:
        return _("The channel accepted it.")
    if status == DeliveryStatus.FAILED:
        return _("The channel refused it. Check the channel's settings or the content, then retry.")
    if status == DeliveryStatus.UNCONFIRMED:
        return _("We sent it but got no answer, so we cannot tell whether it arrived. Look at the channel, then "
                 "mark it as sent or retry.")
    return _("Cancelled by an editor.")


def _deliveries_context(item: Item) -> dict:
    final = all(d.status in FINAL_STATUSES for d in item.deliveries)
    return {"item": item, "final": final, "explain": explain, "reason_labels": REASON_LABELS,
            "can_act": current_user.can(Role.EDITOR)}


# --- pages ---------------------------------------------------------------------------------------

@bp.get("/")
@login_required
def index():
    page = request.args.get("page", 1, type=int)
    query = (
        select(Item)
        .options(joinedload(Item.column), selectinload(Item.deliveries).joinedload(Delivery.channel))
        .order_by(Item.created_at.desc(), Item.id.desc())
    )
    items = db.paginate(query, page=page, per_page=PER_PAGE, error_out=False)
    next_due = {
        item.id: min((d.next_attempt_at for d in item.deliveries if d.status in ACTIVE_STATUSES), default=None)
        for item in items
    }
    return render_template("web/items/index.html", items=items, next_due=next_due,
                           can_write=current_user.can(Role.EDITOR))


@bp.route("/items/new", methods=["GET", "POST"])
@role_required(Role.EDITOR)
def new():
    zone = org_zone()
    form = NewItemForm()
    form.column_id.choices = _column_choices()
    channels = _offer_channels(form)
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            item = create_item(_item_data(form), current_user)
            if form.channel_ids.data:
                schedule_item(item, form.channel_ids.data, _due_at(form, zone))
            db.session.commit()
        except Invalid as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            if item.deliveries:
                flash(_("Saved and scheduled on %(count)d channel(s).", count=len(item.deliveries)), "success")
            else:
                flash(_("Saved as a draft. Choose channels below to schedule it."), "info")
            return redirect(url_for("items.show", item_id=item.id))
    errors = {**_form_errors(form), **errors}
    return render_template("web/items/new.html", form=form, errors=errors, channels=channels,
                           zone=zone.key), 400 if errors else 200


@bp.get("/items/<int:item_id>")
@login_required
def show(item_id: int):
    item = _load(item_id)
    form = ScheduleForm()
    channels = _offer_channels(form)
    return render_template("web/items/show.html", body_html=to_html(item.body), form=form, channels=channels,
                           errors={}, zone=org_zone().key, **_deliveries_context(item))


@bp.get("/items/<int:item_id>/deliveries")
@login_required
def deliveries(item_id: int):
    """The deliveries table alone; the item page fetches it every second."""
    item = _load(item_id)
    html = render_template("web/items/_deliveries.html", **_deliveries_context(item))
    return html, 200, {"Cache-Control": "no-store"}


@bp.post("/items/<int:item_id>/schedule")
@role_required(Role.EDITOR)
def schedule(item_id: int):
    zone = org_zone()
    item = _load(item_id)
    form = ScheduleForm()
    channels = _offer_channels(form)
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            made = schedule_item(item, form.channel_ids.data or [], _due_at(form, zone))
            db.session.commit()
        except Invalid as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            flash(_("Scheduled on %(count)d more channel(s).", count=len(made)), "success")
            return redirect(url_for("items.show", item_id=item.id))
    errors = {**_form_errors(form), **errors}
    item = _load(item_id)
    return render_template("web/items/show.html", body_html=to_html(item.body), form=form, channels=channels,
                           errors=errors, zone=zone.key, **_deliveries_context(item)), 400


ACTIONS = {
    "cancel": (dispatch.cancel, _l("The delivery to %(channel)s is cancelled.")),
    "retry": (dispatch.retry_now, _l("The delivery to %(channel)s will be tried again now.")),
    "mark-sent": (dispatch.mark_sent, _l("The delivery to %(channel)s is marked as sent.")),
}


@bp.post("/items/<int:item_id>/deliveries/<int:delivery_id>/<action>")
@role_required(Role.EDITOR)
def act(item_id: int, delivery_id: int, action: str):
    if action not in ACTIONS:
        abort(404)
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.item_id != item_id:
        abort(404)
    form = FlaskForm()
    if not form.validate_on_submit():  # only the CSRF token to check
        abort(400)
    run, done = ACTIONS[action]
    channel = delivery.channel.name
    if run(delivery):
        db.session.commit()
        flash(done % {"channel": channel}, "success")
    else:
        db.session.rollback()
        db.session.refresh(delivery)
        flash(_("The delivery to %(channel)s is %(status)s by now, so nothing was changed.", channel=channel,
                status=STATUS_NAMES.get(delivery.status, delivery.status)), "error")
    return redirect(url_for("items.show", item_id=item_id))


@bp.route("/items/<int:item_id>/edit", methods=["GET", "POST"])
@role_required(Role.EDITOR)
def edit(item_id: int):
    item = _load(item_id)
    form = EditForm(obj=item) if request.method == "GET" else EditForm()
    form.column_id.choices = _column_choices()
    if request.method == "GET":
        form.column_id.data = str(item.column_id or "")
        form.version.data = str(item.version)
    errors: dict[str, str] = {}
    conflict = False
    if form.validate_on_submit():
        if form.version.data != str(item.version):
            conflict = True
        else:
            try:
                for name, value in validate_item(_item_data(form)).items():
                    setattr(item, name, value)
                db.session.commit()
            except Invalid as exc:
                db.session.rollback()
                errors = exc.errors
            except StaleDataError:  # changed between our read and our write
                db.session.rollback()
                conflict = True
            else:
                flash(_("Saved."), "success")
                return redirect(url_for("items.show", item_id=item.id))
    if conflict:
        item = _load(item_id)
        errors["form"] = _("Someone else changed this item while you were editing it, so your changes were not "
                           "saved. Copy your text, then reload the page to see their version.")
    errors = {**_form_errors(form), **errors}
    sent = [d.channel.name for d in item.deliveries if d.status == DeliveryStatus.SENT]
    pending = [d.channel.name for d in item.deliveries if d.status in ACTIVE_STATUSES]
    return render_template("web/items/edit.html", form=form, item=item, errors=errors, sent=sent,
                           pending=pending), 409 if conflict else 400 if errors else 200
