"""DingTalk (钉钉) custom group robot: `POST {base_url}/robot/send?access_token=T[&timestamp=TS&sign=S]`.

Signing (when the robot's security setting is 加签 and a `secret` starting with "SEC" is configured):
TS is Unix time in milliseconds, string_to_sign = TS + "\\n" + secret, S = base64(HMAC-SHA256(key=secret,
msg=string_to_sign)), URL-encoded once in the query string. DingTalk refuses a TS more than an hour
away from its clock. A robot secured by keywords or an IP allow-list needs no secret; then the
keyword must appear in the text (put it in the column's intro, sign-off or hashtags).

What each format sends (one message per send, so a send is all or nothing):
- article and image: `markdown` {title, text}; the text carries the item's images inline as
  ![](url) (an image item shows all its pictures after the title, an article its cover);
- video, audio and event: `actionCard` {title, text, singleTitle, singleURL}: the same markdown
  text with the cover on top and a button that opens the full item.
The whole JSON body stays within 20,000 UTF-8 bytes (errcode 460101): the body text is cut, at a
paragraph where one is close, and ends with "…" and a link to the item.

Answers are HTTP 200 with {"errcode","errmsg"}: 0 sent; 130101 and 410100 too fast (DingTalk then
throttles the robot for ten minutes, so retry after 600 s); -1 system busy (retry); 310000 signature,
timestamp, keyword or IP refused, 300001/300005/400101 token unknown, 460101 too long, and every
other code: permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from . import templating
from .base import Channel, Field, Limits, Message, Post, Receipt
from .errors import OutcomeUnknown, Permanent, RateLimited, Retryable
from .http import retry_after_seconds
from .text import count, cut
from .wecom import SubsetWriter, cover_url, labels, post_json, render_markdown, safe_url

DEFAULT_BASE_URL = "https://oapi.dingtalk.com"
BODY_MAX_BYTES = 20_000
TITLE_MAX_CHARACTERS = 64  # the title shows in the chat list and the notification only
MAX_IMAGES = 9
THROTTLE_SECONDS = 600.0  # "exceeding 20 a minute throttles the robot for 10 minutes"
RATE_LIMITED_CODES = (130101, 410100)
RETRYABLE_CODES = (-1,)
MEDIA_FORMATS = ("video", "audio", "event")


def sign(secret: str, timestamp: str) -> str:
    """base64(HMAC-SHA256(key=secret, msg=timestamp + "\\n" + secret)), before URL encoding."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def body_bytes(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class DingTalk(Channel):
    type = "dingtalk"
    label = _l("DingTalk robot (钉钉)")
    idempotent = False
    fields = (
        Field("access_token", _l("Access token"), secret=True,
              help=_l("The access_token=… part of the robot's webhook address, without the address.")),
        Field("secret", _l("Signing secret (SEC…)"), secret=True, required=False,
              help=_l("Only when the robot's security setting is signing (加签); leave empty for keywords or IP.")),
        Field("base_url", _l("API address"), required=False, kind="url", default=DEFAULT_BASE_URL),
        Field("timeout", _l("Timeout (seconds)"), required=False, kind="integer", default=10),
    )
    limits = Limits(max_length=BODY_MAX_BYTES, length_unit="bytes", markup="markdown", rate_limit="20/minute")

    @property
    def base_url(self) -> str:
        return (self.config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")

    @classmethod
    def validate_config(cls, config: dict) -> dict[str, str]:
        errors = super().validate_config(config)
        secret = config.get("secret")
        if secret and not str(secret).startswith("SEC"):
            errors["secret"] = _("A signing secret starts with SEC (copy it from the robot's security settings).")
        return errors

    # render -------------------------------------------------------------------------------------

    def render(self, post: Post) -> Message:
        words = labels(post)
        issue = templating.issue_label(post)
        title = cut(f"{issue}｜{post.title}" if issue else post.title, TITLE_MAX_CHARACTERS)
        card = post.format in MEDIA_FORMATS
        if post.format == "image":
            pictures = list(post.images[:MAX_IMAGES])
        else:
            cover = cover_url(post)
            pictures = [cover] if cover else []
        images = "\n\n".join(f"![]({safe_url(u)})" for u in pictures)

        def wrap(text: str) -> dict:
            if card:
                return {"msgtype": "actionCard", "actionCard": {
                    "title": title, "text": text, "singleTitle": words["open"], "singleURL": post.url,
                    "btnOrientation": "0"}}
            return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}

        writer = SubsetWriter(italics=True, inline_images=True, image_label=words["image"])
        text = render_markdown(self.type, post, writer, BODY_MAX_BYTES, measure=lambda t: len(body_bytes(wrap(t))),
                               images=images)
        payload = wrap(text)
        return Message(payload=payload, preview=text, length=count(text, "bytes"),
                       meta={"body_bytes": len(body_bytes(payload))})

    # send ---------------------------------------------------------------------------------------

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        params = {"access_token": self.config["access_token"]}
        secret = self.config.get("secret")
        if secret:
            timestamp = str(int(time.time() * 1000))
            params.update(timestamp=timestamp, sign=sign(secret, timestamp))  # requests URL-encodes it once
        resp = post_json(self.session, f"{self.base_url}/robot/send", params=params, body=message.payload,
                         timeout=self.timeout)
        if resp.status_code == 429:
            raise RateLimited("too many requests", code=429,
                              retry_after=retry_after_seconds(resp.headers.get("Retry-After")) or THROTTLE_SECONDS)
        if resp.status_code >= 500:
            raise Retryable(f"DingTalk answered HTTP {resp.status_code}", code=resp.status_code)
        if resp.status_code >= 400:
            raise Permanent(f"DingTalk answered HTTP {resp.status_code}", code=resp.status_code)
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or "errcode" not in answer:
            raise OutcomeUnknown("DingTalk's answer could not be read", code="unreadable_answer")
        code = answer.get("errcode")
        text = str(answer.get("errmsg") or "")[:300]
        if code == 0:
            return Receipt(remote_id=None, url=None, raw={"errcode": 0, "errmsg": text})
        if code in RATE_LIMITED_CODES:
            raise RateLimited(text or "sending too fast", code=code, retry_after=THROTTLE_SECONDS)
        if code in RETRYABLE_CODES:
            raise Retryable(text or "system busy", code=code)
        raise Permanent(text or "refused", code=code)


ADAPTER = DingTalk
