"""Per-channel previews: exactly what each channel the item is planned on will receive.

Every preview comes from the adapter's own `render`, the same call the worker makes before it
sends (dispatch.run), so what the editor reads before approving is what goes out. The length is
counted the way the channel counts it (its `limits.length_unit`), because a WeCom bot limits
UTF-8 bytes, not characters, and Chinese text takes three bytes a character.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from channels import registry
from channels.text import count

from .extensions import db
from .models import Channel, DeliveryStatus, Item
from .posts import build_post

MASK = "••••••"
MASK_MIN = 6  # shorter values are not real secrets, and hiding them would garble the text


@dataclass
class Preview:
    channel_id: int
    channel_name: str
    channel_type: str
    type_label: str
    enabled: bool
    payload: str = ""  # what the channel receives; pretty JSON for JSON payloads
    text: str = ""  # the adapter's text preview
    length: int = 0
    unit: str = "characters"
    max_length: int | None = None
    over_by: int = 0  # how far over the limit; 0 when it fits
    markup: str = "plain"
    error: str = ""  # in editor words; the other fields are empty then

    @property
    def over_limit(self) -> bool:
        return self.over_by > 0

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "over_limit": self.over_limit}


def planned_channels(item: Item) -> list[Channel]:
    """The item's deliveries' channels (cancelled ones left out); else its column's default
    channels; else every enabled channel, so an unplanned draft can still be previewed."""
    channels: dict[int, Channel] = {}
    for delivery in item.deliveries:
        if delivery.status != DeliveryStatus.CANCELLED:
            channels.setdefault(delivery.channel_id, delivery.channel)
    if channels:
        return list(channels.values())
    if item.column is not None and item.column.default_channels:
        return list(item.column.default_channels)
    return list(db.session.execute(select(Channel).where(Channel.enabled).order_by(Channel.name)).scalars())


def _payload_text(payload: Any) -> str:
    if isinstance(payload, bytes):
        return payload.decode("utf-8", errors="replace")
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, ensure_ascii=False, indent=2, default=str)


def mask(text: str, secrets: list[str]) -> str:
    # Defence in depth: an adapter that echoes a token into its payload must not show it here.
    for secret in secrets:
        if len(secret) >= MASK_MIN:
            text = text.replace(secret, MASK)
    return text


def preview(item: Item, channel: Channel) -> Preview:
    """One channel's preview. Never raises for a broken channel or a failing render: the error is
    part of the preview, in words, so the page shows it next to the channels that work."""
    base = Preview(channel_id=channel.id, channel_name=channel.name, channel_type=channel.type,
                   type_label=channel.type, enabled=channel.enabled)
    try:
        adapter_cls = registry.get(channel.type)
    except registry.UnknownChannelType:
        base.error = _("This channel's type (%(type)s) is not installed on this server, so it cannot be "
                       "previewed or sent.", type=channel.type)
        return base
    base.type_label = str(adapter_cls.label or channel.type)
    limits = adapter_cls.limits
    base.unit, base.max_length, base.markup = limits.length_unit, limits.max_length, limits.markup
    try:
        config = channel.config
    except Exception:  # encrypted with another SECRET_KEY: the worker could not send either
        base.error = _("This channel's settings cannot be read on this server (they were saved with another "
                       "secret key). An administrator must enter them again.")
        return base
    secrets = [str(config[name]) for name in adapter_cls.secret_fields() if config.get(name) not in (None, "")]
    try:
        message = adapter_cls(config).render(build_post(item))
        length = count(message.preview, limits.length_unit)
    except Exception as exc:
        base.error = _("%(channel)s cannot format this item: %(reason)s. Change the item, or this channel's "
                       "settings, before it is sent.", channel=base.type_label,
                       reason=mask(str(exc), secrets) or type(exc).__name__)
        return base
    base.payload = mask(_payload_text(message.payload), secrets)
    base.text = mask(message.preview, secrets)
    base.length = length
    if limits.max_length is not None:
        base.over_by = max(0, length - limits.max_length)
    return base


def previews(item: Item) -> list[Preview]:
    return [preview(item, channel) for channel in planned_channels(item)]
