"""Telegram through the Bot API: a bot posts to a channel or group it belongs to.

Text goes out with `sendMessage` in MarkdownV2. MarkdownV2 was chosen over HTML because the
item's Markdown maps onto it one to one (bold, italic, strikethrough, code, pre, links, quotes)
and its escaping rule is total and mechanical: outside entities every one of
_*[]()~`>#+-=|{}.!\\ gets a backslash, inside code and pre only ` and \\, inside a link's (...)
only ) and \\. A single missed character makes Telegram refuse the whole message ("can't parse
entities"), so every piece of text goes through `escape`, `escape_code` or `escape_url`.

Telegram counts the text AFTER entity parsing in UTF-16 code units: 4096 for a message, 1024 for
a photo caption. `visible()` reads our MarkdownV2 back into the text a reader sees; the preview
and the cut use it.

An item with images goes out as ONE request, so that it has one outcome: one image as `sendPhoto`,
2-10 as `sendMediaGroup` (the caption on the first), uploaded as multipart (Telegram cannot fetch
URLs on a private intranet). The caption is the same text cut to 1024 units, ending with the link
to the full item. Splitting into a photo and a separate message would leave a half-sent post that
cannot be retried without repeating the photo, because Telegram drops no repeats.
"""

from __future__ import annotations

import json
import re

from flask_babel import lazy_gettext as _l

from . import markup, templating
from .base import Channel, Field, Limits, Message, Post, Receipt
from .errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from .http import load_image, request
from .text import ELLIPSIS, count, cut

DEFAULT_BASE_URL = "https://api.telegram.org"
MESSAGE_LIMIT = 4096  # UTF-16 units of the visible text
CAPTION_LIMIT = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_GROUP = 10

RESERVED = set("_*[]()~`>#+-=|{}.!\\")
_SAFE_SCHEMES = ("http://", "https://", "tg://", "mailto:")
_PRE_LANGUAGE = re.compile(r"^[A-Za-z0-9]+$")


def escape(text: str | None) -> str:
    """Plain text for MarkdownV2 outside entities."""
    return "".join("\\" + ch if ch in RESERVED else ch for ch in (text or ""))


def escape_code(text: str) -> str:
    """Text inside `code` and ```pre```."""
    return text.replace("\\", "\\\\").replace("`", "\\`")


def escape_url(url: str) -> str:
    """A URL inside the (...) of an inline link."""
    return url.replace("\\", "\\\\").replace(")", "\\)")


def link(text: str, url: str) -> str:
    return f"[{escape(text)}]({escape_url(url)})"


def visible(md: str) -> str:
    """The text Telegram shows for our MarkdownV2: markers dropped, escapes resolved, links as their text."""
    out: list[str] = []
    i, n = 0, len(md)
    line_start = True
    while i < n:
        ch = md[i]
        if md.startswith("```", i):  # pre: the language line is not shown
            j = i + 3
            end = md.find("\n", j)
            if end >= 0 and (end == j or _PRE_LANGUAGE.match(md[j:end])):
                j = end + 1
            while j < n and not md.startswith("```", j):
                if md[j] == "\\" and j + 1 < n:
                    j += 1
                out.append(md[j])
                j += 1
            i = j + 3
            line_start = False
            continue
        if ch == "`":
            j = i + 1
            while j < n and md[j] != "`":
                if md[j] == "\\" and j + 1 < n:
                    j += 1
                out.append(md[j])
                j += 1
            i = j + 1
            line_start = False
            continue
        if ch == "\\" and i + 1 < n:
            out.append(md[i + 1])
            i += 2
            line_start = False
            continue
        if ch == ">" and line_start:
            i += 1
            line_start = False
            continue
        if ch == "]" and i + 1 < n and md[i + 1] == "(":
            j = i + 2
            while j < n and md[j] != ")":
                j += 2 if md[j] == "\\" else 1
            i = j + 1
            line_start = False
            continue
        if ch in "*_~[" or (ch == "|" and md.startswith("||", i)):
            i += 2 if ch == "|" else 1
            continue
        out.append(ch)
        line_start = ch == "\n"
        i += 1
    return "".join(out)


# --- Markdown body -> MarkdownV2 blocks ----------------------------------------------------------

def _marker(out: list[str], marker: str) -> None:
    # "_" right after "_" would read as "__" (underline); Telegram's advice: an empty bold "**" between
    if out and out[-1] == marker:
        out.append("**" if marker == "_" else "")
    out.append(marker)


