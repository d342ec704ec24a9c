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

from .. import media, workflow
from ..delivery_words import ACTIONS, REASON_LABELS, explain
from ..extensions import csrf, db
from ..i18n import localtime, org_zone
from ..items import Conflict, Invalid, create_item, default_channel_ids, validate_item
from ..markup import to_html
from ..models import (
    ACTIVE_STATUSES,
    Channel,
    Column,
    Delivery,
    DeliveryStatus,
    Format,
    Item,
    ItemEvent,
    ItemStatus,
    Media,
    MediaKind,
    Origin,
    Role,
)
from ..posts import issue_number
from ..previews import previews
from ..security import role_required
from .deliveries import apply_action
from .media import allow_uploads

bp = Blueprint("items", __name__)

FINAL_STATUSES = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.UNCONFIRMED, DeliveryStatus.CANCELLED)
PER_PAGE = 50
LIBRARY_OFFER = 60  # the most recent uploads offered in the item form; the rest are on /media


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
    theme = StringField(_l("Theme"))
    planned_at = StringField(_l("Planned time"))
    cover_id = SelectField(_l("Cover image"), validate_choice=False)
    file_id = SelectField(_l("File from the library"), validate_choice=False)
    link_url = StringField(_l("Or a link"))
    duration = StringField(_l("Duration (mm:ss)"))
    event_start = StringField(_l("Starts"))
    event_end = StringField(_l("Ends"))
    event_place = StringField(_l("Place"))
    event_url = StringField(_l("Online link"))


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


def _media_choices(form: ItemForm, item: Item | None) -> dict:
    """Offer the library in the form: images for the cover and the gallery, audio and video files."""
    recent = list(db.session.scalars(select(Media).order_by(Media.id.desc()).limit(LIBRARY_OFFER)))
    attached = list(item.media) if item else []
    images = [m for m in recent if m.kind == MediaKind.IMAGE]
    images += [m for m in attached if m not in images]
    files = [m for m in recent if m.kind in (MediaKind.AUDIO, MediaKind.VIDEO)]
    for current in (item.cover if item else None, item.file if item else None):
        if current is not None and current not in images + files:
            (images if current.kind == MediaKind.IMAGE else files).append(current)
    form.cover_id.choices = [SelectChoice("", _("No cover"))] + [
        SelectChoice(str(m.id), m.original_name or m.stored_name) for m in images]
    form.file_id.choices = [SelectChoice("", _("No file"))] + [
        SelectChoice(str(m.id), f"{m.original_name or m.stored_name} ({m.kind})") for m in files]
    return {"library_images": images}


def _positions(item: Item | None) -> dict[int, int]:
    """The gallery order the form shows: submitted positions, or the item's images."""
    if request.method == "POST":
        return {mid: pos for pos, mid in enumerate(_posted_media_ids(), start=1)}
    return {m.id: pos for pos, m in enumerate(item.media, start=1)} if item else {}


def _posted_media_ids() -> list[int]:
    """Images chosen in the gallery, ordered by the position typed next to each (then by id)."""
    chosen = []
    for key, value in request.form.items():
        if key.startswith("position-") and key[9:].isdigit() and value.strip():
            try:
                chosen.append((float(value), int(key[9:])))
            except ValueError:
                raise Invalid({"media_ids": _("Positions must be numbers (1, 2, 3 …).")}) from None
    return [mid for _pos, mid in sorted(chosen)]


def _upload(name: str) -> list[Media]:
    """Files uploaded with the item form go to the library first (checked by content)."""
    stored = []
    for upload in request.files.getlist(name):
        if not upload or not upload.filename:
            continue
        try:
            stored.append(media.store(upload.stream, upload.filename, current_user)[0])
        except media.Rejected as exc:
            raise Invalid({name: f"{upload.filename}: {exc}"}) from None
    if stored:
        db.session.commit()  # kept in the library even if the item itself is refused below
    return stored


