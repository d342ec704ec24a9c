"""The scheduler loop: tick about every TICK_SECONDS. Run as many copies as you like."""

from __future__ import annotations

import logging
import signal
import time

import redis
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, app: Flask):
        self.app = app
        self.stopping = False

    def stop(self, *_args) -> None:
        self.stopping = True

    def tick_once(self) -> int:
        from publisher import dispatch
        from publisher.extensions import db

        with self.app.app_context():
            try:
                return dispatch.tick()
            except redis.RedisError as exc:
                log.warning("Redis unavailable, deliveries wait in the database: %s", exc)
            except SQLAlchemyError as exc:
                log.warning("database unavailable: %s", exc)
                db.session.rollback()
            return 0

    def run(self, *, max_ticks: int | None = None, handle_signals: bool = True) -> None:
        if handle_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        interval = self.app.config["TICK_SECONDS"]
        log.info("scheduler started, ticking every %.2fs", interval)
        ticks = 0
        while not self.stopping and (max_ticks is None or ticks < max_ticks):
            started = time.monotonic()
            sent = self.tick_once()
            if sent:
                log.info("enqueued %d deliveries", sent)
            ticks += 1
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
        log.info("scheduler stopped")
