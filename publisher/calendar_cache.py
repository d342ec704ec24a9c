"""The calendar's answers, kept in Redis until anything they show changes.

Every editor's browser asks for a month on each view change, and the same months again and
again; they change far less often than they are read. An answer is stored under the current
*calendar version*, a Redis counter that every commit writing an item, a delivery, a column, a
channel or the organisation increments (SQLAlchemy session events below: ORM flushes and
ORM-enabled UPDATE/DELETE/INSERT statements, which is how dispatch moves deliveries). A change
makes every stored answer unreachable at once; they expire by themselves.

Predicted issue numbers also move with the clock (an open slot that passes stops counting), so
an answer also expires when the first slot it counted passes, and never lives more than MAX_AGE
seconds: that bounds the damage of a write this module does not see (a process that crashed
between its commit and the increment, a change made by hand in the database).

Redis trouble never breaks the calendar: without Redis it is computed every time.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

import redis
from flask import current_app, has_app_context
from sqlalchemy import CursorResult, event
from sqlalchemy.orm import Session

from workers.queues import get_redis

log = logging.getLogger(__name__)

TRACKED = frozenset({"items", "deliveries", "columns", "channels", "organisations", "column_channels"})
MAX_AGE = 60  # seconds
_FLAG = "calendar_changed"


def _key(*parts: str) -> str:
    return ":".join((current_app.config["QUEUE"], "calendar", *parts))


def version() -> str:
    """The current calendar version ("" when Redis cannot be asked: then nothing is cached)."""
    try:
        return (get_redis().get(_key("version")) or b"0").decode()
    except redis.RedisError as exc:
        log.debug("calendar cache off: %s", exc)
        return ""


def cached(version_: str, request_key: str, compute: Callable[[], tuple[bytes, float]]) -> bytes:
    """The stored answer for `request_key` at `version_`, or compute() = (answer, seconds it stays
    true), stored for that long (at most MAX_AGE)."""
    if not version_:
        return compute()[0]
    key = _key(version_, hashlib.sha256(request_key.encode()).hexdigest()[:32])
    try:
        hit = get_redis().get(key)
    except redis.RedisError:
        hit = None
    if hit is not None:
        return hit
    answer, fresh_for = compute()
    ttl_ms = int(min(MAX_AGE, fresh_for) * 1000)
    if ttl_ms > 0:
        try:
            get_redis().set(key, answer, px=ttl_ms)
        except redis.RedisError as exc:
            log.debug("calendar answer not stored: %s", exc)
    return answer


def bump() -> None:
    """Increase the calendar version now, or, in a process that set CALENDAR_BUMP_EVERY (a worker
    committing hundreds of delivery changes a second), at most that often: the first change bumps
    at once, the next ones within that many seconds are folded into one bump at its end."""
    every = current_app.config.get("CALENDAR_BUMP_EVERY") or 0
    if not every:
        _incr(get_redis(), _key("version"))
        return
    state = current_app.extensions.setdefault("calendar_bump", {"last": 0.0, "timer": None, "lock": threading.Lock()})
    with state["lock"]:
        wait = state["last"] + every - time.monotonic()
        if wait <= 0:
            state["last"] = time.monotonic()
        elif state["timer"] is None:
            client, key = get_redis(), _key("version")

            def later():
                with state["lock"]:
                    state["timer"], state["last"] = None, time.monotonic()
                _incr(client, key)

            state["timer"] = threading.Timer(wait, later)
            state["timer"].daemon = True
            state["timer"].start()
            return
        else:
            return  # a bump is already planned, and it will cover this change
    _incr(get_redis(), _key("version"))


def _incr(client: redis.Redis, key: str) -> None:
    try:
        client.incr(key)
    except redis.RedisError as exc:  # the answers stored meanwhile expire within MAX_AGE
        log.warning("calendar version not increased (%s); cached calendar answers may be stale for up to %d s",
                    exc, MAX_AGE)


# --- noticing writes -----------------------------------------------------------------------------

def changed(session: Session) -> None:
    """Tell the cache of a write its session hooks cannot see (a statement run on the connection)."""
    session.info[_FLAG] = True


def _tracked(instances) -> bool:
    return any(getattr(obj, "__tablename__", None) in TRACKED for obj in instances)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context) -> None:
    if _tracked(session.new) or _tracked(session.dirty) or _tracked(session.deleted):
        session.info[_FLAG] = True


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state):
    if not (state.is_update or state.is_delete or state.is_insert):
        return None
    if getattr(getattr(state.statement, "table", None), "name", None) not in TRACKED:
        return None
    if state.is_insert:
        state.session.info[_FLAG] = True
        return None
    # Only an UPDATE or DELETE that changed rows counts: the scheduler's claim runs every tick and
    # mostly finds nothing, and must not empty the cache each time.
    result = state.invoke_statement()
    if isinstance(result, CursorResult):
        changed = result.rowcount != 0
    else:  # UPDATE … RETURNING through the ORM: the rows are the changes; keep them for the caller
        frozen = result.freeze()
        changed, result = bool(frozen.data), frozen()
    if changed:
        state.session.info[_FLAG] = True
    return result


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_FLAG, False) and has_app_context():
        bump()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_FLAG, None)
