"""How rows look in the JSON API. The shapes are declared in publisher/web/openapi.py; keep both in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from channels import registry
from channels.base import Channel as Adapter

from ..crypto import SecretsUnreadable
from ..models import ACTIVE_STATUSES, Channel, Delivery, DeliveryEvent, Item, ItemEvent, Media
from ..posts import issue_number, media_url


def iso(value: datetime | None) -> str | None:
    """UTC with an explicit offset, e.g. 2030-01-01T12:00:00+00:00."""
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None


def item_json(item: Item, predicted: bool = False) -> dict[str, Any]:
    """`predicted`: also the issue number the item will get (a query of its own; single items only)."""
    waiting = [d.next_attempt_at for d in item.deliveries if d.status in ACTIVE_STATUSES]
    return {
        "id": item.id,
        "title": item.title,
        "body": item.body,
        "origin": item.origin,
        "format": item.format,
        "status": item.status,
        "column_id": item.column_id,
        "author_id": item.author_id,
        "version": item.version,
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
        "published_at": iso(item.published_at),
        "next_due_at": iso(min(waiting)) if waiting else None,
        "planned_at": iso(item.planned_at),
        "issue_number": item.issue_number,
        **({"predicted_issue_number": issue_number(item)} if predicted else {}),
        "theme": item.theme,
        "cover_id": item.cover_id,
        "file_id": item.file_id,
        "media_ids": [m.id for m in item.media],
        "link_url": item.link_url,
        "duration_seconds": item.duration_seconds,
        "event_start": iso(item.event_start),
        "event_end": iso(item.event_end),
        "event_place": item.event_place,
        "event_url": item.event_url,
        "review": {
            "reviewed_by_id": item.reviewed_by_id,
            "reviewed_at": iso(item.reviewed_at),
            "comment": item.review_comment,
        },
        "deliveries": [delivery_json(d) for d in item.deliveries],
    }


def item_event_json(e: ItemEvent) -> dict[str, Any]:
    from ..workflow import event_changes

    return {"id": e.id, "at": iso(e.at), "user_id": e.user_id, "action": e.action, "changes": event_changes(e),
            "comment": e.comment}


def media_json(m: Media) -> dict[str, Any]:
    return {"id": m.id, "kind": m.kind, "content_type": m.content_type, "size": m.size, "sha256": m.sha256,
            "width": m.width, "height": m.height, "original_name": m.original_name,
            "url": media_url(m), "uploaded_by_id": m.uploaded_by_id, "created_at": iso(m.created_at)}


def delivery_json(d: Delivery, events: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": d.id,
        "item_id": d.item_id,
        "channel_id": d.channel_id,
        "status": d.state,
        "due_at": iso(d.due_at),
        "next_attempt_at": iso(d.next_attempt_at),
        "attempt": d.attempt,
        "failures": d.failures,
        "external_id": d.external_id,
        "external_url": d.external_url,
        "last_reason": d.last_reason,
        "last_error_code": d.last_error_code,
        "last_error": d.last_error,
        "sent_at": iso(d.sent_at),
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }
    if events:
        out["events"] = [event_json(e) for e in d.events]
    return out


def event_json(e: DeliveryEvent) -> dict[str, Any]:
    return {"id": e.id, "at": iso(e.at), "attempt": e.attempt, "status": e.status, "reason": e.reason,
            "code": e.code, "message": e.message}


def adapter_for(type_: str) -> type[Adapter] | None:
    try:
        return registry.get(type_)
    except registry.UnknownChannelType:
        return None


def channel_json(ch: Channel) -> dict[str, Any]:
    """Secret settings are left out entirely; `secrets_set` only says which ones have a value."""
    adapter = adapter_for(ch.type)
    try:
        config = ch.config
        readable = True
    except SecretsUnreadable:
        config, readable = {}, False
    if adapter is None:
        # Without its adapter nobody can say which settings are secret: show none of them.
        public, secret_names = {}, set()
    else:
        secret_names = adapter.secret_fields()
        public = {k: v for k, v in config.items() if k not in secret_names}
    return {
        "id": ch.id,
        "name": ch.name,
        "type": ch.type,
        "enabled": ch.enabled,
        "config": public,
        "secrets_set": sorted(k for k in secret_names if config.get(k) not in (None, "")),
        "config_readable": readable,
        "created_at": iso(ch.created_at),
    }


def channel_type_json(adapter: type[Adapter]) -> dict[str, Any]:
    limits = adapter.limits
    return {
        "type": adapter.type,
        "label": adapter.label,
        "idempotent": adapter.idempotent,
        "fields": [
            {"name": f.name, "label": f.label, "secret": f.secret, "required": f.required, "kind": f.kind,
             "default": f.default, "help": f.help}
            for f in adapter.fields
        ],
        "limits": {"max_length": limits.max_length, "length_unit": limits.length_unit, "markup": limits.markup,
                   "rate_limit": limits.rate_limit},
    }
