"""Channel rate limits shared by every worker on every machine, kept in Redis.

Each adapter declares its service's limit (`Limits.rate_limit`, e.g. "20/minute" for a WeCom
robot); a channel may set its own with the `rate_limit` key of its settings. Before each send the
worker takes a place in the channel's moving window (the `limits` library, counted in Redis);
when the window is full it gets back how long to wait, and the delivery waits its turn instead of
going out and being refused.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache

from flask import current_app
from limits import RateLimitItem, parse_many
from limits.errors import ConfigurationError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

OUTAGE_WAIT = 2.0  # seconds: without Redis no place can be taken, and going out anyway could break the limit


class InvalidLimit(ValueError):
    pass


def parse(value: str) -> list[RateLimitItem]:
    """"20/minute", "5/second;100/minute", "300 per 5 minutes" …; InvalidLimit if it cannot be read."""
    try:
        return parse_many(value)
    except (ValueError, ConfigurationError) as exc:
        raise InvalidLimit(str(exc)) from None


@lru_cache(maxsize=8)
def _limiter(uri: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(uri, socket_timeout=2, socket_connect_timeout=2))


def limiter() -> MovingWindowRateLimiter:
    return _limiter(current_app.config["RATELIMIT_STORAGE_URI"])


def wait_seconds(channel_id: int, rule: str | None) -> float:
    """0 if a send to this channel may go now (and its place is taken), else seconds to wait."""
    if not rule:
        return 0.0
    try:
        items = parse(rule)
    except InvalidLimit:
        log.warning("channel %s: rate limit %r cannot be read; sending without one", channel_id, rule)
        return 0.0
    key = (current_app.config["QUEUE"], "channel", str(channel_id))
    strategy = limiter()
    try:
        for item in items:
            if not strategy.hit(item, *key):
                reset_at, _remaining = strategy.get_window_stats(item, *key)
                return max(0.05, reset_at - time.time())
    except Exception as exc:  # Redis away: hold the send briefly rather than risk the service's limit
        log.warning("channel %s: rate limit not checked (%s: %s)", channel_id, type(exc).__name__, exc)
        return OUTAGE_WAIT
    return 0.0
