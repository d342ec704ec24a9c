"""The delivery core: schedule, claim, run, retry, sweep.

The database decides; Redis only carries "run delivery N, attempt A" to a worker. Every state
change is a conditional UPDATE on (id, attempt, status), so two processes can never both move the
same delivery, and a late or repeated job finds nothing to do. See docs/architecture.md.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import Integer, and_, bindparam, delete, exists, func, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased

from channels import registry

from . import calendar_cache, sending
from .extensions import db
from .models import (
    SENDABLE_ITEM_STATUSES,
    Channel,
    Delivery,
    DeliveryClaim,
    DeliveryEvent,
    Item,
    ItemStatus,
    UTCDateTime,
    utcnow,
)
from .models import DeliveryStatus as S

log = logging.getLogger(__name__)
CLAIM_LOCK = 0x7075626C  # "publ": the advisory lock one claiming scheduler holds (PostgreSQL)
# RQ's limit on one job. Each adapter bounds its own send (max_send_seconds: a WeChat publish
# waits for review up to minutes); this only stops a job that hangs past every timeout. Every
# state change is conditional, so a job stopped here leaves a delivery the sweep takes back.
JOB_TIMEOUT = 3600

# Why a delivery is where it is; the web pages explain each in the editor's language.
REASONS = (
    "scheduled",  # planned by an editor
    "claimed",  # picked up by the scheduler (histories written before claims had a table of their own)
    "sending",
    "sent",
    "rate_limited",  # the channel said "too fast"; waiting as long as it asked
    "retryable",  # the channel could not take it now (down, 5xx); retrying with backoff
    "gave_up",  # retryable errors, too many times
    "permanent",  # the channel refused it (credentials, content)
    "unknown",  # sent, but no answer: on a channel that cannot drop repeats, an editor decides
    "render_error",  # the item could not be formatted for the channel
    "queue_lost",  # the job never started (Redis lost it, workers busy); claimed again
    "worker_lost",  # the worker stopped in the middle of the send
    "cancelled",
    "manual",  # an editor marked or retried it
    "held",  # an earlier delivery to the same channel waits, and posts keep their order
    "released",  # a worker stopped before sending it; claimed again at once
)


def _setting(name: str):
    return current_app.config[name]


def _event(delivery_id: int, attempt: int, status: str, reason: str, code=None, message=None, at=None) -> None:
    db.session.add(
        DeliveryEvent(
            delivery_id=delivery_id, attempt=attempt, status=status, reason=reason,
            code=None if code is None else str(code), message=message, at=at or utcnow(),
        )
    )


def _move(delivery_id: int, attempt: int, from_: tuple[str, ...], /, *where, **values) -> bool:
    """Change a delivery only if it is still in one of `from_` at this attempt (and `where` holds)."""
    values.setdefault("updated_at", utcnow())
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.attempt == attempt, Delivery.status.in_(from_), *where)
        .values(**values),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount == 1


# --- scheduling -------------------------------------------------------------------------------

def schedule(item: Item, channels: list[Channel], due_at: datetime) -> list[Delivery]:
    """One delivery per channel. The caller commits."""
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    deliveries = [
        Delivery(item=item, channel=ch, due_at=due_at, next_attempt_at=due_at, status=S.SCHEDULED)
        for ch in channels
    ]
    db.session.add_all(deliveries)
    if item.planned_at is None:
        item.planned_at = due_at
    # Planned deliveries of an item that still waits for review stay planned: the claim only takes
    # deliveries of scheduled or published items. Approval (workflow.py) makes it scheduled.
    if item.status == ItemStatus.APPROVED or (item.status == ItemStatus.DRAFT and not _approval_required()):
        item.status = ItemStatus.SCHEDULED
    db.session.flush()
    for d in deliveries:
        _event(d.id, 0, S.SCHEDULED, "scheduled", message=due_at.isoformat())
    return deliveries


def _unclaimed(delivery: Delivery):
    """An editor's change waits for a claim that is being made (PostgreSQL: the claim's advisory
    lock) and applies only if no scheduler has claimed the delivery: once claimed, it is on its way
    (a channel that drops repeats may get its request before the delivery is marked as sending)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
    return ~exists().where(DeliveryClaim.delivery_id == delivery.id)


