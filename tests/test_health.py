"""/healthz: 200 when the database and Redis answer, 503 (quickly) when either does not."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A server that accepts connections and never answers: a stuck Redis."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def get_health(app) -> tuple[int, dict, float]:
    started = time.monotonic()
    resp = app.test_client().get("/healthz")
    return resp.status_code, resp.get_json(), time.monotonic() - started


def test_healthz_ok(app):
    status, body, _ = get_health(app)
    assert status == 200
    assert body == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_healthz_redis_refused(app, make_app):
    status, body, took = get_health(make_app(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"))
    assert status == 503 and body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error")
    assert took < 3


@pytest.mark.slow
def test_healthz_does_not_hang_on_a_stuck_redis(app, make_app, silent_port):
    status, body, took = get_health(make_app(REDIS_URL=f"redis://127.0.0.1:{silent_port}/0"))
    print(f"\n/healthz with a stuck Redis answered in {took:.2f}s")
    assert status == 503 and body["checks"]["redis"].startswith("error")
    assert took < 3


def test_healthz_postgresql_unreachable(app, make_app):
    status, body, took = get_health(make_app(DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/x"))
    assert status == 503 and body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("error") and body["checks"]["redis"] == "ok"
    assert took < 3


def test_healthz_sqlite_unreadable(app, make_app, tmp_path):
    missing = tmp_path / "no such folder" / "publisher.db"
    status, body, _ = get_health(make_app(DATABASE_URL=f"sqlite:///{missing}"))
    assert status == 503 and body["checks"]["database"].startswith("error")
