"""The built-in demo receiver: our signed webhook, received inside the app.

`publisher demo` points two webhook channels here, so a newcomer sees posts arrive at the second
they were due without configuring any real service. The receiver does what a careful real
receiver does: it checks the signature and the timestamp, and drops a repeat of a key it has seen.
"""

from __future__ import annotations

import hmac
import json
import re
import time

from flask import Blueprint, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from channels.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

from ..demo import demo_secret
from ..extensions import csrf, db, limiter
from ..markup import to_html
from ..models import Delivery, DemoReceipt

bp = Blueprint("demo", __name__)

TOLERANCE_SECONDS = 300
SHOWN = 50
INBOX = re.compile(r"[a-z0-9][a-z0-9_-]{0,79}")


def _refuse(status: int, message: str):
    return jsonify(error=message), status


def _signature_problem(raw: bytes) -> str | None:
    """Why the request is not from us, or None if it is."""
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not (timestamp.isascii() and timestamp.isdigit()) or not signature:
        return _("The %(ts)s and %(sig)s headers are required.", ts=TIMESTAMP_HEADER, sig=SIGNATURE_HEADER)
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return _("The timestamp is more than five minutes away from this server's clock; the request is refused "
                 "so that an old request cannot be replayed.")
    # Bytes: compare_digest refuses non-ASCII text, and a header may hold any byte.
    if not hmac.compare_digest(sign(demo_secret(), timestamp, raw).encode(), signature.encode("latin-1", "replace")):
        return _("The signature does not match: the channel's secret is not this receiver's secret.")
    return None


@bp.post("/demo/receiver/<inbox>")
@csrf.exempt
@limiter.limit("600 per minute")
def receive(inbox: str):
    if not INBOX.fullmatch(inbox):
        return _refuse(404, _("No such inbox: use lowercase letters, digits, - and _."))
    raw = request.get_data(cache=True)
    problem = _signature_problem(raw)
    if problem:
        return _refuse(401, problem)
    if not request.is_json:
        return _refuse(415, _("The body must be JSON (Content-Type: application/json)."))
    try:
        payload = json.loads(raw)
    except ValueError:
        return _refuse(400, _("The body is not valid JSON."))
    if not isinstance(payload, dict):
        return _refuse(400, _("The body must be a JSON object."))
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 64:
        return _refuse(400, _("An Idempotency-Key header of at most 64 characters is required."))

    receipt_id = _repeat(inbox, key)
    if receipt_id is None:
        title = payload.get("title")
        receipt = DemoReceipt(inbox=inbox, idempotency_key=key, title=str(title or "")[:300],
                              payload=raw.decode("utf-8", errors="replace"))
        db.session.add(receipt)
        try:
            db.session.commit()
            receipt_id = receipt.id
        except IntegrityError:  # the same key arrived twice at once; the other request stored it
            db.session.rollback()
            receipt_id = _repeat(inbox, key)
    return jsonify(id=receipt_id)


def _repeat(inbox: str, key: str) -> int | None:
    """Count a repeat of a key already received; its receipt id, or None if the key is new."""
    receipt_id = db.session.scalar(
        select(DemoReceipt.id).where(DemoReceipt.inbox == inbox, DemoReceipt.idempotency_key == key)
    )
    if receipt_id is not None:
        db.session.execute(update(DemoReceipt).where(DemoReceipt.id == receipt_id)
                           .values(repeats=DemoReceipt.repeats + 1))
        db.session.commit()
    return receipt_id


def _received() -> list[dict]:
    rows = db.session.execute(
        select(DemoReceipt, Delivery.due_at)
        .outerjoin(Delivery, Delivery.idempotency_key == DemoReceipt.idempotency_key)
        .order_by(DemoReceipt.received_at.desc(), DemoReceipt.id.desc())
        .limit(SHOWN)
    ).all()
    shown = []
    for receipt, due_at in rows:
        try:
            body = json.loads(receipt.payload).get("body") or ""
        except (ValueError, AttributeError):
            body = ""
        lag = (receipt.received_at - due_at).total_seconds() if due_at else None
        shown.append({"receipt": receipt, "due_at": due_at, "lag": lag, "body": to_html(str(body))})
    return shown


@bp.get("/demo/receiver")
@login_required
def page():
    url = current_app.config["BASE_URL"].rstrip("/")
    return render_template("web/demo/receiver.html", received=_received(), receiver_url=f"{url}/demo/receiver/")


@bp.get("/demo/received")
@login_required
def fragment():
    """The list alone; the receiver page fetches it every second and swaps it in."""
    return render_template("web/demo/_received.html", received=_received())