def reschedule(delivery: Delivery, due_at: datetime) -> bool:
    """Move a delivery that has not started yet. The caller commits."""
    ok = _move(delivery.id, delivery.attempt, (S.SCHEDULED,), _unclaimed(delivery), due_at=due_at,
               next_attempt_at=due_at)
    if ok:
        _event(delivery.id, delivery.attempt, S.SCHEDULED, "scheduled", message=due_at.isoformat())
    return ok


def cancel(delivery: Delivery) -> bool:
    ok = _move(delivery.id, delivery.attempt, (S.SCHEDULED, S.UNCONFIRMED), _unclaimed(delivery),
               status=S.CANCELLED, lease_until=None, last_reason="cancelled")
    if ok:
        _event(delivery.id, delivery.attempt, S.CANCELLED, "cancelled")
    return ok


def retry_now(delivery: Delivery) -> bool:
    """An editor's explicit retry of a failed or unconfirmed delivery."""
    now = utcnow()
    ok = _move(delivery.id, delivery.attempt, (S.FAILED, S.UNCONFIRMED),
               status=S.SCHEDULED, next_attempt_at=now, failures=0, lease_until=None, last_reason="manual")
    if ok:
        _event(delivery.id, delivery.attempt, S.SCHEDULED, "manual", message="retry")
    return ok


def mark_sent(delivery: Delivery) -> bool:
    """An editor checked the channel and found the post there."""
    now = utcnow()
    ok = _move(delivery.id, delivery.attempt, (S.UNCONFIRMED, S.FAILED), status=S.SENT, sent_at=now, lease_until=None,
               last_reason="manual")
    if ok:
        _event(delivery.id, delivery.attempt, S.SENT, "manual", message="marked as sent")
        sending.publish_items([delivery.item_id], now)
    return ok


# --- the scheduler tick ---------------------------------------------------------------------

def claim_due(now: datetime | None = None, limit: int | None = None, ahead: float = 0.0) -> list[tuple[int, int]]:
    """Atomically take the due deliveries: (id, attempt) pairs that this caller now owns, each a row
    of delivery_claims (see DeliveryClaim). With `ahead`, also those due within that many seconds:
    the scheduler claims a little early so that a delivery is loaded and rendered by its due time,
    and the worker sends it at that time, not before.

    A channel's deliveries go out in their scheduled order, one batch at a time: a channel with a
    claim or a delivery sending is skipped, and so is a delivery with an earlier one of its channel
    waiting for a retry (rate limited, service down). PostgreSQL: one scheduler claims at a time (a
    transaction-scoped advisory lock; the others skip that tick), so two claims can never split a
    channel; SQLite serialises writers anyway. The claims' primary key would refuse a second claim
    of a delivery in any case.
    """
    now = now or utcnow()
    dialect = db.session.get_bind().dialect.name
    postgresql = dialect == "postgresql"
    if postgresql and not db.session.scalar(select(func.pg_try_advisory_xact_lock(CLAIM_LOCK))):
        db.session.rollback()
        return []
    params = {"now": now, "horizon": now + timedelta(seconds=ahead), "limit": limit or _setting("CLAIM_BATCH"),
              "lease": now + timedelta(seconds=_setting("QUEUED_LEASE_SECONDS"))}
    if postgresql:
        # Its commit does not wait for the disk: a claim lost in a crash of the database server only
        # leaves the deliveries to be claimed again (a job for the lost claim finds nothing to do),
        # and any later commit that waits, such as a worker's, writes it first.
        db.session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    rows = db.session.connection().execute(_claim_statement(dialect), params).all()
    if rows:
        calendar_cache.changed(db.session)  # a statement on the connection: the session's hooks miss it
    db.session.commit()
    return sorted((r[0], r[1]) for r in rows)


