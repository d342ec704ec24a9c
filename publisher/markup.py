"""Markdown to safe HTML for our own pages (the archive, previews): the same as the feeds'."""

from __future__ import annotations

from markupsafe import Markup

from channels.markup import safe_html


def to_html(markdown: str) -> Markup:
    return Markup(safe_html(markdown))  # noqa: S704  (sanitised by nh3)
