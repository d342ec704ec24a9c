"""Blueprints, one per area of the site."""

from __future__ import annotations

from importlib import import_module

from flask import Flask

BLUEPRINTS = (
    "publisher.web.auth",
    "publisher.web.health",
    "publisher.web.items",
    "publisher.web.channels",
    "publisher.web.settings",
    "publisher.web.calendar_view",
    "publisher.web.feeds",
    "publisher.web.archive",
    "publisher.web.demo",
    "publisher.web.api",
    "publisher.web.tokens",
    "publisher.web.columns",
    "publisher.web.dashboard",
    "publisher.web.ics",
    "publisher.web.previews",
    "publisher.web.media",
    "publisher.web.deliveries",
    "publisher.web.queue",
)


def register_blueprints(app: Flask) -> None:
    for name in BLUEPRINTS:
        app.register_blueprint(import_module(name).bp)
