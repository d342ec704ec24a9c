"""A Feishu custom bot as a sender sees it. The hook token is the path; with signature
verification on, "timestamp" (seconds, within an hour) and "sign" (base64 of HMAC-SHA256 keyed by
timestamp + "\\n" + secret over an empty message) must be in the JSON body, else code 19021; a
keyword check answers 19024; a malformed body 9499. Errors carry their code in the JSON body, with
HTTP 200 or 400 depending on the error, as the real service does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from tests.doubles import Answer, Double, Recorded

TOKEN = "0e6c1c4c-7f2b-4b8a-9f3e-secret-hook-token"
SECRET = "gQ8sEcReTsIgNiNgKeY"
TAGS = {"text", "a", "at", "img", "media", "emotion"}


def success(**data) -> Answer:
    return Answer(200, {"code": 0, "data": data, "msg": "success"})


def failure(code: int, msg: str, status: int = 200) -> Answer:
    return Answer(status, {"code": code, "data": {}, "msg": msg})


def expected_sign(timestamp: str, secret: str) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


class FeishuDouble(Double):
    def __init__(self, token: str = TOKEN, secret: str | None = SECRET, keyword: str | None = None, **kwargs):
        super().__init__(default=kwargs.pop("default", success()), **kwargs)
        self.token, self.secret, self.keyword = token, secret, keyword
        self.clock_offset = 0.0  # seconds the double's clock is ahead of the client's

    def handle(self, rec: Recorded) -> Answer:
        with self.lock:
            self.requests.append(rec)
        if rec.path.split("?")[0] != f"/open-apis/bot/v2/hook/{self.token}":
            return failure(19001, "param invalid: incoming webhook access token invalid")
        if len(rec.body) > 20 * 1024:
            return failure(9499, "Bad Request", 400)
        try:
            payload = json.loads(rec.body)
        except ValueError:
            return failure(9499, "Bad Request", 400)
        if not isinstance(payload, dict) or not self._shape_ok(payload):
            return failure(9499, "Bad Request", 400)
        if self.secret is not None and not self._signed(payload):
            return failure(19021, "sign match fail or timestamp is not within one hour from current time")
        if self.keyword and self.keyword not in json.dumps(payload.get("content"), ensure_ascii=False):
            return failure(19024, "Key Words Not Found")
        return self.next_answer()

    def _signed(self, payload: dict) -> bool:
        timestamp, signature = payload.get("timestamp"), payload.get("sign")
        try:
            seconds = int(str(timestamp))
        except ValueError:
            return False
        if abs(time.time() + self.clock_offset - seconds) > 3600:
            return False
        return isinstance(signature, str) and hmac.compare_digest(signature, expected_sign(str(timestamp), self.secret))

    @staticmethod
    def _shape_ok(payload: dict) -> bool:
        if payload.get("msg_type") == "text":
            return isinstance((payload.get("content") or {}).get("text"), str)
        if payload.get("msg_type") != "post":
            return False
        post = (payload.get("content") or {}).get("post")
        if not isinstance(post, dict) or not post:
            return False
        for body in post.values():
            if not isinstance(body, dict) or not isinstance(body.get("content"), list):
                return False
            for line in body["content"]:
                if not isinstance(line, list):
                    return False
                for tag in line:
                    if not isinstance(tag, dict) or tag.get("tag") not in TAGS:
                        return False
                    if tag["tag"] == "text" and not isinstance(tag.get("text"), str):
                        return False
                    if tag["tag"] == "a" and not (isinstance(tag.get("text"), str) and tag.get("href")):
                        return False
                    if tag["tag"] == "img" and not tag.get("image_key"):
                        return False
                    style = tag.get("style", [])
                    if not set(style) <= {"bold", "italic", "underline", "lineThrough"}:
                        return False
        return True
