"""Redis connections and RQ queues, one place for every process to get them."""

from __future__ import annotations

import redis
from flask import current_app
from rq import Queue


def connect(url: str) -> redis.Redis:
    # Timeouts everywhere: a stopped or stuck Redis must surface as an error within seconds, not a
    # hang (/healthz answers within them). RQ workers raise socket_timeout for their blocking pops.
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=15)


def get_redis() -> redis.Redis:
    ext = current_app.extensions
    if "publisher_redis" not in ext:
        ext["publisher_redis"] = connect(current_app.config["REDIS_URL"])
    return ext["publisher_redis"]


def delivery_queue(connection: redis.Redis | None = None) -> Queue:
    return Queue(
        f"{current_app.config['QUEUE']}-deliveries", connection=connection or get_redis(), default_timeout=300
    )
