"""Sending claimed deliveries, in four steps that work on many deliveries at once.

1. `prepare`: load a batch's deliveries, channels and items in a few queries, make each channel's
   adapter once and render each delivery (before its due time when the scheduler claimed it
   ahead, so the send itself is only the request).
2. `start`: claimed → sending, committed before any request leaves: if the process dies during
   the send, the sweep knows the request may have gone (`unconfirmed` on a channel that cannot
   drop repeats).
3. `deliver`: the adapter's call, its answer or error turned into a `Result`.
4. `record`: the results, written in bulk (one UPDATE per kind of result, one INSERT for the
   history), and the items that went out for the first time published with their issue numbers.

`run` takes one delivery through the steps with a recorder: `dispatch.run` commits each step at
once; the worker's send pool (workers/pool.py) groups the steps of all its lanes into a few
transactions. Every write is conditional on (id, attempt, status), as everywhere in dispatch.py.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from flask import current_app
from sqlalchemy import and_, bindparam, delete, exists, func, insert, select, tuple_, update
from sqlalchemy.orm import joinedload, selectinload

from channels import registry
from channels.base import Channel as Adapter
from channels.errors import ChannelError, OutcomeUnknown, Permanent, RateLimited, Retryable

from . import calendar_cache, ratelimit
from .extensions import db
from .models import Channel, Column, Delivery, DeliveryClaim, DeliveryEvent, Item, ItemEvent, ItemStatus, utcnow
from .models import DeliveryStatus as S
from .posts import build_post

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Send:
    """A claimed delivery, ready to go: what the request needs, loaded and rendered."""

    id: int
    attempt: int
    channel_id: int
    item_id: int
    key: str
    failures: int
    not_before: datetime  # its due time: a send claimed ahead waits for it
    adapter: Adapter | None = None
    message: Any = None
    rate_limit: str | None = None
    problem: str | None = None  # no adapter or no message: it fails without a request


@dataclass(eq=False)
class Result:
    """Where a send ended, to be recorded. `from_` is the state it must still be in."""

    send: Send
    status: str
    reason: str
    from_: str = S.SENDING
    at: datetime = field(default_factory=utcnow)
    code: str | None = None
    message: str | None = None  # the service's words (or ours), for the history and the page
    next_at: datetime | None = None  # when it is tried again (status scheduled)
    remote_id: str | None = None
    url: str | None = None

    @property
    def hold_until(self) -> datetime | None:
        """Set when the delivery waits: its channel's later deliveries wait behind it."""
        return self.next_at if self.status == S.SCHEDULED else None


class Recorder(Protocol):
    def start(self, send: Send, wait: bool = True) -> bool: ...
    def record(self, results: list[Result]) -> None: ...


def _setting(name: str):
    return current_app.config[name]


_deliveries = Delivery.__table__
_claims = DeliveryClaim.__table__
_events = DeliveryEvent.__table__


def _claim_holds():
    """The delivery is still as it was claimed: a change since (an editor's) makes the claim void."""
    return and_(_claims.c.delivery_id == _deliveries.c.id, _deliveries.c.status == S.SCHEDULED,
                _deliveries.c.attempt == _claims.c.attempt - 1,
                _deliveries.c.next_attempt_at == _claims.c.next_attempt_at)


def _claimed(*conditions):
    """The WHERE of an update that ends a claim (a start, a give-back): the delivery has a claim
    meeting `conditions`, and it holds."""
    return exists().where(*conditions, _claim_holds())


def _drop_claims(sends: list[Send]) -> None:
    """Claims done with (started, given back, or void)."""
    _write(delete(_claims).where(tuple_(_claims.c.delivery_id, _claims.c.attempt).in_([(s.id, s.attempt)
                                                                                       for s in sends])))


def _write(statement, params=None):
    """A write on the session's connection, past the ORM (these are plain bulk statements, and the
    ORM's per-statement work was a good part of a worker's time); the calendar's cache is told."""
    calendar_cache.changed(db.session)
    return db.session.connection().execute(statement, params)


# --- 1. prepare --------------------------------------------------------------------------------