def _item_data(form: ItemForm, zone: ZoneInfo) -> dict:
    column_id = form.column_id.data or ""
    if column_id and not column_id.isdigit():
        raise Invalid({"column_id": _("No such column.")})
    data = {"title": form.title.data, "body": form.body.data, "column_id": column_id or None,
            "origin": form.origin.data, "format": form.format.data, "theme": form.theme.data or "",
            "cover_id": form.cover_id.data or None, "file_id": form.file_id.data or None,
            "link_url": form.link_url.data or "", "duration": form.duration.data or "",
            "event_place": form.event_place.data or "", "event_url": form.event_url.data or ""}
    errors: dict[str, str] = {}
    for name in ("event_start", "event_end", "planned_at"):
        raw = (getattr(form, name).data or "").strip()
        try:
            data[name] = local_to_utc(raw, zone, name) if raw else None
        except Invalid as exc:
            errors.update(exc.errors)
    media_ids = _posted_media_ids()
    uploads = {name: _upload(name) for name in ("cover_upload", "file_upload", "image_uploads")}
    if uploads["cover_upload"]:
        data["cover_id"] = uploads["cover_upload"][0].id
        form.cover_id.data = str(data["cover_id"])
    if uploads["file_upload"]:
        data["file_id"] = uploads["file_upload"][0].id
        form.file_id.data = str(data["file_id"])
    data["media_ids"] = media_ids + [m.id for m in uploads["image_uploads"] if m.id not in media_ids]
    if errors:
        raise Invalid(errors)
    return data


def _form_values(form: ItemForm, item: Item) -> None:
    """Fill the form's extra fields from the item (GET of the edit page)."""
    zone = org_zone()
    form.column_id.data = str(item.column_id or "")
    form.cover_id.data = str(item.cover_id or "")
    form.file_id.data = str(item.file_id or "")
    form.duration.data = format_duration(item.duration_seconds)
    for name in ("event_start", "event_end", "planned_at"):
        value = getattr(item, name)
        getattr(form, name).data = value.astimezone(zone).strftime("%Y-%m-%dT%H:%M") if value else ""


