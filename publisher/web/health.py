"""/healthz: is the database reachable, is Redis reachable. 503 when either is not."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from workers.queues import get_redis

from ..extensions import db, limiter

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@limiter.exempt
def healthz():
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not healthy"; say which kind
        db.session.rollback()
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        get_redis("probe").ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if healthy else "unavailable", checks=checks), 200 if healthy else 503
