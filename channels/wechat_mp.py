"""WeChat Official Account (微信公众号): an item becomes a published article.

Publishing takes these calls, each but the first authenticated by an access token in the query string:
  GET  cgi-bin/token                      appid + secret -> access_token (7200 s; 2000 fetches a day)
  POST cgi-bin/media/uploadimg            each image of the article (JPG/PNG under 1 MB) -> its WeChat URL
  POST cgi-bin/material/add_material      the cover, as a permanent image -> media_id (the draft's thumb)
  POST cgi-bin/draft/add                  the article -> the draft's media_id
  POST cgi-bin/freepublish/submit         the draft -> publish_id; publishing then runs on WeChat's side
  POST cgi-bin/freepublish/get            polled until publish_status settles (0 published … 6 blocked)
Errors come as {"errcode", "errmsg"} with HTTP 200, so every answer is parsed.

Until the submit is accepted nothing is public: failures then are Retryable or Permanent (a leftover
draft or image in the account's library is harmless). Once WeChat accepted the submit, anything but a
settled publish_status is OutcomeUnknown, so the article is never published twice.

The access token is cached (WeChat allows 2000 fetches a day, and a new token replaces the old one
within minutes) in `WechatMP.token_cache`: in this process's memory by default; any object with
`get(key)`, `set(key, value, ex=seconds)` and `delete(key)` will do, e.g. a `redis.Redis` client,
which shares one token between all workers.
"""

from __future__ import annotations

import hashlib
import html as htmlmod
import io
import re
import threading
import time
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import nh3
from flask_babel import lazy_gettext as _l

from . import markup, templating
from .base import Channel, Field, Limits, Message, Post, Receipt
from .errors import ChannelError, OutcomeUnknown, Permanent, RateLimited, Retryable
from .http import load_image, request
from .text import count, cut

PUBLIC_ORIGIN = "https://api.weixin.qq.com"
TITLE_MAX = 32  # characters (标题总长度不超过32个字)
AUTHOR_MAX = 16
DIGEST_MAX = 128
CONTENT_MAX = 20_000  # characters of content HTML; WeChat wants fewer ("必须少于2万字符")
URL_ROOM = 200  # characters kept free per image: WeChat's image URL replaces ours when sending
MAX_IMAGES = 20  # images in one article (each is a download and an upload)
BODY_IMAGE_BYTES = 1024 * 1024 - 1  # uploadimg: JPG/PNG "under 1 MB"
COVER_BYTES = 10 * 1024 * 1024  # add_material type=image: 10 MB
LOAD_BYTES = 20 * 1024 * 1024  # what we read before re-encoding an image that is too big for WeChat
TOKEN_MARGIN = 300  # seconds: a cached token is refreshed this long before it expires
TOKEN_ERRORS = {40001, 40014, 42001}  # invalid credential, invalid token, token expired
QUOTA_ZONE = ZoneInfo("Asia/Shanghai")  # WeChat's daily quotas start again at midnight Beijing time
STATUS_FAILED = {
    2: "WeChat refused the originality declaration (原创声明失败)",
    3: "publishing failed on WeChat's side (常规失败)",
    4: "the article was rejected by WeChat's review (平台审核不通过)",
    5: "the article was published, then deleted by a user of the account (成功后用户删除所有文章)",
    6: "the article was published, then blocked by WeChat (成功后系统封禁所有文章)",
}
HINTS = {
    40164: "this server's IP address is not on the account's IP allow-list: add it in the WeChat Official "
           "Accounts Platform under 设置与开发 → 基本配置 → IP白名单",
    40013: "the AppID is not valid: check the channel's appid",
    40125: "the AppSecret is wrong: copy it again from 设置与开发 → 基本配置",
    40243: "the AppSecret is frozen: unfreeze it in the WeChat Official Accounts Platform",
    48001: "this account may not use this API (drafts and publishing need the permission on the account)",
    40007: "WeChat does not know this media_id (the cover image or the draft was deleted, or belongs to "
           "another account)",
    45002: "the article is too long for WeChat",
    45003: "the title is too long for WeChat",
    45004: "the digest is too long for WeChat",
    45110: "the author name is too long for WeChat",
    53503: "the draft did not pass WeChat's publishing check (该草稿未通过发布检测)",
    53504: "this draft can only be published on the WeChat Official Accounts Platform website",
    53505: "the draft must be saved by hand on the WeChat Official Accounts Platform before it can be published",
}

