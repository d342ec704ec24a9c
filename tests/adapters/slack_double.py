"""Slack's incoming webhook, as far as a sender can see it: the webhook path is the credential;
the body must be JSON with text or blocks; Block Kit limits are enforced; answers are plain-text
codes ("ok" on success)."""

from __future__ import annotations

import json

from tests.doubles import Answer, Double, Recorded

PATH = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"


def ok() -> Answer:
    return Answer(200, "ok", {"Content-Type": "text/html"})


def error(status: int, code: str, **headers: str) -> Answer:
    return Answer(status, code, {"Content-Type": "text/plain", **headers})


class SlackDouble(Double):
    def __init__(self, path: str = PATH, **kwargs):
        super().__init__(default=kwargs.pop("default", ok()), **kwargs)
        self.path = path

    def handle(self, rec: Recorded) -> Answer:
        with self.lock:
            self.requests.append(rec)
        if rec.method != "POST" or rec.path.split("?")[0] != self.path:
            return error(404, "no_service")
        try:
            payload = json.loads(rec.body)
        except ValueError:
            return error(400, "invalid_payload")
        if not isinstance(payload, dict):
            return error(400, "invalid_payload")
        if not payload.get("text") and not payload.get("blocks"):
            return error(400, "no_text")
        if not self._blocks_valid(payload.get("blocks") or []):
            return error(400, "invalid_blocks")
        return self.next_answer()

    @staticmethod
    def _blocks_valid(blocks) -> bool:
        if not isinstance(blocks, list) or len(blocks) > 50:
            return False
        for block in blocks:
            kind = block.get("type")
            if kind == "header":
                text = block.get("text") or {}
                if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 150:
                    return False
            elif kind == "section":
                text = block.get("text") or {}
                if text.get("type") not in ("mrkdwn", "plain_text") or not 0 < len(text.get("text", "")) <= 3000:
                    return False
            elif kind == "image":
                if not block.get("image_url") or not 0 < len(block.get("alt_text", "")) <= 2000:
                    return False
            else:
                return False
        return True
