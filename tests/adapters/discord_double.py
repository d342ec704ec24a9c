"""A Discord webhook as a sender sees it: /api/webhooks/{id}/{token}; unknown id 404 10015, wrong
token 401 50027; the message checked against Discord's limits (400 50035 "Invalid Form Body",
50006 for an empty message); ?wait=true answers 200 with the message object, else 204."""

from __future__ import annotations

import json
import time

from tests.doubles import Answer, Double, Recorded

WEBHOOK_ID = "1180000000000000001"
TOKEN = "sEcReT-webhook-token_abcdefghijklmnopqrstuvwxyz0123456789"
CHANNEL_ID = "1170000000000000002"
GUILD_ID = "1160000000000000003"


def rate_limited(retry_after: float = 1.25, header: str = "2", is_global: bool = False) -> Answer:
    return Answer(429, {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global},
                  {"Retry-After": header, "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Reset-After": str(retry_after), "X-RateLimit-Scope": "shared"})


def invalid_form(errors: dict | None = None) -> Answer:
    return Answer(400, {"code": 50035, "errors": errors or {}, "message": "Invalid Form Body"})


def _too_long(value, limit: int) -> bool:
    return isinstance(value, str) and len(value) > limit


class DiscordDouble(Double):
    def __init__(self, *, with_guild: bool = False, **kwargs):
        super().__init__(default=kwargs.pop("default", Answer(200, {})), **kwargs)  # {}: the message object
        self.with_guild = with_guild
        self.sequence = 0

    def handle(self, rec: Recorded) -> Answer:
        with self.lock:
            self.requests.append(rec)
        path = rec.path.split("?")[0].rstrip("/").split("/")
        if path[:3] != ["", "api", "webhooks"] or len(path) != 5 or path[3] != WEBHOOK_ID:
            return Answer(404, {"message": "Unknown Webhook", "code": 10015})
        if path[4] != TOKEN:
            return Answer(401, {"message": "Invalid Webhook Token", "code": 50027})
        try:
            payload = json.loads(rec.body)
        except ValueError:
            return Answer(400, {"message": "Cannot send an empty message", "code": 50006})
        if isinstance(payload, dict) and not payload.get("content") and not payload.get("embeds"):
            return Answer(400, {"message": "Cannot send an empty message", "code": 50006})
        problem = self.check(payload)
        if problem:
            return invalid_form(problem)
        answer = self.next_answer()
        if answer.status != 200 or answer.body not in (b"", None, {}):
            return answer
        if rec.query.get("wait") != "true":
            return Answer(204, b"", answer.headers, answer.delay)
        with self.lock:
            self.sequence += 1
            number = self.sequence
        message = {"id": str(1190000000000000000 + number), "type": 0, "content": payload.get("content", ""),
                   "channel_id": rec.query.get("thread_id", CHANNEL_ID), "embeds": payload.get("embeds", []),
                   "author": {"id": WEBHOOK_ID, "username": "Publisher", "bot": True},
                   "webhook_id": WEBHOOK_ID, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
        if self.with_guild:
            message["guild_id"] = GUILD_ID
        return Answer(200, message, answer.headers, answer.delay)

    @staticmethod
    def check(payload) -> dict | None:
        if not isinstance(payload, dict):
            return {"_errors": [{"code": "DICT_TYPE_CONVERT"}]}
        content, embeds = payload.get("content") or "", payload.get("embeds") or []
        if _too_long(content, 2000):
            return {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}}
        if not isinstance(embeds, list) or len(embeds) > 10:
            return {"embeds": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}}
        total = 0
        for i, embed in enumerate(embeds):
            fields = embed.get("fields") or []
            if (_too_long(embed.get("title"), 256) or _too_long(embed.get("description"), 4096) or len(fields) > 25
                    or _too_long((embed.get("footer") or {}).get("text"), 2048)
                    or any(_too_long(f.get("name"), 256) or _too_long(f.get("value"), 1024) for f in fields)
                    or any(not f.get("name") or not f.get("value") for f in fields)):
                return {"embeds": {str(i): {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}}}
            if "color" in embed and not (isinstance(embed["color"], int) and 0 <= embed["color"] <= 0xFFFFFF):
                return {"embeds": {str(i): {"color": {"_errors": [{"code": "NUMBER_TYPE_MAX"}]}}}}
            total += sum(len(embed.get(k) or "") for k in ("title", "description"))
            total += len((embed.get("footer") or {}).get("text") or "")
            total += len((embed.get("author") or {}).get("name") or "")
            total += sum(len(f.get("name") or "") + len(f.get("value") or "") for f in fields)
        if total > 6000:
            return {"embeds": {"_errors": [{"code": "MAX_EMBED_SIZE_EXCEEDED"}]}}
        return None
