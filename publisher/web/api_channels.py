"""/api/channels and /api/channel-types. Anyone logged in reads; only admins change channels."""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import exists, select

from channels import registry
from channels.base import Channel as Adapter

from ..crypto import SecretsUnreadable
from ..extensions import db
from ..items import Invalid
from ..models import Channel, Delivery, Role
from .api_common import ApiError, json_body, not_found, require
from .api_json import adapter_for, channel_json, channel_type_json

KIND_TYPES: dict[str, tuple[type, ...]] = {"integer": (int,), "boolean": (bool,)}


def _channel(channel_id: int) -> Channel:
    channel = db.session.get(Channel, channel_id)
    if channel is None:
        raise not_found(_("channel"))
    return channel


def _kind_ok(kind: str, value: Any) -> bool:
    if kind == "integer" and isinstance(value, bool):
        return False
    return isinstance(value, KIND_TYPES.get(kind, (str,)))


def _config_errors(adapter: type[Adapter], given: dict, merged: dict) -> dict[str, str]:
    """Check the settings a caller sent (`given`) and the configuration that would result (`merged`)."""
    fields = {f.name: f for f in adapter.fields}
    errors: dict[str, str] = {}
    for key, value in given.items():
        field = fields.get(key)
        if field is None:
            errors[f"config.{key}"] = _("This channel type has no such setting.")
        elif value is not None and not _kind_ok(field.kind, value):
            errors[f"config.{key}"] = _("Expected a value of kind %(kind)s.", kind=field.kind)
    for key, message in adapter.validate_config(merged).items():
        errors.setdefault(f"config.{key}", _("This setting is required.") if message == "required" else message)
    return errors


def _name_and_enabled(data: dict, errors: dict[str, str], required: bool) -> None:
    if "name" in data or required:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            errors["name"] = _("A name is required.")
        elif len(name.strip()) > 120:
            errors["name"] = _("The name is longer than 120 characters.")
    if "enabled" in data and not isinstance(data["enabled"], bool):
        errors["enabled"] = _("Must be true or false.")


def list_channels():
    return {"data": [channel_json(c) for c in db.session.scalars(select(Channel).order_by(Channel.id))]}


def get_channel(channel_id: int):
    return channel_json(_channel(channel_id))


def create():
    require(Role.ADMIN)
    data = json_body({"name", "type", "enabled", "config"})
    errors: dict[str, str] = {}
    _name_and_enabled(data, errors, required=True)
    adapter = adapter_for(data["type"]) if isinstance(data.get("type"), str) else None
    if adapter is None:
        errors["type"] = _("Unknown channel type. Available: %(types)s.", types=", ".join(sorted(registry.available())))
    config = data.get("config", {})
    if not isinstance(config, dict):
        errors["config"] = _("Must be a JSON object.")
    elif adapter is not None:
        config = {k: v for k, v in config.items() if v is not None}
        errors.update(_config_errors(adapter, config, config))
    if errors:
        raise Invalid(errors)
    channel = Channel(name=data["name"].strip(), type=adapter.type, enabled=data.get("enabled", True))
    channel.config = config
    db.session.add(channel)
    db.session.commit()
    return channel_json(channel), 201, {"Location": url_for("api.channel", channel_id=channel.id)}


def update(channel_id: int):
    """Settings not sent are kept, secrets included; a setting sent as null is removed."""
    require(Role.ADMIN)
    channel = _channel(channel_id)
    data = json_body({"name", "enabled", "config"})
    errors: dict[str, str] = {}
    _name_and_enabled(data, errors, required=False)
    given = data.get("config")
    if given is not None and not isinstance(given, dict):
        errors["config"] = _("Must be a JSON object.")
        given = None
    merged = None
    if given is not None:
        adapter = adapter_for(channel.type)
        if adapter is None:
            raise ApiError(409, "conflict", _("The adapter for channel type %(type)s is not installed; its settings "
                                              "cannot be checked.", type=channel.type))
        try:
            merged = dict(channel.config)
        except SecretsUnreadable:
            merged = {}  # encrypted with another key: every setting, secrets too, must be sent again
        for key, value in given.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        errors.update(_config_errors(adapter, given, merged))
    if errors:
        raise Invalid(errors)
    if "name" in data:
        channel.name = data["name"].strip()
    if "enabled" in data:
        channel.enabled = data["enabled"]
    if merged is not None:
        channel.config = merged
    db.session.commit()
    return channel_json(channel)


def delete(channel_id: int):
    require(Role.ADMIN)
    channel = _channel(channel_id)
    if db.session.scalar(select(exists().where(Delivery.channel_id == channel.id))):
        raise ApiError(409, "conflict", _("This channel has deliveries, so it cannot be deleted (their history "
                                          "would be lost). Switch it off instead (\"enabled\": false)."))
    db.session.delete(channel)
    db.session.commit()
    return "", 204


def channel_types():
    return {"data": [channel_type_json(a) for _type, a in sorted(registry.available().items())]}