def prepare(pairs: list[tuple[int, int]], session=None, adapters: dict | None = None) -> list[Send]:
    """The deliveries among `pairs` whose claim (delivery, attempt) still holds, in scheduled order.

    `adapters` keeps each channel's adapter between batches (the worker's pool passes its own),
    made again when the channel's settings change."""
    if not pairs:
        return []
    adapters = {} if adapters is None else adapters
    rows = db.session.execute(
        select(Delivery.id, DeliveryClaim.attempt, Delivery.channel_id, Delivery.item_id, Delivery.idempotency_key,
               Delivery.failures, Delivery.next_attempt_at)
        .join(DeliveryClaim, _claim_holds())
        .where(tuple_(DeliveryClaim.delivery_id, DeliveryClaim.attempt).in_(pairs))
        .order_by(Delivery.due_at, Delivery.id)  # the scheduled order, which a retry does not change
    ).all()
    sends = [Send(*row) for row in rows]
    # Claimed ahead, a send waits for its due time, but never longer than the scheduler claims
    # ahead: a caller that claimed with a later clock (the tests do) means "now".
    latest = utcnow() + timedelta(seconds=_setting("CLAIM_AHEAD_SECONDS"))
    for send in sends:
        send.not_before = min(send.not_before, latest)
    channel_ids = {s.channel_id for s in sends}
    channels = {c.id: c for c in db.session.scalars(select(Channel).where(Channel.id.in_(channel_ids)))}
    items = {i.id: i for i in db.session.scalars(
        select(Item).where(Item.id.in_({s.item_id for s in sends})).options(
            joinedload(Item.column).joinedload(Column.cover), joinedload(Item.cover), joinedload(Item.file),
            joinedload(Item.author), selectinload(Item.media))
    )}
    posts: dict[int, Any] = {}
    for send in sends:
        channel = channels[send.channel_id]
        try:
            cached = adapters.get(channel.id)
            if cached is None or cached[0] != (channel.type, channel.config_encrypted):
                adapter = registry.get(channel.type)(channel.config, session=session)
                cached = adapters[channel.id] = ((channel.type, channel.config_encrypted), adapter)
            send.adapter = cached[1]
        except Exception as exc:  # unknown type, unreadable secrets: nothing can be sent
            send.problem = str(exc) or type(exc).__name__
            continue
        send.rate_limit = send.adapter.config.get("rate_limit") or send.adapter.limits.rate_limit
        try:
            if send.item_id not in posts:
                posts[send.item_id] = build_post(items[send.item_id])
            send.message = send.adapter.render(posts[send.item_id])
        except Exception as exc:
            log.exception("delivery %s: render failed", send.id)
            send.problem = str(exc) or type(exc).__name__
    return sends


# --- 2 and 3: start and deliver --------------------------------------------------------------

def rate_wait(send: Send) -> float:
    """0 if the channel's shared limit has room for this send (its place is taken), else seconds."""
    return ratelimit.wait_seconds(send.channel_id, send.rate_limit)


def start(sends: list[Send], now: datetime | None = None) -> set[int]:
    """Claimed → sending for those whose claim still holds; returns their ids. The claims go. The
    caller commits (before any request leaves)."""
    now = now or utcnow()
    moved: set[int] = set()
    by_lease: dict[datetime, list[Send]] = {}
    for send in sends:
        lease = now + timedelta(seconds=send.adapter.max_send_seconds() + _setting("LEASE_MARGIN_SECONDS"))
        by_lease.setdefault(lease, []).append(send)
    for lease, group in by_lease.items():
        moved.update(_write(
            update(_deliveries)
            .where(_deliveries.c.id.in_([s.id for s in group]),
                   _claimed(tuple_(_claims.c.delivery_id, _claims.c.attempt).in_([(s.id, s.attempt) for s in group])))
            .values(status=S.SENDING, attempt=_deliveries.c.attempt + 1, lease_until=lease, updated_at=now)
            .returning(_deliveries.c.id)
        ).scalars())
    _drop_claims(sends)
    if moved:
        _write(insert(_events), [
            dict(delivery_id=s.id, attempt=s.attempt, status=S.SENDING, reason="sending", at=now, code=None,
                 message=None) for s in sends if s.id in moved])
    return moved


