"""Our own signed webhook: a JSON POST that the receiver can verify and deduplicate.

Headers:
  X-Publisher-Timestamp: Unix time in seconds when the request was signed
  X-Publisher-Signature: "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + raw body))
  Idempotency-Key:       the same for every attempt of one delivery
The receiver should reject timestamps more than five minutes away from its clock and drop a
second request with a key it has already seen; that is what makes this channel idempotent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from flask_babel import lazy_gettext as _l

from . import markup, templating
from .base import Channel, Field, Limits, Message, Post, Receipt
from .errors import Permanent, RateLimited, Retryable
from .http import request, retry_after_seconds

SIGNATURE_HEADER = "X-Publisher-Signature"
TIMESTAMP_HEADER = "X-Publisher-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class Webhook(Channel):
    type = "webhook"
    label = _l("Signed webhook")
    idempotent = True
    fields = (
        Field("url", _l("URL"), kind="url"),
        Field("secret", _l("Signing secret"), secret=True),
        Field("timeout", _l("Timeout (seconds)"), required=False, kind="integer", default=10),
    )
    limits = Limits(markup="json")

    def render(self, post: Post) -> Message:
        payload = {
            "event": "item.published",
            "item_id": post.item_id,
            "title": post.title,
            "body": post.body,
            "format": post.format,
            "origin": post.origin,
            "column": post.column,
            "url": post.url,
            "images": list(post.images),
            "author": post.author,
            "published_at": post.published_at,
            "issue_number": post.issue_number,
            "theme": post.theme,
            "brand": dict(post.brand),
            "extra": dict(post.extra),
            # The item as plain text (templates/posts/webhook/), for receivers that only show a message.
            "text": templating.render("webhook", post, "txt", body=markup.plain(post.body)),
        }
        return Message(payload=payload, preview=payload["text"], length=len(payload["text"]))

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        body = json.dumps(message.payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.config["secret"], timestamp, body),
            "Idempotency-Key": idempotency_key,
        }
        resp = request(self.session, "POST", self.config["url"], data=body, headers=headers, timeout=self.timeout)
        text = resp.text[:500]
        if resp.status_code == 429:
            raise RateLimited(text or "too many requests", code=429,
                              retry_after=retry_after_seconds(resp.headers.get("Retry-After")))
        if resp.status_code >= 500 or resp.status_code == 408:
            raise Retryable(text or resp.reason, code=resp.status_code)
        if resp.status_code >= 400:
            raise Permanent(text or resp.reason, code=resp.status_code)
        remote_id = idempotency_key
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("id") is not None:
            remote_id = str(answer["id"])
        url = answer.get("url") if isinstance(answer, dict) else None
        return Receipt(remote_id=remote_id, url=url, raw=answer)


ADAPTER = Webhook
