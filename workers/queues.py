"""Redis connections and RQ queues, one place for every process to get them."""

from __future__ import annotations

import contextlib

import redis
from flask import current_app
from rq import Queue


def connect(url: str, timeout: float = 5.0) -> redis.Redis:
    # Timeouts everywhere: a stopped or stuck Redis must surface as an error within seconds, not a
    # hang. RQ workers raise socket_timeout for their blocking pops.
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=15)


def get_redis(purpose: str = "work") -> redis.Redis:
    """The app's Redis client; purpose "probe" has short timeouts, for /healthz."""
    ext = current_app.extensions
    key = f"publisher_redis_{purpose}"
    if key not in ext:
        ext[key] = connect(current_app.config["REDIS_URL"], timeout=2.0 if purpose == "probe" else 5.0)
    return ext[key]


def delivery_queue(connection: redis.Redis | None = None) -> Queue:
    return Queue(
        f"{current_app.config['QUEUE']}-deliveries", connection=connection or get_redis(), default_timeout=300
    )


class SharedCache:
    """Small values shared by every process (adapters' service tokens), in Redis. A Redis outage
    makes it forget, never fail: the adapter then fetches a fresh token."""

    def __init__(self, url: str):
        self.url = url
        self._client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = connect(self.url)
        return self._client

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get(key)
        except redis.RedisError:
            return None

    def set(self, key: str, value: str, ex: int | None = None) -> None:
        with contextlib.suppress(redis.RedisError):
            self.client.set(key, value, ex=ex)

    def delete(self, key: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.client.delete(key)
