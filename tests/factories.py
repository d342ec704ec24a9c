"""Small helpers that create rows the way the application does."""

from __future__ import annotations

from datetime import datetime, timedelta

from publisher import dispatch
from publisher.extensions import db
from publisher.models import Channel, Item, Organisation, utcnow


def make_channel(type_: str = "webhook", name: str | None = None, **config) -> Channel:
    ch = Channel(name=name or f"{type_} channel", type=type_)
    ch.config = config
    db.session.add(ch)
    db.session.commit()
    return ch


def webhook_channel(double, timeout: float = 2, **extra) -> Channel:
    return make_channel("webhook", url=f"{double.url}/hook", secret=double.secret, timeout=timeout, **extra)


def make_item(title: str = "第12期：社群运营", body: str = "**Hello** community", **fields) -> Item:
    item = Item(title=title, body=body, **fields)
    db.session.add(item)
    db.session.commit()
    return item


def scheduled(channels: list[Channel], due_at: datetime | None = None, **item_fields):
    """An item scheduled on `channels` at `due_at` (default: now); returns its deliveries."""
    item = make_item(**item_fields)
    deliveries = dispatch.schedule(item, channels, due_at or utcnow())
    db.session.commit()
    return deliveries


def later(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


def set_organisation(**values) -> Organisation:
    """Change the organisation's settings (its row exists from the first migration on)."""
    org = db.session.get(Organisation, 1)
    for key, value in values.items():
        setattr(org, key, value)
    db.session.commit()
    return org
