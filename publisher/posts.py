"""Turning an item into the channel-neutral Post that every adapter renders."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app

from channels.base import Post

from .i18n import organisation
from .media import path_of
from .models import Item, ItemStatus, Media
from .schedule import Numbering


def public_url(item: Item) -> str:
    return f"{current_app.config['BASE_URL'].rstrip('/')}/archive/{item.id}"


def media_url(media: Media) -> str:
    """Absolute, so that channels and feed readers can fetch it (the random name is the capability)."""
    return f"{current_app.config['BASE_URL'].rstrip('/')}/media/{media.stored_name}"


def issue_number(item: Item) -> int | None:
    """The final number once published; before that the number it will get if everything planned
    before it in its column goes out first (the same count as the calendar and the column pages)."""
    if item.issue_number is not None or item.column is None or item.planned_at is None \
            or item.status == ItemStatus.PUBLISHED:
        return item.issue_number
    at = item.planned_at.replace(microsecond=0)  # the numbering works in whole seconds, like slots
    return Numbering([item.column], at, at + timedelta(seconds=1), slots_of=set()).predicted(item.column_id, at)


def _brand(item: Item) -> dict[str, Any]:
    column = item.column
    if column is None:
        return {}
    return {"intro": column.intro, "signoff": column.signoff, "hashtags": column.hashtag_list,
            "color": column.color, "cover": media_url(column.cover) if column.cover else None}


def _extra(item: Item) -> dict[str, Any]:
    if item.format == "event":
        return {"start": item.event_start.isoformat() if item.event_start else None,
                "end": item.event_end.isoformat() if item.event_end else None,
                "place": item.event_place, "online_url": item.event_url}
    if item.format in ("video", "audio"):
        return {"file_url": media_url(item.file) if item.file else None,
                "content_type": item.file.content_type if item.file else None,
                "link_url": item.link_url, "duration_seconds": item.duration_seconds}
    return {}


def build_post(item: Item) -> Post:
    images = ([item.cover] if item.cover else []) + [m for m in item.media if m.id != item.cover_id]
    org = organisation()
    return Post(
        title=item.title,
        body=item.body,
        url=public_url(item),
        format=item.format,
        images=[media_url(m) for m in images],
        column=item.column.name if item.column else "",
        brand=_brand(item),
        origin=item.origin,
        author=(item.author.name or "") if item.author else "",
        item_id=item.id,
        published_at=item.published_at.isoformat() if item.published_at else None,
        issue_number=issue_number(item),
        theme=item.theme,
        extra=_extra(item),
        locale=org.locale,
        timezone=org.timezone,
        image_files=[str(path_of(m)) for m in images],
    )