@functools.cache
def _claim_statement(dialect: str):
    """The claim, built once (the scheduler runs it every tick): an INSERT … SELECT … RETURNING of
    the due deliveries into delivery_claims. Parameters: now, horizon (due before it), limit, lease."""
    now, horizon = bindparam("now", type_=UTCDateTime), bindparam("horizon", type_=UTCDateTime)
    # Each check is an index probe per candidate, taken in due order until `limit` are found.
    # "(SELECT count(*) …) = 0" stays a per-row index probe: NOT EXISTS lets PostgreSQL hash every
    # delivery planned for later, and a LIMIT 1 probe lets it prefer a sequential scan (seconds
    # among a million, either way).
    other = aliased(Delivery)

    def none_where(entity, *conditions):
        return select(func.count()).select_from(entity).where(*conditions).scalar_subquery() == 0

    free_channel = and_(
        # The claims table is small but churns (rows come and go with every send; the dead ones stay
        # until vacuumed): read it once into a hash, not once per candidate through its index.
        Delivery.channel_id.not_in(select(DeliveryClaim.channel_id)),
        none_where(other, other.channel_id == Delivery.channel_id, other.status == S.SENDING),
    )
    # A delivery that waits for a retry has been tried or claimed before (attempt > 0): the partial
    # index ix_deliveries_waiting holds only those, so the probe never reads the channel's backlog.
    nothing_earlier_waits = none_where(
        other, other.channel_id == Delivery.channel_id, other.status == S.SCHEDULED, other.attempt > 0,
        other.due_at <= Delivery.due_at, other.next_attempt_at > now,
        (other.due_at < Delivery.due_at) | (other.id < Delivery.id),
    )
    # The item's status, looked up by primary key per candidate (as a join, a misestimate of the
    # rows left after the checks above made PostgreSQL scan every item once per candidate).
    sendable_item = select(Item.status).where(Item.id == Delivery.item_id).scalar_subquery().in_(
        SENDABLE_ITEM_STATUSES)
    due = (
        select(Delivery.id, Delivery.attempt + 1, Delivery.channel_id, Delivery.next_attempt_at,
               bindparam("lease", type_=UTCDateTime))
        .where(Delivery.status == S.SCHEDULED, Delivery.next_attempt_at <= horizon, free_channel,
               nothing_earlier_waits)
        # A channel that is switched off holds its deliveries until it is switched on again.
        .where(Delivery.channel_id.in_(select(Channel.id).where(Channel.enabled.is_(True))))
        # Nothing reaches a channel before approval (or with approval switched off).
        .where(sendable_item)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(bindparam("limit", type_=Integer))
    )
    dialect_insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return (
        dialect_insert(DeliveryClaim)
        .from_select(["delivery_id", "attempt", "channel_id", "next_attempt_at", "lease_until"], due)
        .on_conflict_do_nothing()
        .returning(DeliveryClaim.delivery_id, DeliveryClaim.attempt)
    )


def batches(claimed: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """The claimed deliveries as jobs of about BATCH_SIZE: each channel's deliveries in one job, in
    their scheduled order, so that one worker sends them one after another."""
    if not claimed:
        return []
    ids = [i for i, _a in claimed]
    attempts = dict(claimed)
    chains: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for i, channel_id in db.session.execute(
        select(Delivery.id, Delivery.channel_id).where(Delivery.id.in_(ids)).order_by(Delivery.due_at, Delivery.id)
    ):
        chains[channel_id].append((i, attempts[i]))
    size = _setting("BATCH_SIZE")
    jobs: list[list[tuple[int, int]]] = [[]]
    for chain in chains.values():
        if jobs[-1] and len(jobs[-1]) + len(chain) > size:
            jobs.append([])
        jobs[-1].extend(chain)
    return jobs


def enqueue(claimed: list[tuple[int, int]]) -> int:
    """Hand claimed deliveries to the workers, in batches. If Redis is down, give them back at once."""
    if not claimed:
        return 0
    from rq import Queue

    from workers.queues import delivery_queue

    queue = delivery_queue()
    jobs = [
        Queue.prepare_data(
            "workers.jobs.deliver_batch", args=(batch,), job_id=f"deliveries-{batch[0][0]}-{batch[0][1]}-{len(batch)}",
            timeout=JOB_TIMEOUT, result_ttl=300, failure_ttl=7 * 86400,
        )
        for batch in batches(claimed)
    ]
    try:
        queue.enqueue_many(jobs)
    except redis.RedisError as exc:
        end_claims(tuple_(DeliveryClaim.delivery_id, DeliveryClaim.attempt).in_(claimed), "queue_lost",
                   message=f"Redis unavailable: {type(exc).__name__}")
        db.session.commit()
        raise
    return len(claimed)


def end_claims(which, reason: str, now: datetime | None = None, message: str | None = None) -> int:
    """Take back the claims `which` selects, untried (not a failure): the job was lost, or never
    queued. Each delivery stays scheduled, and its attempt counts the claim, so that a job of that
    claim finds nothing to do if it turns up. In bulk: after Redis lost its jobs, the sweep may take
    back thousands at once. The caller commits."""
    now = now or utcnow()
    ended = db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(select(DeliveryClaim.delivery_id).where(which)), Delivery.status == S.SCHEDULED,
               exists().where(DeliveryClaim.delivery_id == Delivery.id, DeliveryClaim.attempt == Delivery.attempt + 1))
        .values(attempt=Delivery.attempt + 1, last_reason=reason, updated_at=now)
        .returning(Delivery.id, Delivery.attempt),
        execution_options={"synchronize_session": False},
    ).all()
    db.session.execute(delete(DeliveryClaim).where(which))
    if ended:
        db.session.execute(insert(DeliveryEvent), [
            dict(delivery_id=i, attempt=a, status=S.SCHEDULED, reason=reason, message=message, at=now)
            for i, a in ended])
    return len(ended)


