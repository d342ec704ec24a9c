"""Counting and cutting text the way each service counts it.

Services disagree on what a character is: WeCom limits UTF-8 bytes (a Chinese character is
three), Telegram counts UTF-16 code units (an emoji is two), Mastodon counts every URL as 23
characters whatever its length, and Weibo counts Chinese characters (two Latin letters make one).
Every adapter declares its unit in `Limits.length_unit`; the editor's preview counts with the
same function, so the number shown before approval is the service's number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

UNITS = ("characters", "bytes", "utf16", "mastodon", "weibo")
ELLIPSIS = "…"
URL = re.compile(r"https?://[^\s<>\"'）)\]]+")
MASTODON_URL_LENGTH = 23  # `characters_reserved_per_url` of a default instance


def _weibo_halves(ch: str) -> int:
    # Weibo counts in Chinese characters: anything outside ASCII is one, ASCII is half.
    return 1 if ord(ch) < 128 else 2


def count(text: str, unit: str, *, url_length: int = MASTODON_URL_LENGTH) -> int:
    """The length of `text` in `unit` (one of UNITS)."""
    if unit == "characters":
        return len(text)
    if unit == "bytes":
        return len(text.encode("utf-8"))
    if unit == "utf16":
        return len(text.encode("utf-16-le")) // 2
    if unit == "mastodon":
        return len(URL.sub("", text)) + url_length * len(URL.findall(text))
    if unit == "weibo":
        return math.ceil(sum(_weibo_halves(ch) for ch in text) / 2)
    raise ValueError(f"unknown length unit {unit!r}")


def _cut_index(text: str, limit: int, unit: str) -> int:
    """The largest i such that text[:i] fits in `limit`."""
    lo, hi = 0, len(text)
    while lo < hi:  # binary search: count() is not additive for "mastodon" and "weibo"
        mid = (lo + hi + 1) // 2
        if count(text[:mid], unit) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def cut(text: str, limit: int, unit: str = "characters", *, tail: str = "") -> str:
    """`text` if it fits in `limit`; else as much of it as fits, cut at a paragraph, line, sentence
    or word end where one is close, then "…" and `tail` (e.g. a link to the full item)."""
    if count(text, unit) <= limit:
        return text
    suffix = ELLIPSIS + tail
    room = limit - count(suffix, unit)
    if room <= 0:
        return text[: _cut_index(text, limit, unit)]
    end = _cut_index(text, room, unit)
    head = text[:end]
    # Prefer a natural break in the last fifth of what fits; else cut mid-word (Chinese has no spaces).
    floor = int(end * 0.8)
    for sep in ("\n\n", "\n", "。", "！", "？", ". ", "! ", "? ", "；", "，", ", ", " "):
        at = head.rfind(sep)
        if at >= floor:
            head = head[: at + len(sep)]
            break
    return head.rstrip() + suffix


def fit(head: str, blocks: list[tuple[str, str]], tail: str, limit: int, unit: str = "characters",
        escape: Callable[[str], str] = lambda text: text) -> str:
    """head + as many body blocks as fit + tail, within `limit` `unit`s. `blocks` are (marked-up,
    plain) pairs, one per block of the body: the first block that does not fit whole is cut as
    plain text (ending in "…", then `escape`d for the markup) and the rest left out, so no markup
    is ever left open. The tail keeps the link to the full post."""
    def build(parts: list[str]) -> str:
        return head + "\n\n".join(p for p in parts if p) + tail

    full = build([marked for marked, _plain in blocks])
    if count(full, unit) <= limit:
        return full
    kept: list[str] = []
    for marked, plain in blocks:
        if count(build([*kept, marked]), unit) <= limit:
            kept.append(marked)
            continue
        room = limit - count(build([*kept, ""]), unit) - 2
        while room > 1:  # escaping may lengthen the piece: shrink until it fits
            piece = escape(cut(plain, room, unit))
            if count(build([*kept, piece]), unit) <= limit:
                kept.append(piece)
                break
            room -= max(1, room // 10)
        break
    result = build(kept)
    if count(result, unit) > limit:  # head and tail alone are too long: cut everything
        result = cut(result, limit, unit)
    return result
