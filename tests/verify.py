"""An independent verifier of the webhook signature, written from the header definition
(docs/channels.md), not from the adapter's code."""

from __future__ import annotations

import hashlib
import hmac
import time


def verify_webhook(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    lower = {k.lower(): v for k, v in headers.items()}
    ts = lower.get("x-publisher-timestamp", "")
    sig = lower.get("x-publisher-signature", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > tolerance or not sig.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, sig.removeprefix("sha256="))
