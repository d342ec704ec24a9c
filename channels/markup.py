"""An item's Markdown body turned into what each service reads.

The body is parsed once with markdown-it-py (CommonMark, raw HTML off: an item's body never
carries markup of its own into a channel). Adapters whose service speaks HTML take `html()`;
services without markup take `plain()`; the others walk `tokens()` and write their own dialect
(see channels/telegram.py, channels/feishu.py …).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("strikethrough")
# For readers that render HTML (the archive, feeds): inline HTML allowed, then cleaned by nh3.
_md_html = MarkdownIt("commonmark", {"linkify": False, "typographer": False}).enable(["table", "strikethrough"])


def tokens(body: str) -> list[Token]:
    return _md.parse(body or "")


# The text forms are kept for the last bodies seen: a worker renders one item for many channels,
# one after another, and parsing is most of a render.
@lru_cache(maxsize=256)
def html(body: str) -> str:
    return _md.render(body or "")


@lru_cache(maxsize=256)
def safe_html(body: str) -> str:
    """HTML for readers that render it (the archive, feeds): the body's own simple HTML and tables
    kept, anything active removed by nh3 (ammonia), links with rel=noopener."""
    return nh3.clean(_md_html.render(body or ""), link_rel="noopener noreferrer nofollow")


def _inline_plain(children: list[Token]) -> str:
    out: list[str] = []
    href_stack: list[str | None] = []
    for tok in children:
        if tok.type in ("text", "code_inline"):
            out.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif tok.type == "link_open":
            href_stack.append(tok.attrGet("href"))
            out.append("")
        elif tok.type == "link_close":
            href = href_stack.pop() if href_stack else None
            # "text (url)" unless the text already is the url
            if href and out[-1:] != [href]:
                out.append(f" ({href})")
        elif tok.type == "image":
            out.append(tok.content or "")
    return "".join(out)


class Line(NamedTuple):
    """One line of a block, as chat services lay out Markdown they cannot show natively."""

    quote: int  # blockquote depth
    lead: str  # list marker ("• ", "2. ") or the indent of a continued list item
    kind: str  # "inline" | "code" | "rule"
    payload: Any  # inline: the inline tokens; code: its text; rule: "———"
    heading: bool


def blocks(body: str, indent: str = "  ") -> list[list[Line]]:
    """The body's top-level blocks (a paragraph, a whole list, a quote, a code block, a rule), each
    a list of lines. Adapters write each line in their markup and join blocks with a blank line;
    keeping whole blocks is also how they cut a long body."""
    found: list[list[Line]] = []
    lines: list[Line] = []
    lists: list[list[int | None]] = []  # per open list: the next number, or None for bullets
    quote, heading, lead = 0, False, None
    for tok in tokens(body):
        t = tok.type
        if t == "bullet_list_open":
            lists.append([None])
        elif t == "ordered_list_open":
            lists.append([int(tok.attrGet("start") or 1)])
        elif t in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif t == "list_item_open" and lists:
            number, pad = lists[-1][0], indent * (len(lists) - 1)
            lead = f"{pad}• " if number is None else f"{pad}{number}. "
            if number is not None:
                lists[-1][0] = number + 1
        elif t == "blockquote_open":
            quote += 1
        elif t == "blockquote_close":
            quote -= 1
        elif t == "heading_open":
            heading = True
        elif t == "heading_close":
            heading = False
        elif t == "inline":
            pad = lead if lead is not None else (indent * len(lists) if lists else "")
            lines.append(Line(quote, pad, "inline", tok.children or [], heading))
            lead = None
        elif t in ("fence", "code_block"):
            lines.append(Line(quote, "", "code", tok.content.rstrip("\n"), False))
        elif t == "hr":
            lines.append(Line(quote, "", "rule", "———", False))
        if tok.level == 0 and tok.nesting <= 0 and t != "inline" and lines:
            found.append(lines)
            lines = []
    if lines:
        found.append(lines)
    return found


@lru_cache(maxsize=256)
def plain(body: str) -> str:
    """Readable plain text: blocks separated by a blank line, list items on their own lines with
    "• " or "1. ", links as "text (url)", code as is."""
    return "\n\n".join(
        "\n".join(line.lead + _inline_plain(line.payload) if line.kind == "inline" else line.payload
                  for line in block)
        for block in blocks(body)
    ).strip()
