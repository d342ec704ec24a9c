"""RQ jobs. They take ids, reload state from the database, and decide nothing on stale data."""

from __future__ import annotations

import threading

import requests
from flask import Flask, current_app, has_app_context

_local = threading.local()
_app: Flask | None = None
_pool_lock = threading.Lock()


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


def send_pool():
    """This app's SendPool in this worker process, started with the first batch."""
    app = current_app._get_current_object() if has_app_context() else _worker_app()
    with _pool_lock:
        pool = app.extensions.get("send_pool")
        if pool is None:
            from .pool import SendPool

            pool = app.extensions["send_pool"] = SendPool(app, app.config["IN_FLIGHT"])
        return pool


def close_pool(app: Flask, *, finish: bool = False) -> None:
    """Stop this app's pool: after every delivery it holds is done (`finish`, for burst runs), or
    at once, giving back what has not started."""
    with _pool_lock:
        pool = app.extensions.pop("send_pool", None)
    if pool is not None:
        if finish:
            pool.wait_idle()
        pool.close()


def deliver_batch(pairs: list[tuple[int, int]]) -> int:
    """Hand a batch of claimed deliveries (each channel's in order) to this worker's send pool.
    Returns once they are taken; the pool sends them (see workers/pool.py)."""
    from collections import defaultdict

    from sqlalchemy import select

    from publisher import dispatch
    from publisher.extensions import db
    from publisher.models import Delivery

    pool = send_pool()
    with pool.app.app_context():
        pairs = [(int(i), int(a)) for i, a in pairs]
        channel_of = dict(db.session.execute(
            select(Delivery.id, Delivery.channel_id).where(Delivery.id.in_([i for i, _a in pairs]))
        ).all())
        dispatch.extend_leases(pairs)
    chains: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for i, a in pairs:  # the batch is in scheduled order; a channel's part of it stays so
        if i in channel_of:
            chains[channel_of[i]].append((i, a))
    pool.submit(chains)
    return len(pairs)
