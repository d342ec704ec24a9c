"""Feishu / Lark custom bot (自定义机器人): a signed rich-text ("post") message.

POST {origin}/open-apis/bot/v2/hook/{token}, origin https://open.feishu.cn or, for Lark,
https://open.larksuite.com. With signature verification on, the JSON body carries "timestamp"
(Unix seconds, as a string) and "sign" = base64(HMAC-SHA256(key = timestamp + "\\n" + secret,
message = empty)); the timestamp must be within an hour of Feishu's clock.

The answer's HTTP status varies, so the body decides: {"code": 0, "msg": "success", "data": {}}
(older bots also, or only, send {"StatusCode": 0, "StatusMessage": "success"}); 11232 is the
bot's frequency limit (5 a second, 100 a minute, worse on the hour and half hour); 19021 a bad
signature or stale timestamp, 19022 an IP not on the allow-list, 19024 a missing keyword,
9499 a malformed request. A request body may not exceed 20 KB.

The message is built from templates/posts/feishu/<format>.md (Markdown with the body spliced in),
then converted token by token into the post's paragraphs of text/a tags; bold, italic and
strike-through become the tag's "style". Images cannot be shown inline: a custom bot cannot upload
them and an img tag needs an image_key, so images are linked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time

from flask_babel import lazy_gettext as _l

from . import markup, templating
from .base import Channel, Field, Limits, Message, Post, Receipt
from .errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from .http import request, retry_after_seconds
from .text import count, cut

FEISHU_ORIGIN = "https://open.feishu.cn"
LARK_ORIGIN = "https://open.larksuite.com"
BODY_MAX = 20_000  # bytes of the request body ("20 KB"; read as the smaller number)
SIGNATURE_ROOM = 120  # bytes the timestamp and sign add to the body at send time
RATE_LIMITED = {11232, 99991400}  # the bot's frequency limit; the platform's generic one
BODY = "BODYPLACEHOLDER0SPLICE"  # a paragraph of its own in the template's Markdown

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")
_MD_LINE_START = re.compile(r"^(\s*)(-|\d+\.)(?=\s|$)", re.MULTILINE)

Paragraph = list[dict]


def sign(secret: str, timestamp: str) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def md_escape(text: str) -> str:
    """Plain text for the template's Markdown, so that a title or a place stays literal."""
    text = _MD_SPECIAL.sub(r"\\\1", text or "")
    return _MD_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


def _tag(text: str, style: list[str], href: str | None = None) -> dict:
    tag = {"tag": "a", "text": text, "href": href} if href else {"tag": "text", "text": text}
    if style:
        tag["style"] = list(style)
    return tag


def _inline(children, lead: str, heading: bool) -> list[Paragraph]:
    """One Markdown paragraph as Feishu lines (a soft or hard break starts a new line)."""
    lines: list[Paragraph] = [[_tag(lead, [])] if lead else []]
    styles: list[str] = ["bold"] if heading else []
    href: str | None = None
    names = {"strong": "bold", "em": "italic", "s": "lineThrough"}
    for tok in children or []:
        t = tok.type
        kind = t.rsplit("_", 1)[0]
        if t in ("text", "code_inline") and tok.content:
            lines[-1].append(_tag(tok.content, sorted(set(styles)), href))
        elif t in ("softbreak", "hardbreak"):
            lines.append([_tag(" " * len(lead), [])] if lead.strip() else ([_tag(lead, [])] if lead else []))
        elif t.endswith("_open") and kind in names:
            styles.append(names[kind])
        elif t.endswith("_close") and kind in names and names[kind] in styles:
            styles.remove(names[kind])
        elif t == "link_open":
            href = tok.attrGet("href") or None
        elif t == "link_close":
            href = None
        elif t == "image":
            src = tok.attrGet("src") or ""
            lines[-1].append(_tag(tok.content or "图片", sorted(set(styles)), src or None))
    return [_merge(line) for line in lines]


def _merge(line: Paragraph) -> Paragraph:
    """Neighbouring tags of the same kind, style and link as one tag."""
    out: Paragraph = []
    for tag in line:
        if out and {k: v for k, v in out[-1].items() if k != "text"} == {k: v for k, v in tag.items() if k != "text"}:
            out[-1] = {**out[-1], "text": out[-1]["text"] + tag["text"]}
        else:
            out.append(tag)
    return out


def blocks(markdown: str) -> list[list[Paragraph]]:
    """The Markdown's top-level blocks, each a list of Feishu lines (quotes marked with "┃ ")."""
    result: list[list[Paragraph]] = []
    for block in markup.blocks(markdown, indent="    "):
        lines: list[Paragraph] = []
        for line in block:
            bar = "┃ " * line.quote
            if line.kind == "inline":
                lines += _inline(line.payload, bar + line.lead, line.heading)
            elif line.kind == "code":
                lines += [[_tag(bar + text, [])] for text in line.payload.split("\n")]
            else:
                lines.append([_tag(line.payload, [])])
        lines = [line for line in lines if line]
        if lines:
            result.append(lines)
    return result


