"""Slack incoming webhook: Block Kit with mrkdwn text.

POST the webhook URL with {"text": fallback, "blocks": [...]}. Slack answers HTTP 200 with the
plain-text body "ok"; errors are plain-text codes with a 4xx status (invalid_payload, no_text,
invalid_blocks, action_prohibited, invalid_token, channel_not_found, no_service,
channel_is_archived …), 429 with Retry-After when posting too fast, 5xx when Slack fails.
An incoming webhook returns no message id, so a receipt carries none.

mrkdwn is not Markdown: *bold*, _italic_, ~strike~, <url|text>, and &, <, > must be written as
&amp;, &lt;, &gt;. A section's text holds at most 3000 characters, a header 150, a message 50 blocks.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from flask_babel import lazy_gettext as _l

from . import markup, templating
from .base import Channel, Field, Limits, Message, Post, Receipt
from .errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from .http import request, retry_after_seconds
from .text import count, cut, fit

PUBLIC_ORIGIN = "https://hooks.slack.com"
SECTION_MAX = 3000  # characters of one section block's text
HEADER_MAX = 150  # characters of a header block's plain_text
TEXT_MAX = 12_000  # all sections together; Slack refuses much longer block messages (msg_blocks_too_long)
MAX_IMAGES = 10
BODY = "\x00body\x00"  # where the converted body goes in the rendered template


def escape(text: str) -> str:
    """Plain text for mrkdwn: the three characters Slack reserves for its own markup."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link_url(url: str) -> str:
    # Inside <url|text> a "|" or ">" would end the URL early.
    return (url or "").replace("|", "%7C").replace(">", "%3E").replace("<", "%3C").replace(" ", "%20")


def _inline(children, *, plain: bool = False) -> str:
    out: list[str] = []
    links: list[tuple[str, int]] = []  # (href, index in out where the link text starts)
    for tok in children or []:
        t = tok.type
        if t == "text":
            out.append(tok.content if plain else escape(tok.content))
        elif t == "code_inline":
            out.append(tok.content if plain else f"`{escape(tok.content)}`")
        elif t in ("softbreak", "hardbreak"):
            out.append(" " if links else "\n")
        elif t in ("strong_open", "strong_close"):
            out.append("" if plain else "*")
        elif t in ("em_open", "em_close"):
            out.append("" if plain else "_")
        elif t in ("s_open", "s_close"):
            out.append("" if plain else "~")
        elif t == "link_open":
            links.append((tok.attrGet("href") or "", len(out)))
        elif t == "link_close" and links:
            href, start = links.pop()
            label = "".join(out[start:]).strip()
            del out[start:]
            if plain:
                out.append(label if label == href else f"{label} ({href})")
            else:
                # formatting marks inside a link label are shown literally by Slack: drop them
                label = label.replace("*", "").replace("_", "").replace("~", "").replace("`", "")
                out.append(f"<{_link_url(href)}|{label or escape(href)}>")
        elif t == "image":
            src, alt = tok.attrGet("src") or "", tok.content or "image"
            out.append(f"{alt} ({src})" if plain else f"<{_link_url(src)}|{escape(alt)}>")
    return "".join(out)


def _render_block(lines: list[markup.Line], *, plain: bool) -> str:
    out = []
    for quote, prefix, kind, payload, heading in lines:
        if kind == "inline":
            text = _inline(payload, plain=plain)
            if heading and not plain and text:
                text = f"*{text.replace('*', '')}*"
        elif kind == "code":
            text = payload if plain else f"```\n{escape(payload)}\n```"
        else:
            text = payload
        lead = ("" if plain else "&gt; " * quote) + prefix
        out.append("\n".join(lead + line for line in text.split("\n")))
    return "\n".join(out)


def body_blocks(body: str) -> list[tuple[str, str]]:
    """(mrkdwn, plain text) of each top-level block of the Markdown body."""
    return [(_render_block(b, plain=False), _render_block(b, plain=True)) for b in markup.blocks(body, indent="    ")]


