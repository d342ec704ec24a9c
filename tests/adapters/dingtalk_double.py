"""A DingTalk custom robot on 127.0.0.1: checks the access token, the signature (when the robot is
secured by 加签), keywords (when it is secured by keywords) and the body, and answers like
oapi.dingtalk.com (HTTP 200 with errcode/errmsg), or as scripted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from tests.doubles import Answer, Double, Recorded

MORE = "more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"


def error(code: int, text: str) -> Answer:
    return Answer(200, {"errcode": code, "errmsg": text})


OK = Answer(200, {"errcode": 0, "errmsg": "ok"})
TOO_FAST = Answer(200, {"status": 1111, "wait": 5, "source": "x5", "punish": "deny",
                        "errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"})
BUSY = error(-1, "系统繁忙")
SHAPES = {"text": ("content",), "markdown": ("title", "text"), "link": ("title", "text", "messageUrl"),
          "actionCard": ("title", "text"), "feedCard": ("links",)}


class DingTalkDouble(Double):
    def __init__(self, access_token: str, secret: str | None = None, keywords: tuple[str, ...] = (), **kwargs):
        super().__init__(default=OK, **kwargs)
        self.access_token = access_token
        self.secret = secret
        self.keywords = keywords
        self.delivered: list[dict] = []

    def expected_sign(self, timestamp: str) -> str:
        digest = hmac.new(self.secret.encode(), f"{timestamp}\n{self.secret}".encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def check(self, rec: Recorded) -> Answer | None:
        if rec.method != "POST" or rec.path.split("?")[0] != "/robot/send":
            return Answer(404, "")
        query = rec.query  # percent-decoded once, as the server does
        if query.get("access_token") != self.access_token:
            return error(300001, "token is not exist")
        if self.secret:
            timestamp = query.get("timestamp", "")
            if not timestamp.isdigit() or abs(int(timestamp) - time.time() * 1000) > 3600 * 1000:
                return error(310000, f"invalid timestamp, {MORE}")
            if not hmac.compare_digest(query.get("sign", ""), self.expected_sign(timestamp)):
                return error(310000, f"sign not match, {MORE}")
        if len(rec.body) > 20000:
            return error(460101, "message too long, exceed 20000 bytes")
        try:
            body = json.loads(rec.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return error(400105, "不支持的消息类型")
        kind = body.get("msgtype")
        if kind not in SHAPES or not isinstance(body.get(kind), dict):
            return error(400105, "不支持的消息类型")
        if any(not body[kind].get(key) for key in SHAPES[kind]):
            return error(400105, f"{kind} 缺少必填字段")
        if kind == "actionCard" and not (body[kind].get("singleURL") or body[kind].get("btns")):
            return error(400105, "actionCard 缺少按钮")
        if self.keywords and not any(k in json.dumps(body[kind], ensure_ascii=False) for k in self.keywords):
            return error(310000, f"keywords not in content, {MORE}")
        return None

    def handle(self, rec: Recorded) -> Answer:
        with self.lock:
            self.requests.append(rec)
        refused = self.check(rec)
        if refused is not None:
            return refused
        answer = self.next_answer()
        if answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("errcode") == 0:
            with self.lock:
                self.delivered.append(rec.json())
        return answer
