"""Channels: where items go. Admins set them up; everyone else sees the list, never a secret.

The settings form of a channel is generated from its adapter's `fields` (channels.base.Field).
Secret fields are password inputs that are never filled back; left blank on edit, the stored
value stays.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import exists, func, select
from wtforms import BooleanField, PasswordField, StringField, TextAreaField
from wtforms.widgets import NumberInput, URLInput

from channels import registry
from channels.base import Channel as Adapter
from channels.base import Field

from .. import ratelimit
from ..crypto import SecretsUnreadable
from ..extensions import db, limiter
from ..models import Channel, Delivery, DeliveryStatus, Role
from ..security import role_required
from ..test_message import send_test

bp = Blueprint("channels", __name__, url_prefix="/channels")
log = logging.getLogger(__name__)
PREFIX = "cfg_"  # form names of the adapter's fields, so they cannot clash with "name" or "csrf_token"


def _form_field(f: Field):
    label = _(f.label)
    if f.secret:
        return PasswordField(label)  # never rendered with its value
    if f.kind == "boolean":
        return BooleanField(label, default=bool(f.default))
    if f.kind == "text":
        return TextAreaField(label, default=f.default)
    widget = {"url": URLInput(), "integer": NumberInput()}.get(f.kind)
    return StringField(label, default=f.default, widget=widget) if widget else StringField(label, default=f.default)


def channel_form(adapter: type[Adapter], stored: dict | None = None) -> FlaskForm:
    """A form with the channel's name and the adapter's fields, filled with the stored non-secret values."""
    attrs = {"name": StringField(_l("Name")), "rate_limit": StringField(_l("Rate limit"))}
    attrs.update({PREFIX + f.name: _form_field(f) for f in adapter.fields})
    form_class = type(f"{adapter.__name__}Form", (FlaskForm,), attrs)
    if stored is None:
        return form_class()
    data = {PREFIX + f.name: stored.get(f.name) for f in adapter.fields if not f.secret and f.name in stored}
    return form_class(data={**data, "rate_limit": stored.get("rate_limit", "")})


def _read_config(adapter: type[Adapter], form: FlaskForm, stored: dict) -> tuple[dict, dict[str, str]]:
    """The new configuration from the form, and errors by form field name."""
    config = dict(stored)
    errors: dict[str, str] = {}
    for f in adapter.fields:
        key = PREFIX + f.name
        raw = form[key].data
        if f.kind == "boolean":
            config[f.name] = bool(raw)
            continue
        text = "" if raw is None else str(raw)  # a default (e.g. an integer) when the field was not posted
        if f.kind != "text":
            text = text.strip()
        if not text.strip():
            if not f.secret:  # a blank secret keeps the stored one
                config.pop(f.name, None)
            continue
        if f.kind == "url":
            parts = urlsplit(text)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                errors[key] = _("Enter a full address starting with http:// or https://.")
                continue
        if f.kind == "integer":
            try:
                config[f.name] = int(text)
            except ValueError:
                errors[key] = _("Enter a whole number.")
            continue
        config[f.name] = text
    rule = (form.rate_limit.data or "").strip()
    config.pop("rate_limit", None)
    if rule:
        try:
            ratelimit.parse(rule)
            config["rate_limit"] = rule  # overrides the adapter's, for every worker (publisher/ratelimit.py)
        except ratelimit.InvalidLimit:
            errors["rate_limit"] = _("Write a limit like 20/minute, 1/second or 5/second;100/minute.")
    for name, message in adapter.validate_config(config).items():
        errors.setdefault(PREFIX + name, _("This is required.") if message == "required" else message)
    return config, errors


def _texts(adapter: type[Adapter]) -> dict:
    """The adapter's label and help texts, translated here: in a template, `_()` would mark them safe HTML."""
    return {"label": _(adapter.label), "help": {f.name: _(f.help) for f in adapter.fields if f.help}}


def _adapter(type_: str) -> type[Adapter]:
    try:
        return registry.get(type_)
    except registry.UnknownChannelType:
        abort(404)


def _channel(channel_id: int) -> Channel:
    channel = db.session.get(Channel, channel_id)
    if channel is None:
        abort(404)
    return channel


def _save(channel: Channel, adapter: type[Adapter], form: FlaskForm, stored: dict) -> dict[str, str]:
    """Validate and store; returns errors (nothing is stored when there are any)."""
    config, errors = _read_config(adapter, form, stored)
    name = (form.name.data or "").strip()
    if not name:
        errors["name"] = _("A name is required.")
    elif len(name) > 120:
        errors["name"] = _("The name is longer than 120 characters.")
    if errors:
        return errors
    channel.name = name
    channel.config = config
    db.session.add(channel)
    db.session.commit()
    return {}