# What WeChat articles keep; everything else is dropped (its text stays).
TAGS = {"section", "p", "br", "span", "strong", "b", "em", "i", "u", "s", "del", "h1", "h2", "h3", "h4", "h5",
        "h6", "blockquote", "ul", "ol", "li", "a", "img", "pre", "code", "hr", "table", "thead", "tbody", "tr",
        "th", "td", "sup", "sub"}
ATTRIBUTES = {"a": {"href"}, "img": {"src", "alt"}, "ol": {"start"}}
STYLE_PROPERTIES = {"color", "background-color", "font-size", "font-weight", "font-style", "font-family",
                    "line-height", "letter-spacing", "text-align", "margin", "padding", "border-left",
                    "border-radius", "border-top", "max-width", "width", "height", "display", "white-space",
                    "overflow-x"}
SCHEMES = {"http", "https"}
COLOR = re.compile(r"#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?\Z")
DEFAULT_COLOR = "#07c160"
BODY_STYLES = {
    "h1": "font-size:22px;font-weight:bold;color:{c};margin:24px 0 12px",
    "h2": "font-size:19px;font-weight:bold;color:{c};margin:22px 0 10px",
    "h3": "font-size:17px;font-weight:bold;color:{c};margin:20px 0 8px",
    "h4": "font-size:16px;font-weight:bold;margin:16px 0 8px",
    "h5": "font-size:15px;font-weight:bold;margin:16px 0 8px",
    "h6": "font-size:15px;font-weight:bold;margin:16px 0 8px",
    "p": "margin:0 0 16px;line-height:1.75",
    "blockquote": "margin:16px 0;padding:8px 12px;border-left:4px solid {c};color:#555;background-color:#f7f7f7",
    "pre": "margin:0 0 16px;padding:12px;background-color:#f6f8fa;font-size:13px;white-space:pre-wrap",
    "code": "font-family:Menlo,Consolas,monospace;background-color:#f6f8fa",
    "img": "max-width:100%;height:auto;display:block;margin:12px auto",
    "li": "line-height:1.75",
    "a": "color:{c}",
}
LINK = re.compile(r'<a href="([^"]*)"(?: title="[^"]*")?>(.*?)</a>', re.S)
IMG_SRC = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]*)(")')
STYLED_TAG = re.compile(r"<(" + "|".join(BODY_STYLES) + r")\b")


class TokenCache(Protocol):
    """Where access tokens are kept between sends; a redis.Redis client fits as it is."""

    def get(self, key: str) -> str | bytes | None: ...

    def set(self, key: str, value: str, ex: int | None = None) -> Any: ...

    def delete(self, key: str) -> Any: ...


class MemoryTokenCache:
    """The default: this process's memory (each worker process fetches its own token)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[1] <= time.monotonic():
                del self._items[key]
                return None
            return item[0]

    def set(self, key: str, value: str, ex: int | None = None) -> None:
        with self._lock:
            self._items[key] = (value, time.monotonic() + (ex if ex is not None else 10 ** 9))

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


# --- rendering helpers (pure) ------------------------------------------------------------------

def _color(value: Any) -> str:
    return value if isinstance(value, str) and COLOR.match(value) else DEFAULT_COLOR


def _unlink(raw: str) -> str:
    """WeChat articles only link to other WeChat articles; any other link becomes its text and the URL."""
    def repl(m: re.Match) -> str:
        href, text = m.group(1), m.group(2)
        host = (urlsplit(htmlmod.unescape(href)).hostname or "").lower()
        if host == "mp.weixin.qq.com":
            return m.group(0)
        if nh3.clean(text, tags=set()).strip() == href:
            return text
        return f"{text} ({href})"

    return LINK.sub(repl, raw)


def _clean(fragment: str, *, styles: bool) -> str:
    attributes = {**ATTRIBUTES, "*": {"style"}} if styles else ATTRIBUTES
    return nh3.clean(fragment, tags=TAGS, attributes=attributes, url_schemes=SCHEMES, link_rel=None,
                     filter_style_properties=STYLE_PROPERTIES if styles else None)


def body_html(body: str, color: str) -> str:
    """The Markdown body as WeChat article HTML: cleaned to the tags WeChat keeps, with inline styles."""
    cleaned = _clean(_unlink(markup.html(body)), styles=False)
    return STYLED_TAG.sub(lambda m: f'<{m.group(1)} style="{BODY_STYLES[m.group(1)].format(c=color)}"', cleaned)


def content_images(content: str) -> list[str]:
    seen: list[str] = []
    for m in IMG_SRC.finditer(content):
        src = htmlmod.unescape(m.group(2))
        if src and src not in seen:
            seen.append(src)
    return seen


def text_of(content: str) -> str:
    """The article as a reader sees its text."""
    s = re.sub(r"<br\s*/?>", "\n", content)
    s = re.sub(r"<li\b[^>]*>", "• ", re.sub(r"</li>\s*", "\n", s))
    s = re.sub(r"</(p|h[1-6]|blockquote|pre|section|table|tr|ul|ol)>|<hr\s*/?>", "\n\n", s)
    s = htmlmod.unescape(nh3.clean(s, tags=set()))
    s = "\n".join(line.strip() for line in s.splitlines())
    return re.sub(r"\n{3,}", "\n\n", s).strip()


def _block_ends(body: str) -> list[int]:
    """Source line numbers where the body's top-level blocks end: places where it may be cut."""
    ends = {tok.map[1] for tok in markup.tokens(body) if tok.level == 0 and tok.map and tok.nesting >= 0}
    return sorted(ends)


def _until_quota_reset(now: datetime | None = None) -> float:
    now = (now or datetime.now(QUOTA_ZONE)).astimezone(QUOTA_ZONE)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds() + 60


# --- image bytes -------------------------------------------------------------------------------

def _kind(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return None


def fit_image(data: bytes, name: str, max_bytes: int) -> tuple[str, bytes, str]:
    """(filename, bytes, content type) as WeChat takes them: JPG or PNG below `max_bytes`;
    anything else (WebP, GIF, too big) re-encoded as JPEG, smaller until it fits."""
    stem = name.rsplit(".", 1)[0] or "image"
    kind = _kind(data)
    if kind and len(data) <= max_bytes:
        return f"{stem}.{'jpg' if kind == 'jpeg' else 'png'}", data, f"image/{kind}"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "P"):
                img = img.convert("RGBA")
                flat = Image.new("RGB", img.size, (255, 255, 255))
                flat.paste(img, mask=img.getchannel("A"))
                img = flat
            else:
                img = img.convert("RGB")
            for scale in (1.0, 0.75, 0.5, 0.35, 0.25):
                size = (max(1, int(img.width * scale)), max(1, int(img.height * scale)))
                resized = img if scale == 1.0 else img.resize(size)
                for quality in (85, 70, 55):
                    out = io.BytesIO()
                    resized.save(out, "JPEG", quality=quality, optimize=True)
                    if out.tell() <= max_bytes:
                        return f"{stem}.jpg", out.getvalue(), "image/jpeg"
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise Permanent(f"image {name} is not a picture WeChat can take (JPG or PNG)", code="image_type") from exc
    raise Permanent(f"image {name} cannot be made smaller than {max_bytes} bytes for WeChat", code="image_too_large")


class WechatMP(Channel):
    type = "wechat_mp"
    label = _l("WeChat Official Account (微信公众号)")
    idempotent = False
    fields = (
        Field("appid", _l("AppID"), help=_l("设置与开发 → 基本配置 in the WeChat Official Accounts Platform.")),
        Field("secret", _l("AppSecret"), secret=True),
        Field("author", _l("Default author (optional, at most 16 characters)"), required=False,
              help=_l("Shown when the item has no author.")),
        Field("need_open_comment", _l("Open comments"), required=False, kind="boolean", default=False),
        Field("only_fans_can_comment", _l("Only followers may comment"), required=False, kind="boolean",
              default=False),
        Field("thumb_media_id", _l("Default cover (media_id of a permanent image, optional)"), required=False,
              help=_l("Used when neither the item nor its column has a cover image.")),
        Field("publish_wait", _l("Wait for publishing (seconds)"), required=False, kind="integer", default=60,
              help=_l("How long a send waits for WeChat to finish publishing before it asks an editor to check.")),
        Field("base_url", _l("API address"), required=False, kind="url", default=PUBLIC_ORIGIN),
        Field("timeout", _l("Timeout (seconds)"), required=False, kind="integer", default=10),
    )
    limits = Limits(max_length=CONTENT_MAX, length_unit="characters", markup="html", rate_limit="10/minute")
    token_cache: ClassVar[TokenCache] = MemoryTokenCache()
    poll_intervals: tuple[float, ...] = (1.0, 1.0, 2.0, 3.0, 5.0)  # seconds between status polls; the last repeats

    def __init__(self, config: dict, *, session=None):
        super().__init__(config, session=session)
        self.base_url = str(self.config.get("base_url") or PUBLIC_ORIGIN).rstrip("/")
        try:
            wait = int(self.config.get("publish_wait") if self.config.get("publish_wait") not in (None, "") else 60)
        except (TypeError, ValueError):
            wait = 60
        self.publish_wait = max(0, min(wait, 300))
        self._token: str | None = None
        self._token_fresh = False
        self._refreshed = False

    @classmethod
    def validate_config(cls, config: dict) -> dict[str, str]:
        errors = super().validate_config(config)
        if len(str(config.get("author") or "")) > AUTHOR_MAX:
            errors["author"] = _l("WeChat shows at most 16 characters of an author.")
        wait = config.get("publish_wait")
        if wait not in (None, "") and not (isinstance(wait, int) and 0 <= wait <= 300):
            errors["publish_wait"] = _l("Enter a number of seconds from 0 to 300.")
        return errors

    # --- render -------------------------------------------------------------------------------

    def render(self, post: Post) -> Message:
        color = _color(post.brand.get("color"))
        zh = post.locale.startswith("zh")
        gallery = list(post.images) if post.format == "image" else []
        budget_images = len(set(gallery)) + len(set(re.findall(r"!\[", post.body or "")))
        budget = CONTENT_MAX - 1 - URL_ROOM * min(budget_images, MAX_IMAGES)

        def content_for(body: str, shortened: bool) -> str:
            # `body` is already cleaned by nh3; the template marks it |safe
            html = templating.render(self.type, post, "html", body=body, color=color, zh=zh,
                                     gallery=gallery, shortened=shortened)
            return _clean(html, styles=True)

        content = content_for(body_html(post.body, color), False)
        if len(content) > budget:
            content = self._shortened(post, color, budget, content_for)
        images = content_images(content)
        if len(images) > MAX_IMAGES:
            raise Permanent(f"WeChat articles from this channel take at most {MAX_IMAGES} images; this item has "
                            f"{len(images)}", code="too_many_images")
        cover = post.brand.get("cover") or (post.images[0] if post.images else None) or (images[0] if images else None)
        if not cover and not self.config.get("thumb_media_id"):
            raise Permanent("WeChat needs a cover image for every article: add an image to the item, a cover to "
                            "the column's brand kit, or a default cover (thumb_media_id) to this channel",
                            code="no_cover")

        title = cut(post.title.strip(), TITLE_MAX)
        author = (post.author or str(self.config.get("author") or "")).strip()[:AUTHOR_MAX]
        lead = " · ".join(x for x in (templating.issue_label(post), post.theme) if x)
        plain = " ".join(markup.plain(post.body).split())
        digest = cut(f"{lead}｜{plain}" if lead and plain else lead or plain, DIGEST_MAX)
        article = {
            "title": title,
            "author": author,
            "digest": digest,
            "content": content,
            "content_source_url": post.url,
            "need_open_comment": 1 if _truthy(self.config.get("need_open_comment")) else 0,
            "only_fans_can_comment": 1 if _truthy(self.config.get("only_fans_can_comment")) else 0,
        }
        preview = "\n\n".join(x for x in (title, digest, text_of(content)) if x)
        return Message(
            payload={"article": article, "images": images, "cover": cover},
            preview=preview,
            length=count(preview, self.limits.length_unit),
            meta={"content_length": len(content), "images": list(post.images), "image_files": list(post.image_files)},
        )

    @staticmethod
    def _shortened(post: Post, color: str, budget: int, content_for) -> str:
        """As many whole top-level blocks of the body as fit, then a note that the rest is behind
        "阅读原文"; when not even the first block fits, its plain text cut to size."""
        lines = (post.body or "").splitlines()
        ends = _block_ends(post.body or "")

        def attempt(k: int) -> str:
            return content_for(body_html("\n".join(lines[: ends[k - 1]]), color) if k else "", True)

        lo, hi = 0, len(ends)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(attempt(mid)) <= budget:
                lo = mid
            else:
                hi = mid - 1
        if lo:
            return attempt(lo)
        plain = markup.plain(post.body)

        def excerpt(room: int) -> str:
            return content_for(f'<p style="{BODY_STYLES["p"]}">{htmlmod.escape(cut(plain, room))}</p>', True)

        lo, hi = 0, len(plain)  # the longest excerpt that fits, escaping included
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(excerpt(mid)) <= budget:
                lo = mid
            else:
                hi = mid - 1
        if lo > 0:
            return excerpt(lo)
        raise Permanent("the article's fixed parts (intro, sign-off, details) leave no room for its text",
                        code="too_long")

    # --- send ---------------------------------------------------------------------------------

    def max_send_seconds(self) -> float:
        per_call = self.timeout + min(5.0, self.timeout)  # connect + read
        # preparation is cut off after its budget; then the submit, the wait, and one poll in flight
        return self._prepare_budget() + per_call + per_call + self.publish_wait + per_call

    def _prepare_budget(self) -> float:
        return 20 * self.timeout

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        payload = message.payload
        article = dict(payload["article"])
        self._refreshed, self._token, self._token_fresh = False, None, False
        prepare_until = time.monotonic() + self._prepare_budget()
        try:
            wx_urls: dict[str, str] = {}
            for src in payload.get("images") or []:
                self._check_budget(prepare_until)
                name, data, ctype = self._image(message, src, BODY_IMAGE_BYTES)
                self._check_budget(prepare_until)
                answer = self._call("POST", "cgi-bin/media/uploadimg", stage="prepare",
                                    files={"media": (name, data, ctype)})
                if not answer.get("url"):
                    raise Retryable("WeChat did not return a URL for an uploaded image", code="no_url")
                wx_urls[src] = answer["url"]
            content = IMG_SRC.sub(
                lambda m: m.group(1) + htmlmod.escape(wx_urls.get(htmlmod.unescape(m.group(2)),
                                                                  htmlmod.unescape(m.group(2)))) + m.group(3),
                article["content"])
            if len(content) >= CONTENT_MAX:
                raise Permanent(f"with WeChat's image addresses the article has {len(content)} characters of HTML; "
                                f"WeChat takes fewer than {CONTENT_MAX}", code="too_long")
            article["content"] = content
            cover = payload.get("cover")
            if cover:
                self._check_budget(prepare_until)
                name, data, ctype = self._image(message, cover, COVER_BYTES)
                self._check_budget(prepare_until)
                answer = self._call("POST", "cgi-bin/material/add_material", stage="prepare",
                                    params={"type": "image"}, files={"media": (name, data, ctype)})
                thumb = answer.get("media_id")
            else:
                thumb = self.config.get("thumb_media_id")
            if not thumb:
                raise Permanent("WeChat needs a cover image for every article", code="no_cover")
            article["thumb_media_id"] = thumb
            self._check_budget(prepare_until)
            draft = self._call("POST", "cgi-bin/draft/add", stage="prepare", json={"articles": [article]})
            draft_id = draft.get("media_id")
            if not draft_id:
                raise Retryable("WeChat did not return the draft's media_id", code="no_media_id")
        except OutcomeUnknown as exc:  # nothing is public before the submit
            raise Retryable(f"{exc.message} (before publishing: nothing is public)", code=exc.code) from None

        submitted = self._call("POST", "cgi-bin/freepublish/submit", stage="submit", json={"media_id": draft_id})
        publish_id = submitted.get("publish_id")
        if publish_id in (None, ""):
            raise OutcomeUnknown("WeChat accepted the submit but sent no publish_id; check the account's "
                                 "publishing records (发表记录)", code="no_publish_id")
        raw = {"publish_id": str(publish_id), "msg_data_id": submitted.get("msg_data_id"),
               "draft_media_id": draft_id, "thumb_media_id": thumb}
        return self._wait(str(publish_id), raw)

    def _check_budget(self, until: float) -> None:
        if time.monotonic() > until:
            raise Retryable("preparing the article (images, draft) took too long; nothing was published",
                            code="prepare_timeout")

    def _wait(self, publish_id: str, raw: dict) -> Receipt:
        deadline = time.monotonic() + self.publish_wait
        pauses = iter(self.poll_intervals)
        pause = self.poll_intervals[0] if self.poll_intervals else 1.0
        problem = ""
        where = f"WeChat accepted the article for publishing (publish_id {publish_id})"
        while True:
            try:
                answer = self._call("POST", "cgi-bin/freepublish/get", stage="poll", json={"publish_id": publish_id})
            except (Retryable, OutcomeUnknown) as exc:
                problem = f"; the last status query failed: {exc}"
            except ChannelError as exc:
                raise OutcomeUnknown(f"{where} but its status cannot be read ({exc.message}); check the "
                                     "account's publishing records (发表记录)", code=exc.code) from None
            else:
                status = answer.get("publish_status")
                raw["publish_status"] = status
                if status == 0:
                    return self._published(answer, raw)
                if status in STATUS_FAILED:
                    failed = answer.get("fail_idx") or []
                    which = f" (article {', '.join(map(str, failed))})" if failed else ""
                    raise Permanent(f"{STATUS_FAILED[status]}{which}", code=f"publish_status_{status}")
                problem = "" if status == 1 else f"; unknown publish_status {status!r}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OutcomeUnknown(f"{where} but it was still publishing after {self.publish_wait} seconds"
                                     f"{problem}; an editor should check the account's publishing records (发表记录)",
                                     code="still_publishing")
            pause = next(pauses, pause)
            time.sleep(min(pause, remaining))

    @staticmethod
    def _published(answer: dict, raw: dict) -> Receipt:
        items = (answer.get("article_detail") or {}).get("item") or []
        url = next((i.get("article_url") for i in items if isinstance(i, dict) and i.get("article_url")), None)
        article_id = answer.get("article_id")
        raw.update(article_id=article_id, article_url=url)
        return Receipt(remote_id=str(article_id or raw["publish_id"]), url=url, raw=raw)

    # --- images -------------------------------------------------------------------------------

    def _image(self, message: Message, url: str, max_bytes: int) -> tuple[str, bytes, str]:
        images = list(message.meta.get("images") or [])
        if url in images:
            source, index = SimpleNamespace(images=images, image_files=list(message.meta.get("image_files") or [])), \
                images.index(url)
        else:
            source, index = SimpleNamespace(images=[url], image_files=[]), 0
        image = load_image(self.session, source, index, timeout=self.timeout, max_bytes=LOAD_BYTES)
        return fit_image(image.data, image.filename, max_bytes)

    # --- calls --------------------------------------------------------------------------------

    def _cache_key(self) -> str:
        who = f"{self.base_url}\n{self.config.get('appid', '')}\n{self.config.get('secret', '')}"
        return "publisher:wechat_mp:token:" + hashlib.sha256(who.encode()).hexdigest()[:40]

    def _access_token(self) -> str:
        if self._token:
            return self._token
        cached = self.token_cache.get(self._cache_key())
        if cached:
            self._token = cached.decode() if isinstance(cached, bytes) else str(cached)
            self._token_fresh = False
            return self._token
        try:
            resp = request(self.session, "GET", f"{self.base_url}/cgi-bin/token", timeout=self.timeout,
                           params={"grant_type": "client_credential", "appid": self.config.get("appid", ""),
                                   "secret": self.config.get("secret", "")})
        except ChannelError as exc:  # fetching a token publishes nothing; the URL carries the secret
            raise Retryable(f"access token: {exc.message}", code=exc.code) from None
        answer = self._json(resp, "prepare", "access token")
        code = _errcode(answer)
        token = answer.get("access_token")
        if code in (-1, 45009):
            raise self._error(code, answer, "access token")
        if code or not token:  # a wrong AppID, AppSecret or server IP: only an administrator can help
            hint = HINTS[40125] if code == 40001 else HINTS.get(code, "")
            errmsg = self._scrub(str(answer.get("errmsg") or "no access token in the answer"))[:300]
            raise Permanent(f"access token: {errmsg}" + (f" — {hint}" if hint else ""), code=code or "no_token")
        try:
            ttl = int(answer.get("expires_in") or 7200)
        except (TypeError, ValueError):
            ttl = 7200
        self.token_cache.set(self._cache_key(), token, ex=max(60, ttl - TOKEN_MARGIN))
        self._token, self._token_fresh = token, True
        return token

    def _forget_token(self) -> None:
        self.token_cache.delete(self._cache_key())
        self._token = None

    def _call(self, method: str, path: str, *, stage: str, params: dict | None = None, **kwargs) -> dict:
        """One API call with the access token; a token WeChat calls expired or invalid is replaced
        once per send and the call made again. `stage` is prepare, submit or poll."""
        what = path.rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1]
        while True:
            token = self._access_token()
            try:
                resp = request(self.session, method, f"{self.base_url}/{path}", timeout=self.timeout,
                               params={"access_token": token, **(params or {})}, **kwargs)
            except ChannelError as exc:  # re-raised without the cause: its text may hold the URL and token
                raise type(exc)(f"{what}: {exc.message}", code=exc.code) from None
            answer = self._json(resp, stage, what)
            code = _errcode(answer)
            stale = code == 42001 or (code in TOKEN_ERRORS and not self._token_fresh)
            if stale and not self._refreshed:
                self._refreshed = True
                self._forget_token()
                continue
            if code:
                raise self._error(code, answer, what, hint=HINTS.get(code, ""))
            return answer

    def _json(self, resp, stage: str, what: str) -> dict:
        unsure = stage == "submit"  # a submit that failed oddly may still have been accepted
        if resp.status_code >= 500 or resp.status_code == 429:
            cls = OutcomeUnknown if unsure else Retryable
            raise cls(f"{what}: WeChat answered HTTP {resp.status_code}", code=resp.status_code)
        if resp.status_code >= 400:
            cls = OutcomeUnknown if unsure else Permanent
            raise cls(f"{what}: WeChat answered HTTP {resp.status_code}", code=resp.status_code)
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            cls = OutcomeUnknown if unsure else Retryable
            raise cls(f"{what}: WeChat's answer was not JSON", code="bad_answer")
        return answer

    def _error(self, code: int | str, answer: dict, what: str, *, hint: str = "") -> ChannelError:
        errmsg = self._scrub(str(answer.get("errmsg") or "no access token in the answer"))[:300]
        message = f"{what}: {errmsg}" + (f" — {hint}" if hint else "")
        if code == 45009:
            return RateLimited(f"{message} — the daily quota is used up; trying again after midnight Beijing time",
                               code=code, retry_after=_until_quota_reset())
        if code == -1 or code in TOKEN_ERRORS:  # busy; or a token that failed twice: a new one next time
            return Retryable(message, code=code)
        return Permanent(message, code=code)

    def _scrub(self, text: str) -> str:
        for secret in (self.config.get("secret"), self._token):
            if secret and len(str(secret)) >= 6:
                text = text.replace(str(secret), "***")
        return text


def _errcode(answer: dict) -> int:
    try:
        return int(answer.get("errcode") or 0)
    except (TypeError, ValueError):
        return -1


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


ADAPTER = WechatMP
