"""Mastodon: a status on the account of the access token, on any instance.

Statuses are plain text (the instance turns URLs, #tags and @mentions into links), counted the
Mastodon way: every URL as `characters_reserved_per_url` (23), the rest by character. The limit
belongs to the instance (`GET /api/v2/instance` → configuration.statuses.max_characters, 500 by
default). `render` is pure and cannot ask, so it cuts to the `max_characters` setting (default 500);
`send` reads the instance's real limits (cached per instance for an hour) and, when the rendered
status is longer than this instance allows, cuts the body again to fit — the preview then shows a
little more than was posted, never less.

Images are uploaded first (`POST /api/v2/media`, up to the instance's `max_media_attachments`);
an upload answered 202 is still processing and is polled (`GET /api/v1/media/:id`, bounded) until
its `url` is set. The status carries an `Idempotency-Key` header, the same on every attempt:
Mastodon remembers it for about an hour and answers a repeat with the status it already made, so
a send whose outcome is unknown can safely be tried again. An upload that is repeated only leaves
an unattached file, which Mastodon removes by itself.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from . import markup, templating
from .base import Channel, Field, Limits, Message, Post, Receipt
from .errors import ChannelError, OutcomeUnknown, Permanent, RateLimited, Retryable
from .http import load_image, request, retry_after_seconds
from .text import MASTODON_URL_LENGTH, count, cut

DEFAULT_LIMITS = {"max_characters": 500, "max_media_attachments": 4,
                  "characters_reserved_per_url": MASTODON_URL_LENGTH, "image_size_limit": 16 * 1024 * 1024}
VISIBILITIES = ("public", "unlisted", "private")
INSTANCE_CACHE_SECONDS = 3600.0
BODY = "\x00BODY\x00"  # where the body goes in the status, for cutting it again in send

_instances: dict[str, tuple[float, dict]] = {}  # base URL -> (monotonic expiry, limits)
_instances_lock = threading.Lock()


def hashtag(tag: str) -> str:
    """A tag as Mastodon recognises it: letters, digits and underscores only."""
    return re.sub(r"\W+", "_", tag.lstrip("#")).strip("_")


def fit(frame: str, body: str, limit: int, url_length: int = MASTODON_URL_LENGTH) -> str:
    """`frame` with BODY replaced by as much of `body` as fits in `limit` Mastodon characters."""
    def size(text: str) -> int:
        return count(text, "mastodon", url_length=url_length)

    whole = frame.replace(BODY, body)
    if size(whole) <= limit:
        return whole
    room = limit - size(frame.replace(BODY, ""))
    while room > 0:
        text = frame.replace(BODY, cut(body, room, "mastodon"))
        if size(text) <= limit:
            return text
        room -= max(1, size(text) - limit)  # a URL cut in half counts differently: shrink and retry
    # not even the frame fits (an enormous title): the frame alone, cut
    return cut(re.sub(r"\n{3,}", "\n\n", frame.replace(BODY, "")), limit, "mastodon")


def seconds_until(iso: str | None) -> float | None:
    """X-RateLimit-Reset is an ISO 8601 time."""
    if not iso:
        return None
    try:
        when = datetime.fromisoformat(iso.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Mastodon(Channel):
    type = "mastodon"
    label = _l("Mastodon")
    idempotent = True
    fields = (
        Field("base_url", _l("Instance URL"), kind="url", help=_l("e.g. https://mastodon.social")),
        Field("access_token", _l("Access token"), secret=True,
              help=_l("From Preferences → Development; scopes write:statuses and write:media")),
        Field("visibility", _l("Visibility"), required=False, default="public",
              help=_l("public, unlisted or private")),
        Field("language", _l("Language (ISO 639-1, e.g. zh)"), required=False),
        Field("max_characters", _l("Character limit"), required=False, kind="integer", default=500,
              help=_l("The instance's limit, for the preview; sending checks the instance itself")),
        Field("timeout", _l("Timeout (seconds)"), required=False, kind="integer", default=10),
    )
    limits = Limits(max_length=500, length_unit="mastodon", markup="plain", rate_limit="300/5minute")
    default_timeout = 10.0
    media_poll_seconds = 1.0  # between checks of a media file still processing
    media_wait_seconds = 30.0  # at most, for all of a post's files together

    @classmethod
    def validate_config(cls, config: dict) -> dict[str, str]:
        errors = super().validate_config(config)
        if config.get("visibility") not in (None, "", *VISIBILITIES):
            errors["visibility"] = _("Choose one of: %(choices)s", choices=", ".join(VISIBILITIES))
        return errors

    # --- render ---------------------------------------------------------------------------------

    def _limit(self) -> int:
        try:
            return int(self.config.get("max_characters") or self.limits.max_length)
        except (TypeError, ValueError):
            return self.limits.max_length

    def render(self, post: Post) -> Message:
        labels = templating.words(post)
        tags = [hashtag(t) for t in (post.brand or {}).get("hashtags") or []]
        frame = templating.render(self.type, post, "txt", body=BODY, labels=labels,
                                  hashtags=" ".join("#" + t for t in tags if t))
        frame = re.sub(r"\n{3,}", "\n\n", frame)
        body = markup.plain(post.body)
        limit = self._limit()
        status = fit(frame, body, limit)
        payload = {"status": status, "visibility": self.config.get("visibility") or "public"}
        if self.config.get("language"):
            payload["language"] = self.config["language"]
        return Message(payload=payload, preview=status, length=count(status, self.limits.length_unit),
                       meta={"frame": frame, "body": body, "limit": limit, "images": list(post.images),
                             "image_files": list(post.image_files)})

    # --- send -----------------------------------------------------------------------------------

    def max_send_seconds(self) -> float:
        # the instance, then per image a download and an upload, then the status; plus processing
        return self.timeout * (2 + 2 * DEFAULT_LIMITS["max_media_attachments"] + 1) + self.media_wait_seconds

    @property
    def base(self) -> str:
        return self.config["base_url"].rstrip("/")

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config['access_token']}"}

    def instance_limits(self) -> dict:
        """The instance's limits, from cache or GET /api/v2/instance; the defaults when it will not say."""
        now = time.monotonic()
        with _instances_lock:
            cached = _instances.get(self.base)
            if cached and cached[0] > now:
                return cached[1]
        try:
            resp = request(self.session, "GET", f"{self.base}/api/v2/instance", timeout=self.timeout)
        except OutcomeUnknown as exc:  # a GET posts nothing
            raise Retryable(f"the instance did not answer: {exc.message}", code=exc.code) from exc
        if resp.status_code >= 500:
            raise Retryable(self._error_text(resp), code=resp.status_code)
        config = self._json(resp).get("configuration") if resp.status_code == 200 else None
        if not isinstance(config, dict):
            return dict(DEFAULT_LIMITS)  # an older or unusual server: assume the defaults, ask again next time
        statuses = config.get("statuses") or {}
        media = config.get("media_attachments") or {}
        limits = dict(DEFAULT_LIMITS)
        for key, source in (("max_characters", statuses), ("max_media_attachments", statuses),
                            ("characters_reserved_per_url", statuses), ("image_size_limit", media)):
            if isinstance(source.get(key), int) and source[key] > 0:
                limits[key] = source[key]
        with _instances_lock:
            _instances[self.base] = (now + INSTANCE_CACHE_SECONDS, limits)
        return limits

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        limits = self.instance_limits()
        payload = dict(message.payload)
        url_length = limits["characters_reserved_per_url"]
        if count(payload["status"], "mastodon", url_length=url_length) > limits["max_characters"]:
            frame, body = message.meta.get("frame"), message.meta.get("body")
            if frame and body is not None:
                payload["status"] = fit(frame, body, limits["max_characters"], url_length)
            else:
                payload["status"] = cut(payload["status"], limits["max_characters"], "mastodon")
        images = (message.meta.get("images") or [])[: limits["max_media_attachments"]]
        if images:
            payload["media_ids"] = self._upload(message, images, limits)
        headers = {**self._auth(), "Idempotency-Key": idempotency_key}
        resp = request(self.session, "POST", f"{self.base}/api/v1/statuses", json=payload, headers=headers,
                       timeout=self.timeout)
        if resp.status_code >= 300:
            raise self._error(resp)
        try:
            status = resp.json()
        except ValueError:
            status = None
        if not isinstance(status, dict) or not status.get("id"):
            raise OutcomeUnknown("the instance answered without a status", code="bad_answer")
        raw = {k: status.get(k) for k in ("id", "url", "uri", "created_at", "visibility", "language")}
        raw["media_ids"] = payload.get("media_ids", [])
        return Receipt(remote_id=str(status["id"]), url=status.get("url") or status.get("uri"), raw=raw)

    # --- media ----------------------------------------------------------------------------------

    def _upload(self, message: Message, images: list[str], limits: dict) -> list[str]:
        holder = Post(title="", body="", images=images, image_files=message.meta.get("image_files") or [])
        deadline = time.monotonic() + self.media_wait_seconds
        ids: list[str] = []
        for index in range(len(images)):
            image = load_image(self.session, holder, index, timeout=self.timeout, max_bytes=limits["image_size_limit"])
            files = {"file": (image.filename, image.data, image.content_type)}
            resp = self._call("POST", "/api/v2/media", files=files)
            if resp.status_code not in (200, 202):
                raise self._error(resp)
            attachment = self._json(resp)
            media_id = str(attachment.get("id") or "")
            if not media_id:
                raise Retryable("the instance accepted a file but gave no id", code="bad_answer")
            while resp.status_code in (202, 206) or not attachment.get("url"):
                if time.monotonic() >= deadline:
                    raise Retryable(f"media {media_id} was still processing after {self.media_wait_seconds:g} s",
                                    code="media_processing")
                time.sleep(self.media_poll_seconds)
                resp = self._call("GET", f"/api/v1/media/{media_id}")
                if resp.status_code not in (200, 206):
                    raise self._error(resp)
                attachment = self._json(resp) if resp.status_code == 200 else {}
            ids.append(media_id)
        return ids

    def _call(self, method: str, path: str, **kwargs):
        """A media call: repeating it posts nothing, so an unknown outcome is simply retryable."""
        try:
            return request(self.session, method, f"{self.base}{path}", headers=self._auth(),
                           timeout=self.timeout, **kwargs)
        except OutcomeUnknown as exc:
            raise Retryable(exc.message, code=exc.code) from exc

    @staticmethod
    def _json(resp) -> dict:
        try:
            data = resp.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    # --- answers --------------------------------------------------------------------------------

    @classmethod
    def _error_text(cls, resp) -> str:
        text = cls._json(resp).get("error")
        return str(text) if text else f"HTTP {resp.status_code} {resp.reason or ''}".strip()

    @classmethod
    def _error(cls, resp) -> ChannelError:
        status, text = resp.status_code, cls._error_text(resp)
        if status == 429:
            wait = seconds_until(resp.headers.get("X-RateLimit-Reset"))
            if wait is None:
                wait = retry_after_seconds(resp.headers.get("Retry-After"))
            return RateLimited(text, code=status, retry_after=wait)
        if status >= 500 or status == 408:
            return Retryable(text, code=status)
        if status == 422 and "finished processing" in text:  # media not ready yet: later it will be
            return Retryable(text, code=status)
        return Permanent(text, code=status)


ADAPTER = Mastodon
