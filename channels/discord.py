"""Discord webhook: one rich embed (a gallery of up to four for image posts).

POST {webhook_url}?wait=true (other query parameters such as thread_id are kept) answers 200 with
the created message object. Errors are JSON {"message", "code"}: 400 with 50035 "Invalid Form Body",
401 50027 "Invalid Webhook Token", 404 10015 "Unknown Webhook", 403 for missing permissions; 429
carries {"message", "retry_after" (float seconds), "global"} and a Retry-After header.

Text is Discord markdown: **bold**, *italic*, ~~strike~~, `code`, [text](url), > quotes; plain
text escapes the markdown characters with a backslash. An embed's title holds 256 characters, its
description 4096, a field's name 256 and value 1024, a footer 2048, all embeds together 6000.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask_babel import lazy_gettext as _l

from . import markup, templating
from .base import Channel, Field, Limits, Message, Post, Receipt
from .errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from .http import request, retry_after_seconds
from .templating import local_time
from .text import URL, count, cut, fit

PUBLIC_ORIGIN = "https://discord.com"
TITLE_MAX, DESCRIPTION_MAX, FIELD_NAME_MAX, FIELD_VALUE_MAX, FOOTER_MAX = 256, 4096, 256, 1024, 2048
EMBEDS_TOTAL_MAX = 6000
GALLERY_MAX = 4  # Discord shows up to four images of embeds that share a url as one gallery
BODY = "\x00body\x00"

_INLINE_SPECIAL = re.compile(r"([\\*_~`|\[\]<>])")
_LINE_START = re.compile(r"^(\s*)([>#+-]|\d+\.)(?=\s|$)", re.MULTILINE)


def escape(text: str) -> str:
    """Plain text for Discord markdown: markdown characters behind a backslash; URLs left intact so
    that Discord still links them."""
    text = text or ""
    out, last = [], 0
    for match in URL.finditer(text):
        out.append(_escape_plain(text[last:match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_escape_plain(text[last:]))
    return "".join(out)


def _escape_plain(text: str) -> str:
    text = _INLINE_SPECIAL.sub(r"\\\1", text)
    def guard(m: re.Match) -> str:  # "1." -> "1\.", "-" -> "\-"
        mark = m.group(2)
        return m.group(1) + (mark[:-1] + "\\." if mark[0].isdigit() else "\\" + mark)

    return _LINE_START.sub(guard, text)


def _url(url: str) -> str:
    return (url or "").replace(" ", "%20").replace("(", "%28").replace(")", "%29")


def _code(content: str) -> str:
    fence = "``" if "`" in content else "`"
    return f"{fence}{content}{fence}" if fence == "`" else f"`` {content} ``"


def _inline(children, *, plain: bool = False) -> str:
    out: list[str] = []
    links: list[tuple[str, int]] = []
    marks = {"strong": "**", "em": "*", "s": "~~"}
    for tok in children or []:
        t = tok.type
        if t == "text":
            out.append(tok.content if plain else escape(tok.content))
        elif t == "code_inline":
            out.append(tok.content if plain else _code(tok.content))
        elif t in ("softbreak", "hardbreak"):
            out.append(" " if links else "\n")
        elif t.endswith(("_open", "_close")) and t.rsplit("_", 1)[0] in marks:
            out.append("" if plain else marks[t.rsplit("_", 1)[0]])
        elif t == "link_open":
            links.append((tok.attrGet("href") or "", len(out)))
        elif t == "link_close" and links:
            href, start = links.pop()
            label = "".join(out[start:]).strip()
            del out[start:]
            if plain:
                out.append(label if label == href else f"{label} ({href})")
            else:
                out.append(f"[{label or escape(href)}]({_url(href)})")
        elif t == "image":
            src, alt = tok.attrGet("src") or "", tok.content or "image"
            out.append(f"{alt} ({src})" if plain else f"[{escape(alt)}]({_url(src)})")
    return "".join(out)


def _render_block(lines: list[markup.Line], *, plain: bool) -> str:
    out = []
    for quote, prefix, kind, payload, heading in lines:
        if kind == "inline":
            text = _inline(payload, plain=plain)
            if heading and not plain and text:
                text = f"**{text}**"
        elif kind == "code":
            text = payload if plain else "```\n" + payload.replace("```", "ˋˋˋ") + "\n```"
        else:
            text = payload
        if not plain and prefix and prefix.strip()[:1].isdigit():
            prefix = prefix.replace(".", "\\.", 1)  # our own numbering, not Discord's list syntax
        lead = ("" if plain else "> " * quote) + prefix
        out.append("\n".join(lead + line for line in text.split("\n")))
    return "\n".join(out)


def body_blocks(body: str) -> list[tuple[str, str]]:
    """(Discord markdown, plain text) of each top-level block of the Markdown body."""
    return [(_render_block(b, plain=False), _render_block(b, plain=True)) for b in markup.blocks(body, indent="  ")]


def color(value: str | None) -> int | None:
    if value and re.fullmatch(r"#?[0-9a-fA-F]{6}", value.strip()):
        return int(value.strip().lstrip("#"), 16)
    return None


class Discord(Channel):
    type = "discord"
    label = _l("Discord (webhook)")
    idempotent = False
    fields = (
        Field("webhook_url", _l("Webhook URL"), secret=True, kind="url"),
        Field("base_url", _l("Base URL (optional)"), required=False, kind="url", default=PUBLIC_ORIGIN),
        Field("timeout", _l("Timeout (seconds)"), required=False, kind="integer", default=10),
    )
    # Discord asks clients to follow its X-RateLimit-* headers rather than hard-code limits; a webhook
    # has been observed at 5 requests per 2 seconds, with about 30 messages a minute per channel.
    limits = Limits(max_length=EMBEDS_TOTAL_MAX, length_unit="characters", markup="markdown",
                    rate_limit="5/2second;30/minute")

    # --- render -------------------------------------------------------------------------------------
    def _fields(self, post: Post, zh: bool) -> list[dict]:
        extra = post.extra or {}
        fields: list[dict] = []

        def add(name: str, value: str, inline: bool = True) -> None:
            if value:
                fields.append({"name": cut(name, FIELD_NAME_MAX), "value": cut(value, FIELD_VALUE_MAX),
                               "inline": inline})

        if post.format == "event":
            start, end = local_time(extra.get("start"), post.timezone), local_time(extra.get("end"), post.timezone)
            when = f"{start} – {end}" if start and end else start
            add("时间" if zh else "When", f"{when} ({post.timezone})" if when else "")
            add("地点" if zh else "Where", escape(extra.get("place") or ""))
            add("线上" if zh else "Online", _url(extra.get("online_url") or ""), inline=False)
        elif post.format in ("video", "audio"):
            target = extra.get("link_url") or extra.get("file_url")
            verb = {("video", True): "▶ 观看", ("video", False): "▶ Watch",
                    ("audio", True): "🎧 收听", ("audio", False): "🎧 Listen"}[(post.format, zh)]
            add(verb, f"[{escape(cut(post.title or target or '', 200))}]({_url(target)})" if target else "",
                inline=False)
            add("时长" if zh else "Duration", templating.duration(extra.get("duration_seconds")))
        return fields

    def render(self, post: Post) -> Message:
        zh = post.locale.startswith("zh")
        brand = post.brand or {}
        title = cut((post.title or "").strip() or "-", TITLE_MAX)
        fields = self._fields(post, zh)
        footer = cut(post.column or "", FOOTER_MAX)

        def shown(description: str) -> str:
            parts = [title, description, *(f"{f['name']}: {f['value']}" for f in fields), footer]
            return "\n\n".join(p for p in parts if p)

        rendered = templating.render(self.type, post, "md", body=BODY, esc=escape, zh=zh, link=_url)
        head, _, tail = rendered.partition(BODY)
        budget = min(DESCRIPTION_MAX, EMBEDS_TOTAL_MAX - count(shown(""), "characters") - 2)
        description = fit(head, body_blocks(post.body), tail, budget, escape=escape).strip()

        embed: dict = {"title": title, "description": description, "url": post.url or None}
        if color(brand.get("color")) is not None:
            embed["color"] = color(brand.get("color"))
        images = list(post.images) or ([brand["cover"]] if brand.get("cover") else [])
        if images:
            embed["image"] = {"url": images[0]}
        if fields:
            embed["fields"] = fields
        if footer:
            embed["footer"] = {"text": footer}
        embed = {k: v for k, v in embed.items() if v not in (None, "")}
        embeds = [embed]
        if post.format == "image" and post.url:  # same url: Discord shows the images as one gallery
            embeds += [{"url": post.url, "image": {"url": u}} for u in post.images[1:GALLERY_MAX]]
        payload = {"embeds": embeds, "allowed_mentions": {"parse": []}}
        preview = shown(description)
        return Message(payload=payload, preview=preview, length=count(preview, self.limits.length_unit))

    # --- send ---------------------------------------------------------------------------------------
    def url(self) -> str:
        parts = urlsplit(self.config["webhook_url"])
        scheme, netloc, path = parts.scheme, parts.netloc, parts.path
        base = (self.config.get("base_url") or "").strip().rstrip("/")
        if base and base != PUBLIC_ORIGIN:
            origin = urlsplit(base)
            scheme, netloc, path = origin.scheme, origin.netloc, origin.path.rstrip("/") + parts.path
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
        return urlunsplit((scheme, netloc, path, urlencode([*query, ("wait", "true")]), ""))

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        resp = request(self.session, "POST", self.url(), json=message.payload, timeout=self.timeout)
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        info = answer if isinstance(answer, dict) else {}
        text = str(info.get("message") or resp.reason or f"HTTP {resp.status_code}")[:300]
        code = info.get("code")
        if resp.status_code == 429:
            retry_after = info.get("retry_after")
            if not isinstance(retry_after, (int, float)):
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
            raise RateLimited(text, code=code if code not in (None, 0) else 429, retry_after=retry_after)
        if resp.status_code >= 500:
            raise Retryable(text, code=code or resp.status_code)
        if resp.status_code >= 400:
            raise Permanent(text, code=code or resp.status_code)
        if resp.status_code == 204:  # the message was posted but Discord did not return it
            return Receipt(remote_id=None, url=None, raw=None)
        if not info.get("id"):
            raise OutcomeUnknown(f"unexpected answer from Discord (HTTP {resp.status_code})", code="unexpected_answer")
        raw = {k: info.get(k) for k in ("id", "channel_id", "guild_id", "webhook_id", "timestamp") if info.get(k)}
        url = None
        if info.get("guild_id") and info.get("channel_id"):
            url = f"{PUBLIC_ORIGIN}/channels/{info['guild_id']}/{info['channel_id']}/{info['id']}"
        return Receipt(remote_id=str(info["id"]), url=url, raw=raw)


ADAPTER = Discord
