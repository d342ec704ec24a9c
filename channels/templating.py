"""Post templates: one per adapter and item format, under templates/posts/<type>/<format>.<ext>.

Adapters render with plain Jinja (no Flask), because `render` must work in a worker, in the
editor's preview and in a third-party package alike. The context is always `post` (channels.base.Post),
`brand` (the column's brand kit), `issue` (the issue label, e.g. "第12期" or "No. 12", or ""),
`extra` (the format's fields), `zh` (the organisation writes Chinese) and `words` (WORDS in its
language) plus whatever the adapter adds (its body already converted to the
service's markup, usually as `body`). Whitespace is trimmed so templates can be laid out readably.

A plugin passes its own folder to `render(..., search=[folder])`; the built-in folder stays the
fallback, so a plugin may reuse our templates.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from .base import Post

ROOT = Path(__file__).resolve().parent.parent / "templates" / "posts"
FORMATS = ("article", "image", "video", "audio", "event")


@lru_cache(maxsize=16)
def environment(search: tuple[str, ...] = ()) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*search, str(ROOT)]),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the preview, not the send
    )
    env.filters["local_time"] = local_time
    env.filters["duration"] = duration
    return env


def local_time(iso: str | None, zone: str = "UTC") -> str:
    """An ISO 8601 time from Post.extra as wall-clock time in the organisation's zone."""
    if not iso:
        return ""
    when = datetime.fromisoformat(iso)
    if when.tzinfo is not None:
        when = when.astimezone(ZoneInfo(zone))
    return when.strftime("%Y-%m-%d %H:%M")


def duration(seconds: int | None) -> str:
    if not seconds:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def issue_label(post: Post) -> str:
    if post.issue_number is None:
        return ""
    return f"第{post.issue_number}期" if post.locale.startswith("zh") else f"No. {post.issue_number}"


# The few words posts share, in the organisation's language (posts are written for the community,
# not for the editor reading the page, so they follow Post.locale rather than the request).
WORDS = {
    "zh": {"read_more": "阅读全文", "start": "时间", "end": "结束", "place": "地点", "online": "线上",
           "watch": "观看", "listen": "收听", "duration": "时长", "images": "图片"},
    "en": {"read_more": "Read more", "start": "When", "end": "Ends", "place": "Where", "online": "Online",
           "watch": "Watch", "listen": "Listen", "duration": "Duration", "images": "Images"},
}


def words(post: Post) -> dict[str, str]:
    return WORDS["zh" if post.locale.startswith("zh") else "en"]


def render(channel_type: str, post: Post, ext: str, *, search: tuple[str, ...] = (), **context: Any) -> str:
    """Render templates/posts/<channel_type>/<post.format>.<ext> (the article template when the
    format has none of its own) and strip the blank lines at either end."""
    env = environment(tuple(search))
    template = env.select_template([f"{channel_type}/{post.format}.{ext}", f"{channel_type}/article.{ext}"])
    values = {"post": post, "brand": post.brand or {}, "issue": issue_label(post), "extra": post.extra or {},
              "zh": post.locale.startswith("zh"), "words": words(post)}
    values.update(context)
    return template.render(**values).strip()