def chunks(text: str, limit: int = SECTION_MAX) -> list[str]:
    """Section texts of at most `limit` characters, split between paragraphs, else lines, else words,
    never inside a <url|text> link."""
    limit -= 8  # room to close and reopen a code block split between sections
    out: list[str] = []
    current = ""
    for para in text.split("\n\n"):
        candidate = f"{current}\n\n{para}" if current else para
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            out.append(current)
        current = ""
        while len(para) > limit:
            at = _split_at(para, limit)
            out.append(para[:at].rstrip())
            para = para[at:].lstrip()
        current = para
    if current:
        out.append(current)
    return _balance_fences([c for c in out if c.strip()])


def _balance_fences(parts: list[str]) -> list[str]:
    """A code block split between two sections is closed at the end of one and reopened in the next."""
    out, carry = [], False
    for part in parts:
        if carry:
            part = "```\n" + part
        carry = part.count("```") % 2 == 1
        out.append(part + "\n```" if carry else part)
    return out


def _split_at(text: str, limit: int) -> int:
    head = text[:limit]
    opened = head.rfind("<")
    if opened > head.rfind(">"):  # a link starts but does not end before the limit
        head = head[:opened] if opened > 0 else head
    for sep in ("\n", " "):
        at = head.rfind(sep)
        if at > len(head) // 2:
            return at + 1
    return len(head) or limit


class Slack(Channel):
    type = "slack"
    label = _l("Slack (incoming webhook)")
    idempotent = False
    fields = (
        Field("webhook_url", _l("Webhook URL"), secret=True, kind="url"),
        Field("base_url", _l("Base URL (optional)"), required=False, kind="url", default=PUBLIC_ORIGIN),
        Field("timeout", _l("Timeout (seconds)"), required=False, kind="integer", default=10),
    )
    limits = Limits(max_length=TEXT_MAX, length_unit="characters", markup="mrkdwn", rate_limit="1/second")

    # --- render -------------------------------------------------------------------------------------
    def render(self, post: Post) -> Message:
        zh = post.locale.startswith("zh")
        title = cut((post.title or "").strip() or "-", HEADER_MAX)
        rendered = templating.render(self.type, post, "mrkdwn", body=BODY, esc=escape, zh=zh, link=_link_url)
        head, _, tail = rendered.partition(BODY)
        budget = TEXT_MAX - count(title, "characters") - 2
        text = fit(head, body_blocks(post.body), tail, budget, escape=escape).strip()

        blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}}]
        images = list(post.images) or ([post.brand["cover"]] if post.brand.get("cover") else [])
        shown = images[:MAX_IMAGES] if post.format == "image" else images[:1]
        blocks += [{"type": "image", "image_url": url, "alt_text": cut(post.title or "image", 2000)} for url in shown]
        blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": chunk}} for chunk in chunks(text)]
        fallback = escape(" ".join(p for p in (templating.issue_label(post), post.title) if p))
        preview = f"{title}\n\n{text}"
        return Message(payload={"text": fallback or escape(title), "blocks": blocks}, preview=preview,
                       length=count(preview, self.limits.length_unit))

    # --- send ---------------------------------------------------------------------------------------
    def url(self) -> str:
        url = self.config["webhook_url"]
        base = (self.config.get("base_url") or "").strip().rstrip("/")
        if base and base != PUBLIC_ORIGIN:
            parts, origin = urlsplit(url), urlsplit(base)
            url = urlunsplit((origin.scheme, origin.netloc, origin.path.rstrip("/") + parts.path, parts.query, ""))
        return url

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        resp = request(self.session, "POST", self.url(), json=message.payload, timeout=self.timeout)
        body = resp.text.strip()
        code = body[:100] if body and " " not in body[:100] else None  # Slack's codes are single words
        text = body[:200] or resp.reason or f"HTTP {resp.status_code}"
        if resp.status_code == 200:
            if body == "ok":
                return Receipt(remote_id=None, url=None, raw=body)
            # A 200 that is not "ok": the request arrived, but we cannot tell whether it was posted.
            raise OutcomeUnknown(f"unexpected answer from Slack: {text}", code=code or "unexpected_answer")
        if resp.status_code == 429:
            raise RateLimited(text, code=code or 429,
                              retry_after=retry_after_seconds(resp.headers.get("Retry-After")))
        if resp.status_code >= 500:
            raise Retryable(text, code=code or resp.status_code)
        if 200 < resp.status_code < 300:
            raise OutcomeUnknown(f"unexpected answer from Slack: HTTP {resp.status_code}", code=resp.status_code)
        raise Permanent(text, code=code or resp.status_code)


ADAPTER = Slack