def extend_leases(pairs: list[tuple[int, int]]) -> None:
    """A worker holds these claims (not started yet): their lease runs again from now. The pool
    renews it while it holds them, so the lease can be short and a dead worker's deliveries come
    back soon."""
    if not pairs:
        return
    lease = utcnow() + timedelta(seconds=_setting("QUEUED_LEASE_SECONDS"))
    db.session.execute(
        update(DeliveryClaim)
        .where(tuple_(DeliveryClaim.delivery_id, DeliveryClaim.attempt).in_(pairs))
        .values(lease_until=lease),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()


def sweep(now: datetime | None = None) -> int:
    """Take back deliveries whose lease ran out: the job was lost, or the worker died."""
    now = now or utcnow()
    count = end_claims(DeliveryClaim.lease_until < now, "queue_lost", now)

    stuck = db.session.execute(
        select(Delivery.id, Delivery.attempt, Channel.type)
        .join(Channel, Channel.id == Delivery.channel_id)
        .where(Delivery.status == S.SENDING, Delivery.lease_until < now)
    ).all()
    for i, a, type_ in stuck:
        if _is_idempotent(type_):
            moved = _move(i, a, (S.SENDING,), status=S.SCHEDULED, next_attempt_at=now, lease_until=None,
                          last_reason="worker_lost")
            status = S.SCHEDULED
        else:
            moved = _move(i, a, (S.SENDING,), status=S.UNCONFIRMED, lease_until=None, last_reason="worker_lost",
                          last_error="the worker stopped during the send", last_error_code=None)
            status = S.UNCONFIRMED
        if moved:
            _event(i, a, status, "worker_lost", at=now)
            count += 1
    db.session.commit()
    return count


def tick(now: datetime | None = None) -> int:
    """One scheduler step: sweep, claim, enqueue. Safe to run in any number of processes."""
    sweep(now)
    return enqueue(claim_due(now, ahead=_setting("CLAIM_AHEAD_SECONDS")))


def _is_idempotent(type_: str) -> bool:
    try:
        return registry.get(type_).idempotent
    except registry.UnknownChannelType:
        return False


# --- running one delivery ----------------------------------------------------------------------

class _Direct:
    """Commits each step at once: one delivery, as the tests and `run` use it (the worker's send
    pool groups the steps of many instead, see workers/pool.py)."""

    def start(self, send: sending.Send, wait: bool = True) -> bool:
        moved = send.id in sending.start([send])
        db.session.commit()
        return moved

    def record(self, results: list[sending.Result]) -> None:
        sending.record(results)
        db.session.commit()


def run(delivery_id: int, attempt: int, session=None) -> str:
    """Send one delivery. Returns the state it ended in (or "skipped" if it was not ours)."""
    sends = sending.prepare([(delivery_id, attempt)], session=session)
    if sends and (early := (sends[0].not_before - utcnow()).total_seconds()) > 0:
        time.sleep(early)  # claimed ahead: not before its time
    result = sending.run(sends[0], _Direct()) if sends else None
    db.session.rollback()
    return result.status if result else "skipped"


def _approval_required() -> bool:
    from .i18n import organisation

    return organisation().require_approval
