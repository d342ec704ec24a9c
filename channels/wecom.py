"""WeCom (企业微信) group robot: `POST {base_url}/cgi-bin/webhook/send?key=KEY`, JSON bodies.

The key in the URL is the only credential (no signing). Every answer is HTTP 200 with
`{"errcode","errmsg"}` in the body, so the body decides: 0 is sent, 45009 is "too fast", 93000
a wrong key, 40058 too long, -1 "system busy".

What each format sends:
- article (and anything without a better fit): one `markdown` message (WeCom's subset: headings,
  bold, links, `code`, > quotes, <font color>), content at most 4096 UTF-8 bytes.
- image, when the item has images: the `markdown` caption first, then up to MAX_IMAGES `image`
  messages (base64 + md5 of the bytes, JPG/PNG at most 2 MB; larger or other images are
  re-encoded as JPEG to fit).
- video, audio, event with a cover (the item's first image, else the column's cover): one `news`
  card (title ≤ 128 bytes, description ≤ 512 bytes, picurl, url = the full item), which shows the
  picture and opens the item; without a cover they are markdown like an article.

Several messages in one send are not atomic. Everything that can fail before the first message
(loading and fitting the images) is done first. If the caption is refused, nothing went out and the
answer is classified as usual. If a later image fails, the caption (and any earlier images) are
already in the group: the send raises PartlySent, an OutcomeUnknown, so the delivery is not retried
blindly (that would repeat the caption) and waits for a person; its message says what went out.

The robot's markdown has no documented escape syntax. Text from the item that would read as markup
is broken up with an invisible zero-width space (U+200B): "**", "__", "<" (font tags and <@user>
mentions), "](", "![" and "#" or ">" at the start of a line; a lone backtick becomes "｀".
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from types import SimpleNamespace
from urllib.parse import quote

from flask_babel import lazy_gettext as _l

from . import markup, templating
from .base import Channel, Field, Limits, Message, Post, Receipt
from .errors import ChannelError, OutcomeUnknown, Permanent, RateLimited, Retryable
from .http import load_image, request, retry_after_seconds
from .text import ELLIPSIS, count, cut

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
MARKDOWN_MAX_BYTES = 4096
TEXT_MAX_BYTES = 2048
NEWS_TITLE_MAX_BYTES = 128
NEWS_DESCRIPTION_MAX_BYTES = 512
IMAGE_MAX_BYTES = 2 * 1024 * 1024
DOWNLOAD_MAX_BYTES = 20 * 1024 * 1024  # larger originals are re-encoded to fit IMAGE_MAX_BYTES
MAX_IMAGES = 4  # caption + 4 images = 5 of the robot's 20 messages a minute
RATE_LIMIT_RETRY_SECONDS = 60.0  # WeCom does not say how long; its limit is per minute
MEDIA_FORMATS = ("video", "audio", "event")

ZWSP = "\u200b"


# --- the item's Markdown in a chat robot's Markdown subset (DingTalk's adapter uses it too) ---------

def escape_text(text: str, *, in_link: bool = False) -> str:
    """Plain text that the robot will not read as markup (see the module's docstring)."""
    text = text.replace("`", "｀").replace("<", "<" + ZWSP)
    text = re.sub(r"(?<=[*_~])(?=[*_~])", ZWSP, text)
    text = text.replace("](", "]" + ZWSP + "(").replace("![", "!" + ZWSP + "[")
    if in_link:
        text = text.replace("[", "［").replace("]", "］")
    return text


def escape_line_starts(text: str) -> str:
    """"#" or ">" at the start of a line of text would make a heading or a quote."""
    return re.sub(r"(?m)^(?=[#>])", ZWSP, text)


def escape_plain(text: str) -> str:
    """A whole value from outside the body (title, brand intro, place …) for a markdown template."""
    return escape_line_starts(escape_text(text or ""))


def safe_url(url: str) -> str:
    """A URL that cannot end the markdown link early."""
    return quote(url or "", safe="/:?#[]@!$&'*+,;=%~-._")  # encodes ( ) < > spaces and quotes


class SubsetWriter:
    """Writes markdown-it tokens as a robot's Markdown: what the robot renders kept, the rest plain."""

    def __init__(self, *, italics: bool = False, inline_images: bool = False, image_label: str = "图片",
                 heading_shift: int = 2):
        self.italics = italics
        self.inline_images = inline_images
        self.image_label = image_label
        self.heading_shift = heading_shift

    def inline(self, children) -> str:
        out: list[str] = []
        hrefs: list[str] = []
        for tok in children:
            kind = tok.type
            if kind == "text":
                out.append(escape_text(tok.content, in_link=bool(hrefs)))
            elif kind in ("softbreak", "hardbreak"):
                out.append("\n")
            elif kind in ("strong_open", "strong_close"):
                out.append("**")
            elif kind in ("em_open", "em_close"):
                out.append("*" if self.italics else "")
            elif kind == "code_inline":
                out.append("`" + tok.content.replace("`", "'") + "`" if tok.content.strip() else tok.content)
            elif kind == "link_open":
                hrefs.append(tok.attrGet("href") or "")
                out.append("[")
            elif kind == "link_close":
                out.append(f"]({safe_url(hrefs.pop() if hrefs else '')})")
            elif kind == "image":
                alt = escape_text(tok.content or "", in_link=True)
                src = safe_url(tok.attrGet("src") or "")
                if self.inline_images and not hrefs:
                    out.append(f"![{alt}]({src})")
                elif hrefs:
                    out.append(alt or self.image_label)
                else:
                    out.append(f"[{alt or self.image_label}]({src})")
            # s_open/s_close (strikethrough) and anything else: the text alone
        return "".join(out)

    def convert(self, body: str) -> str:
        blocks: list[tuple[str, bool]] = []  # (text, is a list item)
        lists: list[list[int | None]] = []
        quote_depth = 0
        heading = 0
        item_prefix = ""
        for tok in markup.tokens(body):
            kind = tok.type
            if kind == "blockquote_open":
                quote_depth += 1
            elif kind == "blockquote_close":
                quote_depth -= 1
            elif kind == "bullet_list_open":
                lists.append([None])
            elif kind == "ordered_list_open":
                lists.append([int(tok.attrGet("start") or 1)])
            elif kind in ("bullet_list_close", "ordered_list_close"):
                lists.pop()
                if not lists:
                    blocks.append(("", False))
            elif kind == "list_item_open" and lists:
                number, indent = lists[-1][0], "  " * (len(lists) - 1)
                item_prefix = f"{indent}- " if number is None else f"{indent}{number}. "
                if number is not None:
                    lists[-1][0] = number + 1
            elif kind == "heading_open":
                heading = min(6, int(tok.tag[1:]) + self.heading_shift)
            elif kind == "heading_close":
                heading = 0
            elif kind == "inline":
                text = escape_line_starts(self.inline(tok.children or []))
                if heading:
                    text = "#" * heading + " " + text.replace("\n", " ")
                if item_prefix:
                    text = item_prefix + text.replace("\n", "\n" + " " * len(item_prefix))
                    item_prefix = ""
                blocks.append((self._quoted(text, quote_depth), bool(lists)))
            elif kind in ("fence", "code_block"):
                lines = ["`" + line.replace("`", "'") + "`" for line in tok.content.split("\n") if line.strip()]
                if lines:
                    blocks.append((self._quoted("\n".join(lines), quote_depth), bool(lists)))
            elif kind == "hr":
                blocks.append((self._quoted("———", quote_depth), False))
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

    @staticmethod
    def _quoted(text: str, depth: int) -> str:
        if not depth:
            return text
        return "\n".join(">" * depth + " " + line for line in text.split("\n"))


def _repair(head: str) -> str:
    """Close what a cut left open in the last paragraph: a half link goes, bold and code are closed."""
    start = head.rfind("\n\n") + 2 if "\n\n" in head else 0
    last = head[start:]
    last = re.sub(r"!?\[[^\]\n]*(\]\([^)\n]*)?$", "", last).rstrip()
    if last.count("**") % 2:
        last += "**"
    if last.count("`") % 2:
        last += "`"
    return (head[:start] + last).rstrip()


def cut_markdown(text: str, limit: int, unit: str, *, tail: str) -> tuple[str, bool]:
    """channels.text.cut for markdown: never leaves a link, bold or code span half open.
    Returns the text and whether it was cut."""
    if count(text, unit) <= limit:
        return text, False
    suffix = ELLIPSIS + tail
    out = cut(text, max(0, limit - 4), unit, tail=tail)  # 4: room for closing "**" and "`"
    head = out[: -len(suffix)] if out.endswith(suffix) else out
    return _repair(head) + suffix, True


def labels(post: Post) -> dict[str, str]:
    if post.locale.startswith("zh"):
        return {"more": "阅读全文", "image": "图片", "open": "查看详情", "online": "线上参加", "place": "地点",
                "time": "时间", "duration": "时长", "listen": "收听", "watch": "观看"}
    return {"more": "Read more", "image": "Image", "open": "Open", "online": "Join online", "place": "Place",
            "time": "Time", "duration": "Duration", "listen": "Listen", "watch": "Watch"}


def cover_url(post: Post) -> str | None:
    return (post.images[0] if post.images else None) or (post.brand or {}).get("cover") or None


def render_markdown(channel_type: str, post: Post, writer: SubsetWriter, limit: int, unit: str = "bytes",
                    *, measure=None, **context) -> str:
    """The post's markdown template with the body in the robot's subset, within `limit`: when too
    long, the body is cut (at a paragraph where one is close) and ends with "…" and a link to the item.
    `measure(text)` is how the service counts (default: `count(text, unit)`)."""
    measure = measure or (lambda s: count(s, unit))
    words = labels(post)
    body = writer.convert(post.body)
    values = {
        "title": escape_plain(post.title), "theme": escape_plain(post.theme),
        "intro": escape_plain((post.brand or {}).get("intro") or ""),
        "signoff": escape_plain((post.brand or {}).get("signoff") or ""),
        "hashtags": escape_plain(" ".join(f"#{t}" for t in (post.brand or {}).get("hashtags") or [])),
        "place": escape_plain((post.extra or {}).get("place") or ""),
        "online_url": safe_url((post.extra or {}).get("online_url") or ""),
        "url": safe_url(post.url), "words": words, "zh": post.locale.startswith("zh"), **context,
    }

    def fill(text: str, truncated: bool) -> str:
        return templating.render(channel_type, post, "md", body=text, truncated=truncated, **values)

    content = fill(body, False)
    if measure(content) <= limit:
        return content
    tail = f" [{words['more']}]({values['url']})" if post.url else ""
    # The longest cut body that fits: a binary search, because the service's measure need not be
    # additive (JSON escaping) and the cut prefers a paragraph end.
    best, lo, hi = None, 0, count(body, unit)
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = fill(cut_markdown(body, mid, unit, tail=tail)[0], True)
        if measure(candidate) <= limit:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    if best is None:  # the template alone is too long (a very long intro or sign-off)
        best = cut(fill("", True), limit, unit)
    return best


# --- the adapter ----------------------------------------------------------------------------------

def post_json(session, url: str, *, params: dict, body: dict, timeout: float):
    """channels.http.request without the transport exception chained to its error: that exception's
    text holds the whole URL, and with it the robot's key or token, in any traceback that is logged."""
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    try:
        return request(session, "POST", url, params=params, data=data,
                       headers={"Content-Type": "application/json; charset=utf-8"}, timeout=timeout)
    except ChannelError as exc:
        error = exc
    error.__cause__ = error.__context__ = None
    error.__suppress_context__ = True
    raise error


class PartlySent(OutcomeUnknown):
    """Part of a multi-message post went out before a later message failed; a person must decide."""


def _fit_image(data: bytes, filename: str) -> bytes:
    """JPG or PNG of at most 2 MB, as the robot takes them; anything else re-encoded as JPEG."""
    is_jpeg, is_png = data[:3] == b"\xff\xd8\xff", data[:8] == b"\x89PNG\r\n\x1a\n"
    if (is_jpeg or is_png) and len(data) <= IMAGE_MAX_BYTES:
        return data
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise Permanent(f"image {filename} is not a picture WeCom can show", code="image_format") from exc
    if img.mode not in ("RGB", "L"):
        background = Image.new("RGB", img.size, "white")
        background.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        img = background
    scale = 1.0
    for quality in (88, 80, 72, 72, 72, 72, 72):
        size = (max(1, int(img.width * scale)), max(1, int(img.height * scale)))
        out = io.BytesIO()
        img.resize(size).save(out, "JPEG", quality=quality, optimize=True)
        if out.tell() <= IMAGE_MAX_BYTES:
            return out.getvalue()
        scale *= 0.75
    raise Permanent(f"image {filename} could not be made smaller than 2 MB", code="image_too_large")


def classify(resp, *, what: str = "message") -> dict:
    """The robot's answer as the parsed body, or the contract's error."""
    if resp.status_code == 429:
        raise RateLimited("too many requests", code=429,
                          retry_after=retry_after_seconds(resp.headers.get("Retry-After")) or RATE_LIMIT_RETRY_SECONDS)
    if resp.status_code >= 500:
        raise Retryable(f"WeCom answered HTTP {resp.status_code}", code=resp.status_code)
    if resp.status_code >= 400:
        raise Permanent(f"WeCom answered HTTP {resp.status_code}", code=resp.status_code)
    try:
        answer = resp.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "errcode" not in answer:
        # It reached WeCom (or a proxy) and we cannot tell whether it was posted.
        raise OutcomeUnknown(f"WeCom's answer to the {what} could not be read", code="unreadable_answer")
    code = answer.get("errcode")
    message = str(answer.get("errmsg") or "")[:300]
    if code == 0:
        return answer
    if code == 45009:
        raise RateLimited(message or "frequency limit", code=code, retry_after=RATE_LIMIT_RETRY_SECONDS)
    if code == -1:
        raise Retryable(message or "system busy", code=code)
    raise Permanent(message or "refused", code=code)


class WeCom(Channel):
    type = "wecom"
    label = _l("WeCom group robot (企业微信)")
    idempotent = False
    fields = (
        Field("key", _l("Robot key"), secret=True,
              help=_l("The key=… part of the robot's webhook address, without the address.")),
        Field("base_url", _l("API address"), required=False, kind="url", default=DEFAULT_BASE_URL),
        Field("timeout", _l("Timeout (seconds)"), required=False, kind="integer", default=10),
    )
    limits = Limits(max_length=MARKDOWN_MAX_BYTES, length_unit="bytes", markup="markdown", rate_limit="20/minute")

    @property
    def base_url(self) -> str:
        return (self.config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")

    def max_send_seconds(self) -> float:
        # every image may be downloaded, then caption + images are posted one after the other
        return (2 * MAX_IMAGES + 1) * self.timeout + 5

    # render -------------------------------------------------------------------------------------

    def render(self, post: Post) -> Message:
        words = labels(post)
        cover = cover_url(post)
        if post.format in MEDIA_FORMATS and cover:
            return self._news(post, cover)
        writer = SubsetWriter(image_label=words["image"])
        content = render_markdown(self.type, post, writer, MARKDOWN_MAX_BYTES)
        messages = [{"msgtype": "markdown", "markdown": {"content": content}}]
        images = list(post.images[:MAX_IMAGES]) if post.format == "image" else []
        messages += [{"msgtype": "image", "image": {"url": url}} for url in images]
        meta = {"images": images, "image_files": list(post.image_files[: len(images)])}
        return Message(payload={"messages": messages}, preview=content, length=count(content, "bytes"), meta=meta)

    def _news(self, post: Post, cover: str) -> Message:
        issue = templating.issue_label(post)
        title = cut(f"{issue}｜{post.title}" if issue else post.title, NEWS_TITLE_MAX_BYTES, "bytes")
        body = re.sub(r"\n\s*\n", "\n", markup.plain(post.body))  # a card has no room for blank lines
        description = templating.render(self.type, post, "txt", body=body, words=labels(post))
        description = cut(description, NEWS_DESCRIPTION_MAX_BYTES, "bytes")
        article = {"title": title, "description": description, "url": post.url, "picurl": cover}
        preview = f"{title}\n{description}\n{post.url}"
        return Message(payload={"messages": [{"msgtype": "news", "news": {"articles": [article]}}]},
                       preview=preview, length=count(preview, "bytes"), meta={"images": [], "image_files": []})

    # send ---------------------------------------------------------------------------------------

    def _post(self, body: dict, what: str) -> dict:
        resp = post_json(self.session, f"{self.base_url}/cgi-bin/webhook/send", params={"key": self.config["key"]},
                         body=body, timeout=self.timeout)
        return classify(resp, what=what)

    def _image_bodies(self, message: Message) -> list[dict]:
        urls = message.meta.get("images") or []
        source = SimpleNamespace(images=urls, image_files=message.meta.get("image_files") or [])
        bodies = []
        for index in range(len(urls)):
            image = load_image(self.session, source, index, timeout=self.timeout, max_bytes=DOWNLOAD_MAX_BYTES)
            data = _fit_image(image.data, image.filename)
            bodies.append({"msgtype": "image", "image": {"base64": base64.b64encode(data).decode(),
                                                         "md5": hashlib.md5(data, usedforsecurity=False).hexdigest()}})
        return bodies

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        texts = [m for m in message.payload["messages"] if m["msgtype"] != "image"]
        images = self._image_bodies(message)  # before anything is posted: a bad image leaves nothing half sent
        answers = [self._post(texts[0], "message")]
        for body in texts[1:] + images:
            what = "image" if body["msgtype"] == "image" else "message"
            try:
                answers.append(self._post(body, what))
            except ChannelError as exc:
                sent = len(answers)
                total = len(texts) + len(images)
                raise PartlySent(
                    f"partly sent: {sent} of {total} messages went out (the text first), then message {sent + 1} "
                    f"({what}) failed: {exc}. Check the group before sending again.",
                    code=exc.code) from exc
        return Receipt(remote_id=None, url=None, raw={"messages": len(answers), "answers": answers})


ADAPTER = WeCom
