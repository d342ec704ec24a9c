"""The delivery core against a real database, a real Redis, real RQ workers and HTTP doubles."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from publisher import dispatch
from publisher.extensions import db
from publisher.models import Delivery, DeliveryEvent, Item, utcnow
from tests.doubles import Answer
from tests.factories import make_channel, scheduled, webhook_channel


def reload(delivery: Delivery) -> Delivery:
    db.session.expire_all()
    return db.session.get(Delivery, delivery.id)


def run_until_settled(drain, *deliveries, timeout=20.0):
    """Tick and drain until every delivery has left scheduled/queued/sending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dispatch.tick()
        drain()
        states = {reload(d).status for d in deliveries}
        if states <= {"sent", "failed", "unconfirmed", "cancelled"}:
            return
        time.sleep(0.05)
    raise AssertionError(f"not settled: {[reload(d).status for d in deliveries]}")


def test_sent_once_with_receipt(app, drain, webhook_double):
    (d,) = scheduled([webhook_channel(webhook_double)])
    run_until_settled(drain, d)
    d = reload(d)
    assert d.status == "sent" and d.attempt == 1
    assert d.external_id == d.idempotency_key
    assert webhook_double.posts == {d.idempotency_key: 1}
    body = webhook_double.requests[0].json()
    assert body["title"] == "第12期：社群运营" and body["body"] == "**Hello** community"
    assert db.session.get(Item, d.item_id).status == "published"
    history = [e.reason for e in db.session.scalars(select(DeliveryEvent).order_by(DeliveryEvent.id))]
    assert history == ["scheduled", "sending", "sent"]


def test_500_then_200_posts_once_on_attempt_two(app, drain, webhook_double):
    webhook_double.answer(Answer(500, "upstream down"))
    (d,) = scheduled([webhook_channel(webhook_double)])
    run_until_settled(drain, d)
    d = reload(d)
    assert d.status == "sent" and d.attempt == 2 and d.failures == 1
    assert len(webhook_double.requests) == 2
    assert webhook_double.posts == {d.idempotency_key: 1}


def test_429_retry_after_is_respected(app, drain, webhook_double):
    webhook_double.answer(Answer(429, "slow down", {"Retry-After": "3"}))
    (d,) = scheduled([webhook_channel(webhook_double)])
    run_until_settled(drain, d)
    first, second = webhook_double.requests
    assert second.at - first.at >= 3.0
    d = reload(d)
    assert d.status == "sent" and d.failures == 0  # a rate limit is not a failure


def test_400_fails_with_the_service_message(app, drain, webhook_double):
    webhook_double.answer(Answer(400, "title must not be empty"))
    (d,) = scheduled([webhook_channel(webhook_double)])
    run_until_settled(drain, d)
    d = reload(d)
    assert d.status == "failed" and d.last_reason == "permanent"
    assert d.last_error_code == "400" and d.last_error == "title must not be empty"
    assert len(webhook_double.requests) == 1


def test_hang_is_unconfirmed_on_a_channel_that_is_not_idempotent(app, drain, double):
    # A plain (non-idempotent) channel: the webhook adapter with idempotent switched off.
    from channels import webhook

    class Plain(webhook.Webhook):
        type = "plain-test"
        idempotent = False

    from channels import registry

    registry.available()["plain-test"] = Plain
    try:
        double.answer(Answer(200, {"ok": True}, delay=2.5))
        ch = make_channel("plain-test", url=double.url, secret="s", timeout=1)
        (d,) = scheduled([ch])
        run_until_settled(drain, d)
        d = reload(d)
        assert d.status == "unconfirmed" and d.last_reason == "unknown" and d.last_error_code == "timeout"
        assert len(double.requests) == 1  # never blindly retried
    finally:
        registry.available().pop("plain-test")


def test_hang_is_retried_on_an_idempotent_channel(app, drain, webhook_double):
    webhook_double.answer(Answer(200, {"ok": True}, delay=2.5))
    (d,) = scheduled([webhook_channel(webhook_double, timeout=1)])
    run_until_settled(drain, d)
    d = reload(d)
    assert d.status == "sent" and d.attempt == 2
    # The receiver saw the key twice and shows the post once.
    assert set(webhook_double.posts) == {d.idempotency_key}