def backoff_seconds(failures: int) -> float:
    """Exponential backoff with jitter, so a fleet of retries does not hit a recovering service at once."""
    ceiling = min(_setting("RETRY_MAX_SECONDS"), _setting("RETRY_BASE_SECONDS") * 2 ** max(0, failures - 1))
    return ceiling * random.uniform(0.5, 1.0)


def deliver(send: Send) -> Result:
    """The request. Whatever happens comes back as a Result; nothing here writes."""
    adapter = send.adapter
    try:
        receipt = adapter.send(send.message, idempotency_key=send.key)
    except RateLimited as exc:
        wait = exc.retry_after if exc.retry_after is not None else backoff_seconds(send.failures + 1)
        return retry(send, "rate_limited", exc, wait, count_failure=False)
    except Retryable as exc:
        return retry(send, "retryable", exc, backoff_seconds(send.failures + 1))
    except Permanent as exc:
        return Result(send, S.FAILED, "permanent", code=exc.code, message=exc.message)
    except (OutcomeUnknown, ChannelError, Exception) as exc:
        # The request may have reached the service. Only a channel that drops repeats may retry.
        code = getattr(exc, "code", None)
        text = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, ChannelError):
            log.exception("delivery %s: adapter raised", send.id)
        if adapter.idempotent:
            return retry(send, "unknown", OutcomeUnknown(text, code=code), backoff_seconds(send.failures + 1))
        return Result(send, S.UNCONFIRMED, "unknown", code=code, message=text)
    return Result(send, S.SENT, "sent", remote_id=receipt.remote_id, url=receipt.url)


def retry(send: Send, reason: str, exc: ChannelError, wait: float, count_failure: bool = True) -> Result:
    if count_failure:
        send.failures += 1
    if send.failures >= _setting("MAX_FAILURES"):
        return Result(send, S.FAILED, "gave_up", code=exc.code, message=exc.message)
    next_at = utcnow() + timedelta(seconds=wait)
    return Result(send, S.SCHEDULED, reason, code=exc.code, next_at=next_at,
                  message=f"{exc.message} (next try at {next_at.isoformat(timespec='seconds')})")


def give_back(send: Send, at: datetime, reason: str, message: str | None = None) -> Result:
    """A claimed send goes back to the schedule untried (not a failure); its claim ends."""
    return Result(send, S.SCHEDULED, reason, from_=S.QUEUED, next_at=at, message=message)


def run(send: Send, recorder: Recorder) -> Result | None:
    """One send through every step. None if it was not this caller's to send (moved meanwhile)."""
    if send.problem is not None:
        result = Result(send, S.FAILED, "render_error", from_=S.QUEUED, message=send.problem)
    elif wait := rate_wait(send):
        at = utcnow() + timedelta(seconds=wait)
        result = give_back(send, at, "rate_limited",
                           f"this channel's limit is reached; next place at {at.isoformat(timespec='seconds')}")
    # A channel that drops repeats does not need the mark committed before its request: if this
    # process dies meanwhile, the send is repeated and the service ignores the repeat. Not waiting
    # for the commit takes it off the path of every send to such a channel.
    elif not recorder.start(send, wait=not send.adapter.idempotent):
        return None
    else:
        result = deliver(send)
    recorder.record([result])
    return result


# --- 4. record ---------------------------------------------------------------------------------

