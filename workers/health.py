"""Scheduler heartbeats in Redis, so that the queue health page can tell which schedulers are alive.

Each scheduler calls beat() every tick. A sorted set per queue holds each scheduler's name scored
by the time its beat runs out; a hash beside it keeps when it last beat. A scheduler that stops
beating drops out after its ttl; the keys themselves expire when every scheduler has stopped.
"""

from __future__ import annotations

import json
import time

import redis as redis_lib


def _keys(queue_name: str) -> tuple[str, str]:
    base = f"publisher:schedulers:{queue_name}"
    return base, f"{base}:beats"


def beat(redis: redis_lib.Redis, queue_name: str, name: str, ttl: float) -> None:
    """Say that scheduler `name` is alive for the next `ttl` seconds."""
    now = time.time()
    alive, beats = _keys(queue_name)
    keep = max(1, int(ttl) + 1)
    pipe = redis.pipeline()
    pipe.zadd(alive, {name: now + ttl})
    pipe.hset(beats, name, json.dumps({"at": now, "ttl": ttl}))
    pipe.expire(alive, keep)
    pipe.expire(beats, keep)
    pipe.execute()


def schedulers(redis: redis_lib.Redis, queue_name: str) -> list[dict]:
    """The live schedulers: [{"name", "last_beat" (epoch seconds), "ttl"}], by name."""
    now = time.time()
    alive, beats = _keys(queue_name)
    gone = redis.zrangebyscore(alive, "-inf", now)
    if gone:
        redis.zrem(alive, *gone)
        redis.hdel(beats, *gone)
    names = sorted(n.decode() for n in redis.zrangebyscore(alive, now, "+inf"))
    found = redis.hmget(beats, names) if names else []
    live = []
    for name, raw in zip(names, found, strict=True):
        seen = json.loads(raw) if raw else {"at": None, "ttl": None}
        live.append({"name": name, "last_beat": seen["at"], "ttl": seen["ttl"]})
    return live
