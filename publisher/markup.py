"""Markdown to safe HTML: markdown-it-py renders, nh3 (ammonia) removes anything unsafe."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_md = MarkdownIt("commonmark", {"linkify": False, "typographer": False}).enable("table").enable("strikethrough")


def to_html(markdown: str) -> Markup:
    html = _md.render(markdown or "")
    return Markup(nh3.clean(html, link_rel="noopener noreferrer nofollow"))  # noqa: S704  (sanitised by nh3)