def format_duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def local_to_utc(value: str, zone: ZoneInfo, name: str = "due_at") -> datetime:
    """A datetime-local value ("2030-01-01T20:00", seconds optional) read in `zone`."""
    try:
        naive = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Invalid({name: _("Enter a date and time, e.g. 2030-01-01 20:00.")}) from None
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    utc = naive.replace(tzinfo=zone).astimezone(UTC)
    # A wall-clock time inside a daylight-saving jump does not exist; do not guess which one was meant.
    if utc.astimezone(zone).replace(tzinfo=None) != naive:
        raise Invalid({name: _("%(time)s does not exist in %(zone)s (the clocks skip it). Choose another time.",
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
            joinedload(Item.column), joinedload(Item.author), joinedload(Item.reviewed_by),
            selectinload(Item.media), selectinload(Item.history).joinedload(ItemEvent.user),
            selectinload(Item.deliveries).options(joinedload(Delivery.channel), selectinload(Delivery.events)),
        )
    )
    if item is None:
        abort(404)
    return item


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
@csrf.exempt  # the form's own token is checked (validate_on_submit) after the larger upload limit is set
@role_required(Role.EDITOR)
def new():
    allow_uploads()
    zone = org_zone()
    form = NewItemForm()
    form.column_id.choices = _column_choices()
    library = _media_choices(form, None)
    channels = _offer_channels(form)
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            data = _item_data(form, zone)
            item = create_item(data, current_user)
            if data["planned_at"] is not None:
                item.planned_at = data["planned_at"]
            workflow.record(item, current_user, "created")
            if form.channel_ids.data:
                workflow.plan(item, form.channel_ids.data, _due_at(form, zone), current_user)
            db.session.commit()
        except Invalid as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            if item.deliveries and item.status != ItemStatus.SCHEDULED:
                flash(_("Saved and planned on %(count)d channel(s). Submit it for review: nothing goes out before "
                        "it is approved.", count=len(item.deliveries)), "info")
            elif item.deliveries:
                flash(_("Saved and scheduled on %(count)d channel(s).", count=len(item.deliveries)), "success")
            else:
                flash(_("Saved as a draft. Choose channels below to schedule it."), "info")
            return redirect(url_for("items.show", item_id=item.id))
    errors = {**_form_errors(form), **errors}
    return render_template("web/items/new.html", form=form, errors=errors, channels=channels, zone=zone.key,
                           positions=_positions(None), **library), 400 if errors else 200


def _show(item: Item, form: ScheduleForm | None = None, errors: dict | None = None, status: int = 200):
    """The item page: content, workflow actions, deliveries, history."""
    form = form or ScheduleForm()
    channels = _offer_channels(form)
    if request.method == "GET":
        form.channel_ids.data = default_channel_ids(item)
    user = current_user
    sendable = (ItemStatus.SCHEDULED, ItemStatus.PUBLISHED)
    waiting = [d for d in item.deliveries if d.status == DeliveryStatus.SCHEDULED]
    actions = {
        "submit": user.can(Role.EDITOR) and item.status == ItemStatus.DRAFT,
        "review": user.can(Role.REVIEWER) and item.status == ItemStatus.IN_REVIEW,
        "republish": user.can(Role.EDITOR) and item.status == ItemStatus.PUBLISHED,
        "plan": user.can(Role.EDITOR) and item.status != ItemStatus.PUBLISHED,
    }
    return render_template(
        "web/items/show.html", body_html=to_html(item.body), form=form, channels=channels, errors=errors or {},
        zone=org_zone().key, actions=actions, held=bool(waiting) and item.status not in sendable,
        history=item.history, describe=describe_change, field_labels=FIELD_LABELS, action_labels=ACTION_LABELS,
        duration=format_duration(item.duration_seconds), approval=workflow.approval_required(),
        changes_of=workflow.event_changes, issue=issue_number(item), previews=previews(item),
        **_deliveries_context(item),
    ), status


@bp.get("/items/<int:item_id>")
@login_required
def show(item_id: int):
    return _show(_load(item_id))


@bp.get("/items/<int:item_id>/deliveries")
@login_required
def deliveries(item_id: int):
    """The deliveries table alone; the item page fetches it every second."""
    item = _load(item_id)
    html = render_template("web/items/_deliveries.html", **_deliveries_context(item))
    return html, 200, {"Cache-Control": "no-store"}


def _plan(item_id: int, run, done: str):
    zone = org_zone()
    item = _load(item_id)
    form = ScheduleForm()
    _offer_channels(form)
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            made = run(item, form.channel_ids.data or [], _due_at(form, zone), current_user)
            db.session.commit()
        except Invalid as exc:
            db.session.rollback()
            errors = exc.errors
        except Conflict as exc:
            db.session.rollback()
            flash(str(exc), "error")
            return redirect(url_for("items.show", item_id=item_id))
        else:
            flash(done % {"count": len(made)}, "success")
            return redirect(url_for("items.show", item_id=item.id))
    errors = {**_form_errors(form), **errors}
    return _show(_load(item_id), form, errors, 400)


@bp.post("/items/<int:item_id>/schedule")
@role_required(Role.EDITOR)
def schedule(item_id: int):
    return _plan(item_id, workflow.plan, _("Scheduled on %(count)d more channel(s)."))


@bp.post("/items/<int:item_id>/republish")
@role_required(Role.EDITOR)
def republish(item_id: int):
    return _plan(item_id, workflow.republish, _("Republishing on %(count)d channel(s)."))


def _transition(item_id: int, run, done: str):
    item = _load(item_id)
    form = FlaskForm()
    if not form.validate_on_submit():  # only the CSRF token to check
        abort(400)
    try:
        run(item)
        db.session.commit()
    except workflow.NotAllowed:
        db.session.rollback()
        abort(403)
    except Conflict as exc:
        db.session.rollback()
        flash(str(exc), "error")
    except Invalid as exc:
        db.session.rollback()
        return _show(_load(item_id), errors=exc.errors, status=400)
    else:
        flash(done, "success")
    return redirect(url_for("items.show", item_id=item_id))


@bp.post("/items/<int:item_id>/submit")
@role_required(Role.EDITOR)
def submit(item_id: int):
    return _transition(item_id, lambda item: workflow.submit(item, current_user),
                       _("Submitted for review. A reviewer will approve it or send it back."))


@bp.post("/items/<int:item_id>/approve")
@role_required(Role.REVIEWER)
def approve(item_id: int):
    comment = request.form.get("comment", "")
    return _transition(item_id, lambda item: workflow.approve(item, current_user, comment), _("Approved."))


@bp.post("/items/<int:item_id>/send-back")
@role_required(Role.REVIEWER)
def send_back(item_id: int):
    comment = request.form.get("comment", "")
    return _transition(item_id, lambda item: workflow.send_back(item, current_user, comment),
                       _("Sent back to the author with your comment."))


# --- history in words --------------------------------------------------------------------------

FIELD_LABELS = {
    "title": _l("Title"), "body": _l("Text"), "column_id": _l("Column"), "origin": _l("Origin"),
    "format": _l("Format"), "theme": _l("Theme"), "planned_at": _l("Planned time"), "cover_id": _l("Cover image"),
    "file_id": _l("File"), "link_url": _l("Link"), "duration_seconds": _l("Duration"), "event_start": _l("Starts"),
    "event_end": _l("Ends"), "event_place": _l("Place"), "event_url": _l("Online link"), "media_ids": _l("Images"),
    "channels": _l("Channels"),
}
ACTION_LABELS = {
    "created": _l("Created"), "edited": _l("Edited"), "submitted": _l("Submitted for review"),
    "approved": _l("Approved"), "sent_back": _l("Sent back"), "scheduled": _l("Planned on channels"),
    "republished": _l("Republished"), "back_to_review": _l("Back to review (content changed after submission)"),
    "rescheduled": _l("Moved"), "published": _l("Published"),
}
TIME_FIELDS = ("planned_at", "event_start", "event_end")


def describe_change(name: str, value) -> str:
    """A value from the history as the editor reads it: times in the organisation's zone, short text."""
    if value in (None, "", []):
        return "—"
    if name in TIME_FIELDS:
        return localtime(datetime.fromisoformat(value), "yyyy-MM-dd HH:mm")
    if name == "column_id":
        column = db.session.get(Column, value)
        return column.name if column else str(value)
    if name == "duration_seconds":
        return format_duration(value)
    if isinstance(value, list):
        return ", ".join(map(str, value))
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "…"


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
    apply_action(delivery, action)
    return redirect(url_for("items.show", item_id=item_id))


@bp.route("/items/<int:item_id>/edit", methods=["GET", "POST"])
@csrf.exempt  # as for new(): the form checks its token after the upload limit is set
@role_required(Role.EDITOR)
def edit(item_id: int):
    allow_uploads()
    zone = org_zone()
    item = _load(item_id)
    form = EditForm(obj=item) if request.method == "GET" else EditForm()
    form.column_id.choices = _column_choices()
    library = _media_choices(form, item)
    if request.method == "GET":
        _form_values(form, item)
        form.version.data = str(item.version)
    errors: dict[str, str] = {}
    conflict = False
    if form.validate_on_submit():
        if form.version.data != str(item.version):
            conflict = True
        else:
            try:
                data = _item_data(form, zone)
                item = _load(item_id)  # an upload commits, which expires what we read
                if form.version.data != str(item.version):
                    raise StaleDataError()
                values = validate_item(data)
                values["planned_at"] = data["planned_at"]
                before = item.status
                changes = workflow.edit(item, values, current_user)
                back = before != item.status == ItemStatus.IN_REVIEW
                db.session.commit()
            except Invalid as exc:
                db.session.rollback()
                errors = exc.errors
            except Conflict as exc:
                db.session.rollback()
                errors = {"planned_at": str(exc)}
            except StaleDataError:  # changed between our read and our write
                db.session.rollback()
                conflict = True
            else:
                if not changes:
                    flash(_("Nothing changed."), "info")
                elif back:
                    flash(_("Saved. The content changed, so the item is back in review; its planned deliveries "
                            "wait until it is approved again."), "info")
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
    return render_template("web/items/edit.html", form=form, item=item, errors=errors, sent=sent, pending=pending,
                           zone=zone.key, positions=_positions(item),
                           back_to_review=workflow.back_to_review_on_edit(item), **library), \
        409 if conflict else 400 if errors else 200
