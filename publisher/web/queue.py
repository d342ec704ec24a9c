"""Queue health (admins): is the delivery machinery keeping up? The page, the part of it that
refreshes itself, and the same figures as JSON for GET /api/queue (routed in api.py)."""

from __future__ import annotations

from flask import Blueprint, render_template

from ..models import Role
from ..queue_health import as_json, snapshot
from ..security import role_required
from .api_common import require

bp = Blueprint("queue", __name__)


def _snapshot() -> dict:
    from workers.queues import get_redis

    return snapshot(get_redis("probe"))  # short timeouts: a Redis outage answers in seconds


@bp.get("/settings/queue")
@role_required(Role.ADMIN)
def index():
    return render_template("web/queue/index.html", health=_snapshot())


@bp.get("/settings/queue/panel")
@role_required(Role.ADMIN)
def panel():
    """The figures alone; the page fetches them every few seconds."""
    return render_template("web/queue/_panel.html", health=_snapshot()), 200, {"Cache-Control": "no-store"}


def api_queue():
    require(Role.ADMIN)
    return as_json(_snapshot())
