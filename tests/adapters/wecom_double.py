"""A WeCom group robot on 127.0.0.1: checks the key and the body the way qyapi.weixin.qq.com does and
answers like it (HTTP 200 with errcode/errmsg), or as scripted."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from tests.doubles import Answer, Double, Recorded

HINT = "hint: [1700000000123456789012345], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e="


def error(code: int, text: str) -> Answer:
    return Answer(200, {"errcode": code, "errmsg": f"{text}, {HINT}{code}"})


OK = Answer(200, {"errcode": 0, "errmsg": "ok"})
RATE_LIMITED = error(45009, "api freq out of limit")
BUSY = Answer(200, {"errcode": -1, "errmsg": "system busy"})


class WeComDouble(Double):
    def __init__(self, key: str, **kwargs):
        super().__init__(default=OK, **kwargs)
        self.key = key
        self.delivered: list[dict] = []  # bodies the robot accepted, in order

    def check(self, rec: Recorded) -> Answer | None:
        """What the real robot refuses before looking at the script."""
        if rec.method != "POST" or rec.path.split("?")[0] != "/cgi-bin/webhook/send":
            return Answer(404, "")
        if rec.query.get("key") != self.key:
            return error(93000, "invalid webhook url")
        try:
            body = json.loads(rec.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return error(40016, "invalid json")  # unknown code for bad JSON; only `errcode != 0` matters
        kind = body.get("msgtype")
        if kind == "markdown":
            content = (body.get("markdown") or {}).get("content")
            if not content:
                return error(41009, "missing content")
            if len(content.encode("utf-8")) > 4096:
                return error(40058, "markdown.content exceed max length 4096. invalid Request Parameter")
        elif kind == "text":
            content = (body.get("text") or {}).get("content")
            if not content:
                return error(41009, "missing content")
            if len(content.encode("utf-8")) > 2048:
                return error(40058, "text.content exceed max length 2048. invalid Request Parameter")
        elif kind == "image":
            image = body.get("image") or {}
            try:
                data = base64.b64decode(image.get("base64") or "", validate=True)
            except (binascii.Error, ValueError):
                return error(40009, "invalid image size")
            if not data or len(data) > 2 * 1024 * 1024:
                return error(40009, "invalid image size")
            if hashlib.md5(data, usedforsecurity=False).hexdigest() != image.get("md5"):
                return error(301019, "media md5 not match")
            if not (data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"):
                return error(40004, "invalid media type")
        elif kind == "news":
            articles = (body.get("news") or {}).get("articles")
            if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
                return error(40058, "news.articles exceed max count 8")
            if any(not a.get("title") or not a.get("url") for a in articles):
                return error(41009, "missing title or url")
        else:
            return error(40008, "invalid message type")
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
