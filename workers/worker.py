"""The worker process: an RQ worker on the deliveries queue, with the app loaded once."""

from __future__ import annotations

import logging

from flask import Flask
from rq import SimpleWorker

from .queues import delivery_queue, get_redis

log = logging.getLogger(__name__)


def run(app: Flask, *, burst: bool = False) -> None:
    # SimpleWorker runs jobs in this process: no fork per job, the app, its database pool and
    # the HTTP sessions stay warm. A worker that dies is covered by the delivery leases.
    from .jobs import close_pool

    # Each send commits twice; the calendar's cache needs to hear of them every so often, not each time.
    app.config.setdefault("CALENDAR_BUMP_EVERY", 0.2)
    with app.app_context():
        worker = SimpleWorker([delivery_queue()], connection=get_redis())
        try:
            worker.work(burst=burst, with_scheduler=False, logging_level="INFO")
        finally:
            # The sends in flight finish; what the pool holds but has not started goes back at once
            # (or, in a burst run, is sent first).
            close_pool(app, finish=burst)