def line_text(line: Paragraph) -> str:
    return "".join(tag.get("text", "") for tag in line)


def _join(groups: list[list[Paragraph]]) -> list[Paragraph]:
    """Blocks one after another with an empty line between them."""
    out: list[Paragraph] = []
    for group in groups:
        if out:
            out.append([_tag("", [])])
        out += group
    return out


class Feishu(Channel):
    type = "feishu"
    label = _l("Feishu / Lark (custom bot)")
    idempotent = False
    fields = (
        Field("token", _l("Webhook token"), secret=True,
              help=_l("The last part of the bot's webhook address, after /open-apis/bot/v2/hook/")),
        Field("secret", _l("Signing secret"), secret=True, required=False),
        Field("lark", _l("Lark (international)"), required=False, kind="boolean", default=False),
        Field("base_url", _l("Base URL (optional)"), required=False, kind="url", default=FEISHU_ORIGIN),
        Field("timeout", _l("Timeout (seconds)"), required=False, kind="integer", default=10),
    )
    limits = Limits(max_length=BODY_MAX, length_unit="bytes", markup="feishu-post", rate_limit="5/second;100/minute")

    # --- render -------------------------------------------------------------------------------------
    @staticmethod
    def _payload(locale: str, title: str, content: list[Paragraph]) -> dict:
        return {"msg_type": "post", "content": {"post": {locale: {"title": title, "content": content}}}}

    @staticmethod
    def size(payload: dict) -> int:
        return len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())

    def render(self, post: Post) -> Message:
        zh = post.locale.startswith("zh")
        locale = "zh_cn" if zh else "en_us"
        title = cut((post.title or "").strip(), 200)
        document = templating.render(self.type, post, "md", body=BODY, esc=md_escape, zh=zh)
        head_md, _, tail_md = document.partition(BODY)
        head, tail = _join(blocks(head_md)), _join(blocks(tail_md))
        body = blocks(post.body)
        limit = BODY_MAX - SIGNATURE_ROOM

        def build(groups: list[list[Paragraph]]) -> dict:
            return self._payload(locale, title, _join([g for g in (head, *groups, tail) if g]))

        payload = build(body)
        if self.size(payload) > limit:
            kept: list[list[Paragraph]] = []
            for group in body:
                if self.size(build([*kept, group])) <= limit:
                    kept.append(group)
                    continue
                plain = "\n".join(line_text(line) for line in group)
                room = limit - self.size(build([*kept, [[_tag("", [])]]])) - 16
                while room > 1:
                    piece = cut(plain, room, "bytes")
                    candidate = [*kept, [[_tag(line, [])] for line in piece.split("\n")]]
                    if self.size(build(candidate)) <= limit:
                        kept = candidate
                        break
                    room -= max(1, room // 10)
                break
            payload = build(kept)
        content = payload["content"]["post"][locale]["content"]
        preview = "\n".join([title, "", *(line_text(line) for line in content)])
        return Message(payload=payload, preview=preview, length=count(preview, self.limits.length_unit),
                       meta={"request_bytes": self.size(payload) + SIGNATURE_ROOM})

    # --- send ---------------------------------------------------------------------------------------
    def url(self) -> str:
        base = (self.config.get("base_url") or "").strip().rstrip("/")
        if not base or base == FEISHU_ORIGIN:
            base = LARK_ORIGIN if _truthy(self.config.get("lark")) else FEISHU_ORIGIN
        return f"{base}/open-apis/bot/v2/hook/{self.config['token']}"

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        body = dict(message.payload)
        if self.config.get("secret"):
            timestamp = str(int(time.time()))
            body = {"timestamp": timestamp, "sign": sign(self.config["secret"], timestamp), **body}
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        resp = request(self.session, "POST", self.url(), data=data, timeout=self.timeout,
                       headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        info = answer if isinstance(answer, dict) else {}
        code = info.get("code", info.get("StatusCode"))
        text = str(info.get("msg") or info.get("StatusMessage") or resp.reason or f"HTTP {resp.status_code}")[:300]
        if resp.status_code == 429 or code in RATE_LIMITED:
            wait = resp.headers.get("x-ogw-ratelimit-reset") or resp.headers.get("Retry-After")
            raise RateLimited(text, code=code if code is not None else 429, retry_after=retry_after_seconds(wait))
        if resp.status_code >= 500:
            raise Retryable(text, code=code if code not in (None, 0) else resp.status_code)
        if code == 0:
            data_part = info.get("data") if isinstance(info.get("data"), dict) else {}
            remote_id = data_part.get("message_id")
            return Receipt(remote_id=str(remote_id) if remote_id else None, url=None, raw=info)
        if code is None:
            if resp.status_code >= 400:
                raise Permanent(text, code=resp.status_code)
            raise OutcomeUnknown(f"unexpected answer from Feishu (HTTP {resp.status_code})", code="unexpected_answer")
        raise Permanent(text, code=code)


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


ADAPTER = Feishu
