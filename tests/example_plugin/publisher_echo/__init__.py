"""An example adapter in a package of its own: posts each item as plain text to a URL.

Everything a real adapter has, in little: a schema with a secret, limits, a pure `render` built
from its own templates, and a `send` that sorts every answer into the contract's errors.
"""

from __future__ import annotations

from pathlib import Path

from channels import markup, templating, text
from channels.base import Channel, Field, Limits, Message, Post, Receipt
from channels.errors import Permanent, RateLimited, Retryable
from channels.http import request, retry_after_seconds

TEMPLATES = str(Path(__file__).parent / "templates")


class Echo(Channel):
    type = "echo"
    label = "Echo (example plugin)"
    idempotent = False
    fields = (
        Field("url", "Endpoint", kind="url"),
        Field("token", "Bearer token", secret=True),
        Field("timeout", "Timeout (seconds)", required=False, kind="integer", default=5),
    )
    limits = Limits(max_length=1000, length_unit="characters", markup="plain", rate_limit="30/minute")

    def render(self, post: Post) -> Message:
        # Our own templates first (templates/echo/<format>.txt); the built-in ones stay reachable.
        body = text.cut(markup.plain(post.body), 800, tail=f" {post.url}")
        content = templating.render(self.type, post, "txt", search=(TEMPLATES,), body=body)
        content = text.cut(content, self.limits.max_length)
        return Message(payload={"text": content}, preview=content, length=text.count(content, "characters"))

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        resp = request(self.session, "POST", self.config["url"], json=message.payload, timeout=self.timeout,
                       headers={"Authorization": f"Bearer {self.config['token']}"})
        if resp.status_code == 429:
            raise RateLimited("too many requests", code=429,
                              retry_after=retry_after_seconds(resp.headers.get("Retry-After")))
        if resp.status_code >= 500:
            raise Retryable(resp.text[:200] or resp.reason, code=resp.status_code)
        if resp.status_code >= 400:
            raise Permanent(resp.text[:200] or resp.reason, code=resp.status_code)
        return Receipt(remote_id=resp.headers.get("X-Echo-Id"))


ADAPTER = Echo
