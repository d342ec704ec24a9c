"""The worker process: an RQ worker on the deliveries queue, with the app loaded once."""

from __future__ import annotations

import logging
import signal
import threading
import time

import redis
from flask import Flask
from rq import SimpleWorker

from .queues import delivery_queue, get_redis

log = logging.getLogger(__name__)
REDIS_WAIT = 5.0  # seconds at most between RQ's attempts to reach Redis again (its default grows to 60)


class Worker(SimpleWorker):
    max_connection_wait_time = REDIS_WAIT


def run(app: Flask, *, burst: bool = False) -> None:
    # SimpleWorker runs jobs in this process: no fork per job, the app, its database pool and
    # the HTTP sessions stay warm. A worker that dies is covered by the delivery leases.
    from .jobs import close_pool

    # The pool's recorder commits many times a second; the calendar's cache needs to hear of them
    # every so often, not each time.
    app.config.setdefault("CALENDAR_BUMP_EVERY", 0.2)
    stopping = threading.Event()
    with app.app_context():
        try:
            while not stopping.is_set():
                worker = Worker([delivery_queue()], connection=get_redis())
                try:
                    worker.work(burst=burst, with_scheduler=False, logging_level="INFO")
                except redis.RedisError as exc:
                    # RQ gives up when Redis goes away around a job (its bookkeeping, its goodbye).
                    # The sends in the pool go on; a new RQ worker starts once Redis answers.
                    log.warning("the worker lost Redis (%s); starting again when it answers", exc)
                else:
                    return  # asked to stop, or a burst run found the queue empty
                if burst or not _wait_for_redis(stopping):
                    return
        finally:
            # The sends in flight finish; what the pool holds but has not started goes back at once
            # (or, in a burst run, is sent first).
            close_pool(app, finish=burst)


def _wait_for_redis(stopping: threading.Event) -> bool:
    """Until Redis answers (True), or the process is asked to stop meanwhile (False)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_args: stopping.set())
    while not stopping.is_set():
        try:
            get_redis().ping()
            log.info("Redis answers again")
            return True
        except redis.RedisError:
            time.sleep(1.0)
    return False