def _inline(children, *, bold: bool = False) -> str:
    out: list[str] = ["*"] if bold else []
    depth = {"strong": int(bold), "em": 0, "s": 0}
    links: list[str | None] = []  # href of each open link; None when shown as plain text
    for tok in children:
        kind = tok.type
        if kind == "text":
            out.append(escape(tok.content))
        elif kind == "code_inline":
            # no other entity may contain a code entity: inside bold, italic, strike or a link it is plain text
            inside = any(depth.values()) or any(href is not None for href in links)
            out.append(escape(tok.content) if inside else f"`{escape_code(tok.content)}`")
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind.endswith("_open") and kind[:-5] in depth:
            name = kind[:-5]
            depth[name] += 1
            if depth[name] == 1:  # a nested repeat would read as "__" (underline): collapse it
                _marker(out, {"strong": "*", "em": "_", "s": "~"}[name])
        elif kind.endswith("_close") and kind[:-6] in depth:
            name = kind[:-6]
            depth[name] -= 1
            if depth[name] == 0:
                _marker(out, {"strong": "*", "em": "_", "s": "~"}[name])
        elif kind == "link_open":
            href = tok.attrGet("href") or ""
            if href.startswith(_SAFE_SCHEMES) and not links:
                links.append(href)
                out.append("[")
            else:
                links.append(None)
        elif kind == "link_close":
            href = links.pop() if links else None
            if href is not None:
                out.append(f"]({escape_url(href)})")
        elif kind == "image":
            alt = tok.content or tok.attrGet("src") or ""
            src = tok.attrGet("src") or ""
            out.append(link(alt, src) if src.startswith(_SAFE_SCHEMES) and not links else escape(alt))
    if bold:
        _marker(out, "*")
    return "".join(out)


def body_blocks(body: str) -> list[str]:
    """The body as MarkdownV2 blocks (paragraphs, list items, code blocks, quotes), in order."""
    blocks: list[str] = []
    lists: list[list[int | None]] = []
    prefix = ""
    quote = 0
    item_blocks: list[str] = []
    previous = ""
    for tok in markup.tokens(body):
        kind, heading, previous = tok.type, previous == "heading_open", tok.type
        if kind == "bullet_list_open":
            lists.append([None])
        elif kind == "ordered_list_open":
            lists.append([int(tok.attrGet("start") or 1)])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if not lists and item_blocks:
                blocks.append("\n".join(item_blocks))
                item_blocks = []
        elif kind == "list_item_open" and lists:
            number, indent = lists[-1][0], "  " * (len(lists) - 1)
            prefix = f"{indent}• " if number is None else f"{indent}{number}\\. "
            if number is not None:
                lists[-1][0] = number + 1
        elif kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind == "inline":
            text = _inline(tok.children or [], bold=heading)  # Telegram has no headings: bold instead
            text = prefix + text
            if quote and not lists:
                text = "\n".join(">" + line for line in text.split("\n"))
            if lists:
                item_blocks.append(text)
            else:
                blocks.append(text)
            prefix = ""
        elif kind in ("fence", "code_block"):
            lang = (tok.info or "").strip().split(" ")[0] if kind == "fence" else ""
            lang = lang if _PRE_LANGUAGE.match(lang or "") else ""
            code = tok.content if tok.content.endswith("\n") else tok.content + "\n"
            block = f"```{lang}\n{escape_code(code)}```"
            (item_blocks if lists else blocks).append(block)
        elif kind == "hr":
            blocks.append("———")
    if item_blocks:
        blocks.append("\n".join(item_blocks))
    return [b for b in blocks if visible(b).strip()]