@bp.get("")
@login_required
def index():
    channels = list(db.session.scalars(select(Channel).order_by(Channel.name, Channel.id)))
    counts: dict[tuple[int, str], int] = {
        (channel_id, status): n
        for channel_id, status, n in db.session.execute(
            select(Delivery.channel_id, Delivery.status, func.count())
            .where(Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.FAILED)))
            .group_by(Delivery.channel_id, Delivery.status)
        )
    }
    labels = {type_: _(cls.label) for type_, cls in registry.available().items()}
    return render_template("web/channels/index.html", channels=channels, counts=counts, labels=labels,
                           can_admin=current_user.role == Role.ADMIN)


@bp.get("/new")
@role_required(Role.ADMIN)
def choose():
    adapters = sorted(((cls.type, _(cls.label)) for cls in registry.available().values()), key=lambda a: a[1])
    return render_template("web/channels/choose.html", adapters=adapters)


@bp.route("/new/<type_>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def new(type_: str):
    adapter = _adapter(type_)
    form = channel_form(adapter)
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        channel = Channel(type=adapter.type, enabled=True)
        errors = _save(channel, adapter, form, {})
        if not errors:
            log.info("channel %s (%s) created by user %s", channel.id, channel.type, current_user.id)
            flash(_("Channel %(name)s is set up and switched on.", name=channel.name), "success")
            return redirect(url_for("channels.index"))
    errors = {**{k: v[0] for k, v in form.errors.items()}, **errors}
    return render_template("web/channels/form.html", form=form, adapter=adapter, texts=_texts(adapter),
                           errors=errors, channel=None, stored_secrets=set()), 400 if errors else 200


@bp.route("/<int:channel_id>/edit", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def edit(channel_id: int):
    channel = _channel(channel_id)
    adapter = _adapter(channel.type)
    unreadable = False
    try:
        stored = channel.config
    except SecretsUnreadable:
        stored, unreadable = {}, True
    form = channel_form(adapter, stored)
    if not form.is_submitted():
        form.name.data = channel.name
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        errors = _save(channel, adapter, form, stored)
        if not errors:
            log.info("channel %s (%s) changed by user %s", channel.id, channel.type, current_user.id)
            flash(_("Channel %(name)s is saved.", name=channel.name), "success")
            return redirect(url_for("channels.index"))
    errors = {**{k: v[0] for k, v in form.errors.items()}, **errors}
    stored_secrets = {f.name for f in adapter.fields if f.secret and stored.get(f.name)}
    return render_template("web/channels/form.html", form=form, adapter=adapter, texts=_texts(adapter),
                           errors=errors, channel=channel, stored_secrets=stored_secrets,
                           unreadable=unreadable), 400 if errors else 200


@bp.post("/<int:channel_id>/toggle")
@role_required(Role.ADMIN)
def toggle(channel_id: int):
    channel = _channel(channel_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    channel.enabled = not channel.enabled
    db.session.commit()
    if channel.enabled:
        flash(_("Channel %(name)s is switched on.", name=channel.name), "success")
    else:
        flash(_("Channel %(name)s is switched off: its planned deliveries wait until it is switched on again, "
                "and nothing new can be scheduled on it.", name=channel.name), "info")
    return redirect(url_for("channels.index"))


@bp.post("/<int:channel_id>/test")
@role_required(Role.ADMIN)
@limiter.limit(lambda: current_app.config["TEST_MESSAGE_RATE_LIMIT"], key_func=lambda: str(current_user.id))
def test(channel_id: int):
    """Send one real message now and tell what the service answered."""
    channel = _channel(channel_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    _adapter(channel.type)
    try:
        outcome = send_test(channel)
    except SecretsUnreadable:
        flash(_("This channel's settings cannot be read on this server (they were saved with another secret key). "
                "Enter them again."), "error")
        return redirect(url_for("channels.edit", channel_id=channel.id))
    flash(outcome.text, "success" if outcome.ok else "error")
    return redirect(request.form.get("next") if request.form.get("next") == url_for("channels.edit",
                    channel_id=channel.id) else url_for("channels.index"))


@bp.post("/<int:channel_id>/delete")
@role_required(Role.ADMIN)
def delete(channel_id: int):
    channel = _channel(channel_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    if db.session.scalar(select(exists().where(Delivery.channel_id == channel.id))):
        flash(_("Channel %(name)s has deliveries, and deleting it would erase their history. Switch it off "
                "instead: nothing new can be scheduled on it.", name=channel.name), "error")
        return redirect(url_for("channels.index"))
    name = channel.name
    db.session.delete(channel)
    db.session.commit()
    log.info("channel %s deleted by user %s", channel_id, current_user.id)
    flash(_("Channel %(name)s is deleted.", name=name), "success")
    return redirect(url_for("channels.index"))
