"""RQ jobs. They take ids, reload state from the database, and decide nothing on stale data."""

from __future__ import annotations

import threading

from flask import Flask, current_app, has_app_context

_app: Flask | None = None
_pool_lock = threading.Lock()


def _worker_app() -> Flask:
    global _app
    if _app is None:
        from publisher import create_app

        _app = create_app()
    return _app


def deliver(delivery_id: int, attempt: int) -> str:
    """One delivery (jobs of this kind were queued by earlier versions; the scheduler now queues
    `deliver_batch`)."""
    from publisher import dispatch

    app = current_app._get_current_object() if has_app_context() else _worker_app()
    # A fresh app context per job gives a fresh database session, removed when the job ends.
    with app.app_context():
        return dispatch.run(delivery_id, attempt)


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
    """Load and render a batch of claimed deliveries (each channel's in order) and hand them to this
    worker's send pool. Returns once they are taken; the pool sends them (see workers/pool.py)."""
    from publisher import dispatch, sending

    pool = send_pool()
    pool.wait_for_room()
    pairs = [(int(i), int(a)) for i, a in pairs]
    with pool.app.app_context():
        dispatch.extend_leases(pairs)
        sends = sending.prepare(pairs, session=pool.http, adapters=pool.adapters)
    pool.submit(sends)
    return len(sends)
