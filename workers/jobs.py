"""RQ jobs. They take ids, reload state from the database, and decide nothing on stale data."""

from __future__ import annotations

import threading

import requests
from flask import Flask, current_app, has_app_context

_local = threading.local()
_app: Flask | None = None


def _worker_app() -> Flask:
    global _app
    if _app is None:
        from publisher import create_app

        _app = create_app()
    return _app


def http_session() -> requests.Session:
    """One connection pool per worker thread, reused by every send."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
        _local.session.headers["User-Agent"] = "publisher/0.1"
    return _local.session


def deliver(delivery_id: int, attempt: int) -> str:
    from publisher import dispatch

    app = current_app._get_current_object() if has_app_context() else _worker_app()
    # A fresh app context per job gives a fresh database session, removed when the job ends.
    with app.app_context():
        return dispatch.run(delivery_id, attempt, session=http_session())