class Telegram(Channel):
    type = "telegram"
    label = _l("Telegram (bot)")
    idempotent = False
    fields = (
        Field("bot_token", _l("Bot token"), secret=True, help=_l("From @BotFather, e.g. 123456:ABC-DEF…")),
        Field("chat_id", _l("Chat ID"), help=_l("@channelusername, or the numeric ID such as -100…")),
        Field("base_url", _l("API base URL"), required=False, kind="url", default=DEFAULT_BASE_URL),
        Field("timeout", _l("Timeout (seconds)"), required=False, kind="integer", default=10),
        Field("disable_link_preview", _l("No link preview"), required=False, kind="boolean", default=False),
    )
    limits = Limits(max_length=MESSAGE_LIMIT, length_unit="utf16", markup="markdownv2", rate_limit="20/minute")
    default_timeout = 10.0

    # --- render ---------------------------------------------------------------------------------

    def _compose(self, post: Post, body: str) -> str:
        hashtags = " ".join(escape("#" + t.lstrip("#")) for t in (post.brand or {}).get("hashtags") or [] if t)
        text = templating.render(self.type, post, "md", body=body, esc=escape, link=link,
                                 hashtags=hashtags, labels=templating.words(post))
        return re.sub(r"\n{3,}", "\n\n", text)

    def _fit(self, post: Post, blocks: list[str], limit: int) -> str:
        """The composed text with as many body blocks as fit in `limit` visible UTF-16 units; the first
        block that does not fit is cut as plain text and ends with "…"; the link stays in the footer."""
        full = self._compose(post, "\n\n".join(blocks))
        if count(visible(full), "utf16") <= limit:
            return full
        frame = count(visible(self._compose(post, "X")), "utf16") - 1
        room = limit - frame
        kept: list[str] = []
        used = 0
        for block in blocks:
            size = count(visible(block), "utf16") + (2 if kept else 0)
            if used + size > room - 1:
                left = room - used - (2 if kept else 0)
                plain = visible(block)
                if left > 10:
                    kept.append(escape(cut(plain, left, "utf16")))
                elif kept:
                    kept[-1] += escape(ELLIPSIS)
                else:
                    kept.append(escape(ELLIPSIS))
                break
            kept.append(block)
            used += size
        text = self._compose(post, "\n\n".join(kept))
        if count(visible(text), "utf16") <= limit:
            return text
        # the frame alone is too long (an enormous title or intro): everything as cut plain text
        tail = f"\n{post.url}" if post.url else ""
        return escape(cut(visible(full), limit, "utf16", tail=tail))

    def render(self, post: Post) -> Message:
        blocks = body_blocks(post.body)
        images = list(post.images[:MAX_GROUP])
        limit = CAPTION_LIMIT if images else MESSAGE_LIMIT
        text = self._fit(post, blocks, limit)
        preview = visible(text)
        if not images:
            method = "sendMessage"
            payload = {"chat_id": self.config.get("chat_id"), "text": text, "parse_mode": "MarkdownV2"}
            if self.config.get("disable_link_preview"):
                payload["link_preview_options"] = {"is_disabled": True}
            elif post.url:
                payload["link_preview_options"] = {"url": post.url}
        else:
            method = "sendPhoto" if len(images) == 1 else "sendMediaGroup"
            payload = {"chat_id": self.config.get("chat_id"), "caption": text, "parse_mode": "MarkdownV2"}
        files = post.image_files[: len(images)]
        return Message(payload=payload, preview=preview, length=count(preview, self.limits.length_unit),
                       meta={"method": method, "images": images, "image_files": files, "limit": limit})

    # --- send -----------------------------------------------------------------------------------

    def max_send_seconds(self) -> float:
        # up to ten image downloads, then the post itself
        return self.timeout * (MAX_GROUP + 2)

    def _url(self, method: str) -> str:
        base = (self.config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        return f"{base}/bot{self.config['bot_token']}/{method}"

    def _images(self, message: Message) -> list:
        images = message.meta.get("images") or []
        holder = Post(title="", body="", images=images, image_files=message.meta.get("image_files") or [])
        return [load_image(self.session, holder, i, timeout=self.timeout, max_bytes=MAX_PHOTO_BYTES)
                for i in range(len(images))]

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        method = message.meta.get("method", "sendMessage")
        payload = dict(message.payload)
        if method == "sendMessage":
            resp = request(self.session, "POST", self._url(method), json=payload, timeout=self.timeout)
        else:
            images = self._images(message)
            caption = payload.pop("caption", "")
            parse_mode = payload.pop("parse_mode", "MarkdownV2")
            files = {f"photo{i}": (img.filename, img.data, img.content_type) for i, img in enumerate(images)}
            if method == "sendPhoto":
                data = {**payload, "caption": caption, "parse_mode": parse_mode}
                files = {"photo": files["photo0"]}
            else:
                media = [{"type": "photo", "media": f"attach://photo{i}"} for i in range(len(images))]
                media[0].update(caption=caption, parse_mode=parse_mode)
                data = {**payload, "media": json.dumps(media, ensure_ascii=False)}
            resp = request(self.session, "POST", self._url(method), data=data, files=files, timeout=self.timeout)
        return self._receipt(resp)

    def _receipt(self, resp) -> Receipt:
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or "ok" not in answer:
            if resp.status_code == 429:
                raise RateLimited("Too Many Requests", code=429)
            if resp.status_code >= 500 or resp.status_code == 408:
                raise Retryable(f"HTTP {resp.status_code} {resp.reason or ''}".strip(), code=resp.status_code)
            if resp.status_code >= 400:
                raise Permanent(f"HTTP {resp.status_code} {resp.reason or ''}".strip(), code=resp.status_code)
            raise OutcomeUnknown("the answer was not the Bot API's JSON", code="bad_answer")
        if answer.get("ok"):
            result = answer.get("result")
            first = result[0] if isinstance(result, list) and result else result
            if not isinstance(first, dict) or "message_id" not in first:
                raise OutcomeUnknown("the answer carried no message_id", code="bad_answer")
            message_id = first["message_id"]
            username = (first.get("chat") or {}).get("username")
            chat = str(self.config.get("chat_id") or "")
            if not username and chat.startswith("@"):
                username = chat[1:]
            url = f"https://t.me/{username}/{message_id}" if username else None
            ids = [m.get("message_id") for m in result] if isinstance(result, list) else [message_id]
            return Receipt(remote_id=str(message_id), url=url, raw={"message_ids": ids, "chat": first.get("chat")})
        code = answer.get("error_code") or resp.status_code
        description = str(answer.get("description") or f"HTTP {resp.status_code}")
        parameters = answer.get("parameters") or {}
        if code == 429 or "retry_after" in parameters:
            retry = parameters.get("retry_after")
            raise RateLimited(description, code=code, retry_after=float(retry) if retry is not None else None)
        if parameters.get("migrate_to_chat_id"):
            raise Permanent(f"{description}: the group is now a supergroup; set the chat ID to "
                            f"{parameters['migrate_to_chat_id']}", code=code)
        if isinstance(code, int) and code >= 500:
            raise Retryable(description, code=code)
        raise Permanent(description, code=code)


ADAPTER = Telegram
