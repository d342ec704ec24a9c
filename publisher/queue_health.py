"""What the delivery machinery is doing, for the queue health page and GET /api/queue.

From Redis: jobs waiting, running and failed in the deliveries queue, the workers and the
schedulers that are alive. From the database: deliveries that are due and not yet claimed, how
late the oldest one is, and how many deliveries are in each state. Redis being away is an answer
too ({"redis": {"ok": false, "error": …}}), never an exception: the database half still shows.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis
from sqlalchemy import func, select

from .extensions import db
from .models import SENDABLE_ITEM_STATUSES, Channel, Delivery, DeliveryStatus, Item, utcnow

FAILED_SHOWN = 5  # the newest failed jobs whose errors are shown


def _utc(value: datetime | float | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _error(job) -> str:
    result = job.latest_result()
    return _last_line(result.exc_string if result else None)


def redis_part(connection: redis.Redis, now: datetime) -> dict:
    """The queue, its registries, the workers and the schedulers, as they are in Redis."""
    from rq import Worker
    from rq.job import Job
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    from workers.health import schedulers
    from workers.queues import delivery_queue

    queue = delivery_queue(connection)
    failed = FailedJobRegistry(queue=queue)
    failed_ids = failed.get_job_ids(0, FAILED_SHOWN - 1, desc=True)
    failed_jobs = [
        {"id": job.id, "ended_at": _utc(job.ended_at), "error": _error(job)}
        for job in Job.fetch_many(failed_ids, connection=connection) if job is not None
    ]
    workers = []
    for worker in sorted(Worker.all(queue=queue), key=lambda w: w.name):
        beat = _utc(worker.last_heartbeat)
        state = worker.get_state()
        workers.append({
            "name": worker.name, "state": getattr(state, "value", str(state)),
            "current_job": worker.get_current_job_id(), "last_heartbeat": beat, "birth": _utc(worker.birth_date),
            "stale": beat is None or (now - beat).total_seconds() > worker.worker_ttl,
        })
    return {
        "queue": {
            "name": queue.name, "waiting": queue.count, "running": StartedJobRegistry(queue=queue).count,
            "failed": failed.count,
        },
        "failed_jobs": failed_jobs,
        "workers": workers,
        "schedulers": [{"name": s["name"], "last_beat": _utc(s["last_beat"]), "ttl": s["ttl"]}
                       for s in schedulers(connection, queue.name)],
    }


def database_part(now: datetime) -> dict:
    """Due deliveries the claim would take now (and those it holds back), and counts by state."""
    due = Delivery.in_state(DeliveryStatus.SCHEDULED) & (Delivery.next_attempt_at <= now)
    claimable = due & Delivery.channel_id.in_(select(Channel.id).where(Channel.enabled.is_(True))) \
        & Delivery.item_id.in_(select(Item.id).where(Item.status.in_(SENDABLE_ITEM_STATUSES)))
    count, oldest = db.session.execute(select(func.count(Delivery.id), func.min(Delivery.next_attempt_at))
                                       .where(claimable)).one()
    held = db.session.scalar(select(func.count(Delivery.id)).where(due)) - count
    by_status = dict.fromkeys(DeliveryStatus, 0)
    by_status.update(db.session.execute(select(Delivery.status, func.count(Delivery.id)).group_by(Delivery.status))
                     .all())
    # Claimed deliveries are stored as scheduled (see DeliveryClaim).
    claimed = db.session.scalar(select(func.count(Delivery.id)).where(Delivery.in_state(DeliveryStatus.QUEUED)))
    by_status[DeliveryStatus.QUEUED] = claimed
    by_status[DeliveryStatus.SCHEDULED] -= claimed
    oldest = _utc(oldest)
    return {
        "due": count, "held": held, "oldest_due_at": oldest,
        "lag_seconds": round((now - oldest).total_seconds(), 3) if oldest else None,
        "by_status": {str(status): n for status, n in by_status.items()},
    }


def snapshot(connection: redis.Redis) -> dict:
    now = utcnow()
    answer = {"checked_at": now, "redis": {"ok": True, "error": None}, "queue": None, "failed_jobs": [],
              "workers": [], "schedulers": []}
    try:
        answer.update(redis_part(connection, now))
    except redis.RedisError as exc:
        answer["redis"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    answer["deliveries"] = database_part(now)
    return answer


def as_json(value):
    """The snapshot with its times as ISO 8601 strings (UTC with an offset)."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value