def record(results: list[Result]) -> list[Result]:
    """Write the results whose delivery is still where they expect it; returns those. The caller
    commits."""
    if not results:
        return []
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.from_, r.status), []).append(r)
    table = _deliveries
    written: list[Result] = []
    for (from_, status), group in groups.items():
        now = utcnow()  # also names this group's rows (updated_at) if the count does not add up
        values: dict[str, Any] = dict(
            status=status, lease_until=None, updated_at=now, last_reason=bindparam("v_reason"),
            last_error=bindparam("v_message"), last_error_code=bindparam("v_code"))
        if status == S.SENT:
            values.update(sent_at=bindparam("v_at"), external_id=bindparam("v_remote_id"),
                          external_url=bindparam("v_url"), last_error=None, last_error_code=None)
        else:
            values["failures"] = bindparam("v_failures")
        if status == S.SCHEDULED:
            values["next_attempt_at"] = bindparam("v_next_at")
        if from_ == S.QUEUED:  # claimed, never started: the claim must hold, and it ends here
            where = _claimed(_claims.c.attempt == bindparam("k_attempt"))
            values["attempt"] = table.c.attempt + 1
        else:
            where = and_(table.c.attempt == bindparam("k_attempt"), table.c.status == from_)
        statement = update(table).where(table.c.id == bindparam("k_id"), where).values(**values)
        params = [dict(k_id=r.send.id, k_attempt=r.send.attempt, v_reason=r.reason, v_message=r.message,
                       v_code=r.code, v_at=r.at, v_remote_id=r.remote_id, v_url=r.url, v_failures=r.send.failures,
                       v_next_at=r.next_at) for r in group]
        count = _write(statement, params).rowcount
        if from_ == S.QUEUED:
            _drop_claims([r.send for r in group])
        if count == len(group):
            written.extend(group)
        else:  # some moved meanwhile (an editor, the sweep): keep those this statement changed
            ids = set(db.session.scalars(select(Delivery.id).where(
                Delivery.id.in_([r.send.id for r in group]), Delivery.updated_at == now, Delivery.status == status)))
            written.extend(r for r in group if r.send.id in ids)
    if written:
        _write(insert(_events), [
            dict(delivery_id=r.send.id, attempt=r.send.attempt, status=r.status, reason=r.reason,
                 code=None if r.code is None else str(r.code),
                 message=r.remote_id if r.status == S.SENT else r.message, at=r.at) for r in written])
    sent = [r for r in written if r.status == S.SENT]
    if sent:
        publish_items([r.send.item_id for r in sent], min(r.at for r in sent))
    return written


def publish_items(item_ids: list[int], now: datetime) -> None:
    """The first sent delivery publishes its item; an item in a column gets the column's next issue
    number, in the order given (the order the deliveries went out). The caller commits."""
    rows = db.session.execute(
        select(Item.id, Item.column_id, Item.issue_number)
        .where(Item.id.in_(set(item_ids)), Item.status == ItemStatus.SCHEDULED)
    ).all()
    if not rows:
        return
    order = {item_id: n for n, item_id in reversed(list(enumerate(item_ids)))}
    rows.sort(key=lambda row: order[row[0]])
    columns = sorted({column_id for _i, column_id, number in rows if column_id is not None and number is None})
    next_number: dict[int, int] = {}
    if columns:
        # Lock the column rows (PostgreSQL) so two items published at once get different numbers;
        # SQLite serialises writers anyway.
        first = dict(db.session.execute(
            select(Column.id, Column.first_issue).where(Column.id.in_(columns)).order_by(Column.id).with_for_update()
        ).all())
        last = dict(db.session.execute(
            select(Item.column_id, func.max(Item.issue_number)).where(Item.column_id.in_(columns))
            .group_by(Item.column_id)).all())
        next_number = {c: (last[c] + 1) if last.get(c) is not None else first[c] for c in columns}
    numbered, others = [], []
    for item_id, column_id, number in rows:
        if number is None and column_id in next_number:
            numbered.append(dict(k_id=item_id, v_number=next_number[column_id]))
            next_number[column_id] += 1
        else:
            others.append(dict(k_id=item_id, v_number=None))
    table = Item.__table__
    numbers = {row["k_id"]: row["v_number"] for row in numbered}
    changed = 0
    for group, values in ((numbered, {"issue_number": bindparam("v_number")}), (others, {})):
        if not group:
            continue
        where = [table.c.id == bindparam("k_id"), table.c.status == ItemStatus.SCHEDULED]
        if values:
            where.append(table.c.issue_number.is_(None))
        changed += _write(update(table).where(*where).values(status=ItemStatus.PUBLISHED, published_at=now, **values),
                          group).rowcount
    published = {item_id for item_id, _c, _n in rows}
    if changed != len(published):
        # Another writer published some first (PostgreSQL, between the read and the write above):
        # its own event says so; keep those this process published.
        published = set(db.session.scalars(select(Item.id).where(
            Item.id.in_(published), Item.status == ItemStatus.PUBLISHED, Item.published_at == now)))
    if published:
        _write(insert(ItemEvent.__table__), [
            dict(item_id=i, action="published", at=now, user_id=None,
                 changes=json.dumps({"issue_number": [None, numbers[i]]}) if numbers.get(i) is not None else "")
            for i in sorted(published, key=order.get)])