def test_connection_refused_is_retryable(app, drain):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    ch = make_channel("webhook", url=f"http://127.0.0.1:{port}/", secret="s", timeout=1)
    (d,) = scheduled([ch])
    dispatch.tick()
    drain()
    d = reload(d)
    assert d.status == "scheduled" and d.last_reason == "retryable" and d.last_error_code == "connection_refused"


def test_nothing_is_claimed_before_it_is_due(app):
    ch = make_channel("feed")
    (d,) = scheduled([ch], utcnow() + timedelta(seconds=30))
    assert dispatch.claim_due() == []
    assert dispatch.claim_due(d.due_at - timedelta(microseconds=1)) == []
    assert dispatch.claim_due(d.due_at) == [(d.id, 1)]


def test_gives_up_after_max_failures(make_app, webhook_double):
    app = make_app(MAX_FAILURES=2)
    with app.app_context():
        from workers.worker import run as run_worker

        webhook_double.default = Answer(503, "maintenance")
        (d,) = scheduled([webhook_channel(webhook_double)])
        run_until_settled(lambda: run_worker(app, burst=True), d)
        d = reload(d)
        assert d.status == "failed" and d.last_reason == "gave_up" and d.failures == 2
        assert len(webhook_double.requests) == 2


def test_a_stale_job_does_nothing(app, drain, webhook_double):
    (d,) = scheduled([webhook_channel(webhook_double)])
    [(delivery_id, attempt)] = dispatch.claim_due()
    assert dispatch.run(delivery_id, attempt + 1) == "skipped"  # an attempt that is not current
    assert dispatch.run(delivery_id, attempt) == "sent"
    assert dispatch.run(delivery_id, attempt) == "skipped"  # the same job delivered twice by RQ
    assert len(webhook_double.requests) == 1


def test_lost_queue_job_is_taken_back(app, drain, webhook_double):
    from workers.queues import get_redis

    (d,) = scheduled([webhook_channel(webhook_double)])
    assert dispatch.tick() == 1
    get_redis().flushdb()  # Redis lost the job
    drain()
    assert reload(d).state == "queued"
    dispatch.sweep(utcnow() + timedelta(seconds=app.config["QUEUED_LEASE_SECONDS"] + 0.1))
    d = reload(d)
    assert d.state == "scheduled" and d.last_reason == "queue_lost" and d.attempt == 1  # the lost claim counts
    run_until_settled(drain, d)
    assert reload(d).status == "sent" and reload(d).attempt == 2
    assert webhook_double.posts == {d.idempotency_key: 1}


def test_expired_send_lease_depends_on_idempotency(app, webhook_double):
    from channels import registry, webhook

    class Plain(webhook.Webhook):
        type = "plain-test"
        idempotent = False

    registry.available()["plain-test"] = Plain
    try:
        idem, plain = scheduled([webhook_channel(webhook_double),
                                 make_channel("plain-test", url=webhook_double.url, secret="s")])
        now = utcnow()
        for d, _attempt in dispatch.claim_due(now):
            # The worker took them and then died before recording anything.
            db.session.execute(
                Delivery.__table__.update().where(Delivery.id == d)
                .values(status="sending", lease_until=now - timedelta(seconds=1))
            )
        db.session.commit()
        assert dispatch.sweep() == 2
        assert reload(idem).status == "scheduled" and reload(idem).last_reason == "worker_lost"
        assert reload(plain).status == "unconfirmed" and reload(plain).last_reason == "worker_lost"
    finally:
        registry.available().pop("plain-test")


def test_editor_actions(app):
    ch = make_channel("feed")
    d1, = scheduled([ch], utcnow() + timedelta(hours=1))
    assert dispatch.cancel(d1)
    db.session.commit()
    assert reload(d1).status == "cancelled"
    assert not dispatch.retry_now(reload(d1))  # cancelled is final


@pytest.mark.parametrize("value", ["naive"])
def test_naive_datetimes_are_refused(app, value):
    from datetime import datetime

    ch = make_channel("feed")
    item = Item(title="t", body="b")
    db.session.add(item)
    with pytest.raises(ValueError):
        dispatch.schedule(item, [ch], datetime(2026, 1, 1, 12, 0))
    db.session.rollback()


def test_a_switched_off_channel_holds_its_deliveries(app):
    ch = make_channel("feed")
    (d,) = scheduled([ch])
    ch.enabled = False
    db.session.commit()
    assert dispatch.claim_due() == []
    ch.enabled = True
    db.session.commit()
    assert dispatch.claim_due() == [(d.id, 1)]
