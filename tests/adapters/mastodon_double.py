"""A stand-in for a Mastodon instance: the instance document, media uploads (with processing),
statuses with Bearer tokens, Idempotency-Key (a repeat within an hour returns the SAME status and
posts nothing) and the length check, answering with Mastodon's own error bodies."""

from __future__ import annotations

import json
import re
import time
from io import BytesIO
from urllib.parse import parse_qsl

from PIL import Image

from tests.adapters.telegram_double import multipart
from tests.doubles import Answer, Double, Recorded

# Like Mastodon's (twitter-text) URL match: no spaces, no unbalanced parentheses, no trailing punctuation
URL = re.compile(r"https?://[^\s()<>（）]+(?<![.,;:!?。，])")
INVALID_TOKEN = Answer(401, {"error": "The access token is invalid"})


class MastodonDouble(Double):
    def __init__(self, token: str, *, max_characters: int = 500, max_media: int = 4, url_length: int = 23,
                 processing_polls: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.token = token
        self.max_characters = max_characters
        self.max_media = max_media
        self.url_length = url_length
        self.processing_polls = processing_polls  # GETs answered 206 before a 202 upload is ready
        self.media: dict[str, dict] = {}  # id -> {"polls_left", "bytes", "description"}
        self.statuses: list[dict] = []  # statuses really created
        self.keys: dict[str, tuple[float, dict]] = {}  # Idempotency-Key -> (time, status)
        self.instance_requests = 0
        self.next_id = 110000000000000000

    def _id(self) -> str:
        with self.lock:
            self.next_id += 1
            return str(self.next_id)

    def handle(self, rec: Recorded) -> Answer:
        with self.lock:
            self.requests.append(rec)
        path = rec.path.split("?")[0]
        if rec.method == "GET" and path == "/api/v2/instance":
            self.instance_requests += 1
            return Answer(200, {"domain": "m.example", "title": "Test instance", "configuration": {
                "urls": {"streaming": "wss://m.example"},
                "statuses": {"max_characters": self.max_characters, "max_media_attachments": self.max_media,
                             "characters_reserved_per_url": self.url_length},
                "media_attachments": {"image_size_limit": 16777216, "video_size_limit": 103809024}}})
        if rec.headers.get("Authorization") != f"Bearer {self.token}":
            return INVALID_TOKEN
        if rec.method == "POST" and path == "/api/v2/media":
            return self._upload(rec)
        match = re.fullmatch(r"/api/v1/media/(\w+)", path)
        if rec.method == "GET" and match:
            return self._media(match.group(1))
        if rec.method == "POST" and path == "/api/v1/statuses":
            return self._status(rec)
        return Answer(404, {"error": "Record not found"})

    def _attachment(self, media_id: str, ready: bool) -> dict:
        return {"id": media_id, "type": "image", "description": self.media[media_id]["description"],
                "url": f"https://files.m.example/original/{media_id}.png" if ready else None,
                "preview_url": f"https://files.m.example/small/{media_id}.png"}

    def _upload(self, rec: Recorded) -> Answer:
        if self.script:
            return self.next_answer()
        fields, files = multipart(rec)
        data = files.get("file")
        try:
            Image.open(BytesIO(data or b"")).verify()
        except Exception:
            return Answer(422, {"error": "Validation failed: File content type is invalid, File is invalid"})
        media_id = self._id()
        self.media[media_id] = {"polls_left": self.processing_polls, "bytes": data,
                                "description": fields.get("description")}
        if self.processing_polls:
            return Answer(202, self._attachment(media_id, ready=False))
        return Answer(200, self._attachment(media_id, ready=True))

    def _media(self, media_id: str) -> Answer:
        item = self.media.get(media_id)
        if item is None:
            return Answer(404, {"error": "Record not found"})
        if item["polls_left"] > 0:
            item["polls_left"] -= 1
            return Answer(206, "")
        return Answer(200, self._attachment(media_id, ready=True))

    def length(self, text: str) -> int:
        return len(URL.sub("", text)) + self.url_length * len(URL.findall(text))

    def _status(self, rec: Recorded) -> Answer:
        key = rec.headers.get("Idempotency-Key")
        now = time.time()
        if key and key in self.keys and now - self.keys[key][0] < 3600:
            return Answer(200, self.keys[key][1])  # the same status again; nothing new is posted
        if self.script:
            return self.next_answer()
        if rec.headers.get("Content-Type", "").startswith("application/json"):
            fields = rec.json()
        else:
            pairs = parse_qsl(rec.body.decode(), keep_blank_values=True)
            fields = {k: v for k, v in pairs if k != "media_ids[]"}
            fields["media_ids"] = [v for k, v in pairs if k == "media_ids[]"]
        text = fields.get("status") or ""
        media_ids = [str(m) for m in fields.get("media_ids") or []]
        if not text.strip() and not media_ids:
            return Answer(422, {"error": "Validation failed: Text can't be blank"})
        if self.length(text) > self.max_characters:
            return Answer(422, {"error": f"Validation failed: Text character limit of {self.max_characters} exceeded"})
        if len(media_ids) > self.max_media:
            return Answer(422, {"error": "Validation failed: Media attachments too many"})
        for media_id in media_ids:
            if media_id not in self.media:
                return Answer(404, {"error": "Record not found"})
            if self.media[media_id]["polls_left"] > 0:
                return Answer(422, {"error": "Cannot attach files that have not finished processing. "
                                             "Try again in a moment!"})
        visibility = fields.get("visibility") or "public"
        if visibility not in ("public", "unlisted", "private", "direct"):
            return Answer(422, {"error": "Validation failed: Visibility is not included in the list"})
        status_id = self._id()
        status = {"id": status_id, "created_at": "2026-11-23T08:00:00.000Z", "visibility": visibility,
                  "language": fields.get("language"), "uri": f"https://m.example/users/club/statuses/{status_id}",
                  "url": f"https://m.example/@club/{status_id}", "content": "<p>" + text + "</p>",
                  "text": text, "media_attachments": [self._attachment(m, True) for m in media_ids],
                  "account": {"id": "1", "username": "club", "acct": "club"}}
        self.statuses.append(status)
        if key:
            self.keys[key] = (now, status)
        return Answer(200, json.dumps(status), {"Content-Type": "application/json; charset=utf-8"})
