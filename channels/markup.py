"""An item's Markdown body turned into what each service reads.

The body is parsed once with markdown-it-py (CommonMark, raw HTML off: an item's body never
carries markup of its own into a channel). Adapters whose service speaks HTML take `html()`;
services without markup take `plain()`; the others walk `tokens()` and write their own dialect
(see channels/telegram.py, channels/feishu.py …).
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("strikethrough")
# For readers that render HTML (the archive, feeds): inline HTML allowed, then cleaned by nh3.
_md_html = MarkdownIt("commonmark", {"linkify": False, "typographer": False}).enable(["table", "strikethrough"])


def tokens(body: str) -> list[Token]:
    return _md.parse(body or "")


def html(body: str) -> str:
    return _md.render(body or "")


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


def plain(body: str) -> str:
    """Readable plain text: paragraphs separated by a blank line, list items on their own lines
    with "• " or "1. ", links as "text (url)", code as is."""
    blocks: list[tuple[str, bool]] = []  # (text, is a list item)
    lists: list[list[int | None]] = []  # per open list: the next number, or None for bullets
    prefix = ""
    for tok in tokens(body):
        if tok.type == "bullet_list_open":
            lists.append([None])
        elif tok.type == "ordered_list_open":
            lists.append([int(tok.attrGet("start") or 1)])
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if not lists:
                blocks.append(("", False))  # two lists in a row stay two blocks
        elif tok.type == "list_item_open" and lists:
            number, indent = lists[-1][0], "  " * (len(lists) - 1)
            prefix = f"{indent}• " if number is None else f"{indent}{number}. "
            if number is not None:
                lists[-1][0] = number + 1
        elif tok.type == "inline":
            blocks.append((prefix + _inline_plain(tok.children or []), bool(prefix)))
            prefix = ""
        elif tok.type in ("fence", "code_block"):
            blocks.append((tok.content.rstrip("\n"), False))
        elif tok.type == "hr":
            blocks.append(("———", False))
    out: list[str] = []
    previous_item = False
    for text, item in blocks:
        if not text:
            previous_item = False
            continue
        if out and item and previous_item:
            out[-1] += "\n" + text
        else:
            out.append(text)
        previous_item = item
    return "\n\n".join(out).strip()
