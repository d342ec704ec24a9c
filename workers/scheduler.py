"""The scheduler loop: tick about every TICK_SECONDS. Run as many copies as you like."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time

import redis
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, app: Flask):
        self.app = app
        self.stopping = False
        self.failing: str | None = None  # what the last tick could not reach, logged once per outage
        self.name = f"{socket.gethostname()}:{os.getpid()}"  # shown on the queue health page

    def stop(self, *_args) -> None:
        self.stopping = True

    def tick_once(self) -> int:
        """One tick. Nothing it meets (Redis or the database away, a bug) stops the loop."""
        from publisher import dispatch
        from publisher.extensions import db

        from .health import beat
        from .queues import delivery_queue, get_redis

        with self.app.app_context():
            try:
                # Claim nothing while the workers cannot be reached: a claim that cannot be
                # enqueued is handed back, and each tick of an outage would otherwise add an
                # attempt and a "handed out again" event to every due delivery.
                get_redis().ping()
                beat(get_redis(), delivery_queue().name, self.name, ttl=max(10.0, 5 * self.app.config["TICK_SECONDS"]))
                enqueued = dispatch.tick()
            except redis.RedisError as exc:
                self._failed("redis", "Redis unavailable, deliveries wait in the database: %s", exc)
            except SQLAlchemyError as exc:
                db.session.rollback()
                self._failed("database", "database unavailable: %s", exc)
            except Exception:
                db.session.rollback()
                self._failed("error", "scheduler tick failed", exc_info=True)
            else:
                if self.failing:
                    log.info("scheduler ticking normally again")
                    self.failing = None
                return enqueued
            return 0

    def _failed(self, kind: str, message: str, *args, exc_info: bool = False) -> None:
        if self.failing != kind:
            log.warning(message, *args, exc_info=exc_info)
        self.failing = kind

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
