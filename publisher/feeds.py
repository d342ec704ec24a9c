"""RSS 2.0 and Atom documents, built with feedgen from plain rows.

Pure functions: the routes in web/feeds.py query the database and pass what they found; nothing
here touches the database or the request, so the same rows always give the same bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from feedgen.feed import FeedGenerator

MAX_ENTRIES = 50


@dataclass(frozen=True)
class FeedInfo:
    """The feed as a whole: whose it is and where it lives."""

    title: str
    description: str
    locale: str  # the organisation's, e.g. "zh_CN"
    author: str  # the organisation's name
    self_url: str  # this very document
    alternate_url: str  # the archive page it mirrors
    updated: datetime  # aware; the newest change among the entries


@dataclass(frozen=True)
class FeedEntry:
    url: str  # the archive page; also the entry's permanent id
    title: str
    html: str  # already sanitised (publisher.markup.to_html)
    published: datetime  # aware: when it went out on a feed channel
    updated: datetime  # aware: the item's last edit
    author: str = ""
    column_slug: str = ""
    column_name: str = ""


def language_tag(locale: str) -> str:
    """zh_CN -> zh-CN: RSS and xml:lang want a language tag, Babel gives a locale id."""
    return locale.replace("_", "-")


def version_tag(*parts: object) -> str:
    """A short, stable hash of what the document depends on (for the ETag)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


def _generator(info: FeedInfo, entries: list[FeedEntry], self_type: str) -> FeedGenerator:
    fg = FeedGenerator()
    # RSS readers expect the author's name in dc:creator: RSS's own <author> must be an e-mail.
    fg.load_extension("dc", atom=False, rss=True)
    fg.id(info.self_url)  # the feed's address never changes for the same organisation or column
    fg.title(info.title)
    fg.description(info.description)
    fg.subtitle(info.description)
    fg.language(language_tag(info.locale))
    fg.author({"name": info.author})
    # Order matters: feedgen takes the last link as the RSS <link>, and the self link as atom:link.
    fg.link(href=info.self_url, rel="self", type=self_type)
    fg.link(href=info.alternate_url, rel="alternate", type="text/html")
    fg.updated(info.updated)  # also RSS lastBuildDate
    fg.generator("publisher")
    for entry in entries[:MAX_ENTRIES]:
        fe = fg.add_entry(order="append")
        fe.guid(entry.url, permalink=True)  # also the Atom id: the archive URL, unchanged by edits
        fe.title(entry.title)
        fe.link(href=entry.url, rel="alternate", type="text/html")
        fe.content(entry.html, type="html")  # escaped text, so "]]>" in a body cannot break the XML
        fe.published(entry.published)  # also RSS pubDate
        fe.updated(max(entry.updated, entry.published))
        if entry.author:
            fe.author({"name": entry.author})
            fe.dc.dc_creator(entry.author)
        if entry.column_slug:
            fe.category(term=entry.column_slug, label=entry.column_name or entry.column_slug)
    return fg


def rss(info: FeedInfo, entries: list[FeedEntry]) -> bytes:
    return _generator(info, entries, "application/rss+xml").rss_str(pretty=True, encoding="UTF-8")


def atom(info: FeedInfo, entries: list[FeedEntry]) -> bytes:
    return _generator(info, entries, "application/atom+xml").atom_str(pretty=True, encoding="UTF-8")
