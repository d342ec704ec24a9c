"""Turning an item into the channel-neutral Post that every adapter renders."""

from __future__ import annotations

from flask import current_app

from channels.base import Post

from .models import Item


def public_url(item: Item) -> str:
    return f"{current_app.config['BASE_URL'].rstrip('/')}/archive/{item.id}"


def build_post(item: Item) -> Post:
    return Post(
        title=item.title,
        body=item.body,
        url=public_url(item),
        format=item.format,
        column=item.column.name if item.column else "",
        origin=item.origin,
        author=(item.author.name or "") if item.author else "",
        item_id=item.id,
        published_at=item.published_at.isoformat() if item.published_at else None,
    )
