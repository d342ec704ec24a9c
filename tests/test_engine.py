"""The delivery engine: batches per channel, sends in flight in a worker's pool, each channel's
posts in their scheduled order, shared rate limits, and a clean stop."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import func, select

from publisher import dispatch, ratelimit, sending
from publisher.extensions import db
from publisher.models import Delivery, DeliveryClaim, DeliveryEvent, utcnow
from tests.doubles import Answer, Double, WebhookDouble
from tests.factories import make_item, webhook_channel
from tests.test_delivery import reload


class Gauge(WebhookDouble):
    """A receiver that takes `delay` seconds per request and remembers how many were in at once."""

    def __init__(self, delay: float, **kwargs):
        super().__init__("hook-secret", default=Answer(200, {"ok": True}, delay=delay), **kwargs)
        self.now = self.most = 0

    def handle(self, rec):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            answer = super().handle(rec)
            time.sleep(answer.delay)
            return Answer(answer.status, answer.body, answer.headers)
        finally:
            with self.lock:
                self.now -= 1


def plan(channel, n: int, start=None, step=timedelta(seconds=1)) -> list[Delivery]:
    """n items on `channel`, due one after another (already due)."""
    start = start or utcnow() - timedelta(minutes=1)
    found = []
    for k in range(n):
        item = make_item(title=f"post {k}")
        (delivery,) = dispatch.schedule(item, [channel], start + k * step)
        found.append(delivery)
    db.session.commit()
    return found


def titles_in_arrival_order(double) -> list[str]:
    return [r.json()["title"] for r in sorted(double.requests, key=lambda r: r.at)]


def test_a_channel_is_claimed_one_batch_at_a_time(app):
    double = WebhookDouble("hook-secret")
    try:
        channel = webhook_channel(double)
        first = plan(channel, 3)
        claimed = dispatch.claim_due()
        assert claimed == [(d.id, 1) for d in first]
        more = plan(channel, 2, start=utcnow() - timedelta(seconds=10))
        assert dispatch.claim_due() == []  # its first batch is still queued
        assert dispatch.batches(claimed) == [[(d.id, 1) for d in first]]
        assert {reload(d).state for d in first} == {"queued"} and {reload(d).state for d in more} == {"scheduled"}
        # A worker gives them back untried (as a stopping one does): the claims end, counted.
        back = sending.record([sending.give_back(s, utcnow(), "released") for s in sending.prepare(claimed)])
        db.session.commit()
        assert len(back) == 3 and db.session.scalar(select(func.count()).select_from(DeliveryClaim)) == 0
        again = dispatch.claim_due()
        assert sorted(again) == sorted([(d.id, 2) for d in first] + [(d.id, 1) for d in more])
    finally:
        double.close()


def test_a_claimed_delivery_is_on_its_way_and_its_claim_holds_only_while_it_is_unchanged(app, drain, webhook_double):
    first, second = plan(webhook_channel(webhook_double), 2)
    claimed = dispatch.claim_due()
    assert claimed == [(first.id, 1), (second.id, 1)]
    # An editor can no longer cancel or move them.
    assert not dispatch.cancel(reload(first))
    assert not dispatch.reschedule(reload(first), utcnow() + timedelta(hours=1))
    db.session.commit()
    assert {reload(d).state for d in (first, second)} == {"queued"}
    # A change that raced past the claim (written here behind its back) makes the claim void.
    later = utcnow() + timedelta(hours=1)
    db.session.execute(Delivery.__table__.update().where(Delivery.id == second.id).values(next_attempt_at=later))
    db.session.commit()
    dispatch.enqueue(claimed)
    drain()
    assert [r.headers["Idempotency-Key"] for r in webhook_double.requests] == [reload(first).idempotency_key]
    second = reload(second)
    assert second.status == "scheduled" and second.attempt == 0 and second.claim is not None
    # The void claim ends with its lease (it still counts as an attempt); the new time stays.
    assert dispatch.sweep(utcnow() + timedelta(seconds=app.config["QUEUED_LEASE_SECONDS"] + 1)) == 1
    second = reload(second)
    assert (second.state, second.attempt, second.next_attempt_at) == ("scheduled", 1, later)


def test_batches_keep_each_channel_whole_and_in_order(make_app):
    app = make_app(BATCH_SIZE=4)
    with app.app_context():
        doubles = [WebhookDouble("hook-secret") for _ in range(3)]
        try:
            channels = [webhook_channel(d) for d in doubles]
            due = utcnow() - timedelta(minutes=5)
            planned = {c.id: plan(c, 3, start=due) for c in channels}
            jobs = dispatch.batches(dispatch.claim_due())
            assert sorted(len(j) for j in jobs) == [3, 3, 3]  # 3 + 3 > 4: a channel is never split
            for job in jobs:
                (channel_id,) = {db.session.get(Delivery, i).channel_id for i, _a in job}
                assert [i for i, _a in job] == [d.id for d in planned[channel_id]]
        finally:
            for d in doubles:
                d.close()


def test_sends_are_in_flight_together_up_to_the_cap_and_each_channel_keeps_its_order(make_app):
    app = make_app(IN_FLIGHT=6)
    with app.app_context():
        from workers.worker import run as run_worker

        doubles = [Gauge(0.15) for _ in range(10)]
        try:
            channels = [webhook_channel(d, timeout=5) for d in doubles]
            planned = {c.id: plan(c, 3) for c in channels}
            assert dispatch.tick() == 30
            began = time.monotonic()
            run_worker(app, burst=True)
            took = time.monotonic() - began
            assert all(reload(d).status == "sent" for ds in planned.values() for d in ds)
            # 30 sends of 0.15 s with 6 in flight: 0.75 s at best; one at a time would be 4.5 s.
            assert took < 2.5, f"30 sends took {took:.2f} s with 6 in flight"
            assert max(d.most for d in doubles) == 1  # never two at once on one channel
            assert sum(len(d.requests) for d in doubles) == 30
            for d in doubles:
                assert titles_in_arrival_order(d) == ["post 0", "post 1", "post 2"]
        finally:
            for d in doubles:
                d.close()


def test_the_in_flight_cap_holds(make_app):
    app = make_app(IN_FLIGHT=3)
    with app.app_context():
        from workers.worker import run as run_worker

        shared = Gauge(0.1)
        try:
            # Eight channels, all pointing at one receiver: it sees at most three at once.
            channels = [webhook_channel(shared, timeout=5, name=f"ch{n}") for n in range(8)]
            for c in channels:
                plan(c, 2)
            dispatch.tick()
            run_worker(app, burst=True)
            assert len(shared.requests) == 16 and shared.most == 3
        finally:
            shared.close()


def test_a_waiting_delivery_holds_its_channel_and_the_rest_keep_their_order(app, drain):
    double = WebhookDouble("hook-secret")
    try:
        double.answer(Answer(429, "slow down", {"Retry-After": "30"}))
        channel = webhook_channel(double)
        planned = plan(channel, 3)
        dispatch.tick()
        drain()
        first, second, third = (reload(d) for d in planned)
        assert first.status == "scheduled" and first.last_reason == "rate_limited"
        assert second.status == third.status == "scheduled" and second.last_reason == "held"
        assert len(double.requests) == 1
        assert dispatch.claim_due() == []  # the first waits for its Retry-After, the others behind it
        later = utcnow() + timedelta(seconds=31)  # the clock moved on past the Retry-After
        for _ in range(10):
            if {reload(d).status for d in planned} == {"sent"}:
                break
            dispatch.tick(later)
            drain()
        assert titles_in_arrival_order(double) == ["post 0", "post 0", "post 1", "post 2"]
        assert double.distinct_posts() == 3
    finally:
        double.close()


def test_the_shared_rate_limit_makes_deliveries_wait_their_turn(app, drain):
    double = WebhookDouble("hook-secret")
    try:
        channel = webhook_channel(double, rate_limit="2/3second")  # a wide window: slow machines too
        planned = plan(channel, 5)
        dispatch.tick()
        drain()
        states = [reload(d) for d in planned]
        assert [d.status for d in states] == ["sent", "sent", "scheduled", "scheduled", "scheduled"]
        assert states[2].last_reason == "rate_limited" and states[3].last_reason == "held"
        assert states[2].failures == 0  # waiting for a place is not a failure
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and {reload(d).status for d in planned} != {"sent"}:
            dispatch.tick()
            drain()
            time.sleep(0.05)
        times = sorted(r.at for r in double.requests)
        assert len(times) == 5 and titles_in_arrival_order(double) == [f"post {k}" for k in range(5)]
        for k in range(len(times) - 2):  # never three within one window
            assert times[k + 2] - times[k] >= 2.99, times
    finally:
        double.close()


def test_the_limit_is_shared_through_redis(app):
    # Two "workers" asking for places in the same window: together they get the limit, no more.
    got = []

    def take():
        with app.app_context():
            got.append(ratelimit.wait_seconds(4242, "5/minute"))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(w == 0 for w in got).count(True) == 5
    assert all(0 < w <= 60 for w in got if w)


def test_a_bad_limit_is_refused_by_the_parser():
    import pytest

    with pytest.raises(ratelimit.InvalidLimit):
        ratelimit.parse("fast please")
    assert [str(x) for x in ratelimit.parse("5/second;100/minute")] == ["5 per 1 second", "100 per 1 minute"]


def test_stopping_gives_back_what_was_not_started(make_app):
    app = make_app(IN_FLIGHT=1)
    with app.app_context():
        from workers.jobs import close_pool, deliver_batch

        slow = Gauge(0.5)
        try:
            channel = webhook_channel(slow, timeout=5)
            planned = plan(channel, 4)
            claimed = dispatch.claim_due()
            deliver_batch(claimed)
            time.sleep(0.2)  # the first is on its way
            close_pool(app)
            states = [reload(d) for d in planned]
            assert states[0].status == "sent"
            assert [d.status for d in states[1:]] == ["scheduled"] * 3
            assert {d.last_reason for d in states[1:]} == {"released"}
            reasons = db.session.scalars(select(DeliveryEvent.reason).where(DeliveryEvent.delivery_id == states[1].id))
            assert "released" in list(reasons)
            assert {i for i, _a in dispatch.claim_due()} == {d.id for d in states[1:]}  # claimed again at once
        finally:
            slow.close()


def test_a_worker_that_dies_with_a_held_batch_loses_nothing(app, drain):
    double = Double()
    try:
        from tests.factories import make_channel

        channel = make_channel("webhook", url=f"{double.url}/hook", secret="x", timeout=2)
        planned = plan(channel, 3)
        claimed = dispatch.claim_due()
        assert len(claimed) == 3  # and the worker that took them is gone: nothing sent
        later = utcnow() + timedelta(seconds=app.config["QUEUED_LEASE_SECONDS"] + 1)
        assert dispatch.sweep(later) == 3
        assert {reload(d).status for d in planned} == {"scheduled"}
    finally:
        double.close()


def test_the_pool_renews_the_lease_of_what_it_holds(make_app):
    app = make_app(IN_FLIGHT=1, QUEUED_LEASE_SECONDS=0.9)
    with app.app_context():
        from workers.jobs import close_pool, deliver_batch

        slow = Gauge(1.0)
        try:
            channel = webhook_channel(slow, timeout=5)
            planned = plan(channel, 3)
            deliver_batch(dispatch.claim_due())
            time.sleep(1.6)  # the first sent, the second on the wire, the third waits in the pool
            third = reload(planned[2])
            assert third.state == "queued" and third.claim.lease_until > utcnow()  # its first lease ran out at 0.9 s
            assert dispatch.sweep() == 0
            close_pool(app, finish=True)
            assert {reload(d).status for d in planned} == {"sent"} and len(slow.requests) == 3
        finally:
            slow.close()


def test_the_scheduler_claims_ahead_and_the_worker_sends_at_the_due_time(make_app, webhook_double):
    app = make_app(CLAIM_AHEAD_SECONDS=1.0)
    with app.app_context():
        from workers.jobs import close_pool

        channel = webhook_channel(webhook_double)
        due = utcnow() + timedelta(seconds=0.7)
        (delivery,) = plan(channel, 1, start=due)
        assert dispatch.claim_due() == []  # not due: the plain claim leaves it
        assert dispatch.tick() == 1  # due within the second: the scheduler takes it now
        from workers.worker import run as run_worker

        run_worker(app, burst=True)
        close_pool(app, finish=True)
        assert reload(delivery).status == "sent"
        (request,) = webhook_double.requests
        assert request.at >= due.timestamp(), "sent before its time"
        assert request.at - due.timestamp() < 0.5


def test_the_pool_writes_many_sends_in_few_transactions(make_app):
    from sqlalchemy import event

    app = make_app(IN_FLIGHT=8)
    with app.app_context():
        from workers.worker import run as run_worker

        doubles = [Gauge(0.05) for _ in range(8)]
        commits = []
        listener = lambda _conn: commits.append(1)  # noqa: E731
        try:
            channels = [webhook_channel(d, timeout=5) for d in doubles]
            planned = [d for c in channels for d in plan(c, 5)]
            assert dispatch.tick() == 40
            event.listen(db.engine, "commit", listener)
            run_worker(app, burst=True)
            event.remove(db.engine, "commit", listener)
            assert {reload(d).status for d in planned} == {"sent"}
            history = db.session.scalars(select(DeliveryEvent.reason).where(
                DeliveryEvent.delivery_id == planned[0].id).order_by(DeliveryEvent.id)).all()
            assert history == ["scheduled", "sending", "sent"]
            # One delivery at a time would commit twice per send (80); lanes that start together share one.
            assert len(commits) < 60, f"{len(commits)} commits for 40 sends"
        finally:
            for d in doubles:
                d.close()


def test_a_result_is_not_recorded_over_a_delivery_that_moved_meanwhile(app, webhook_double):

    channel = webhook_channel(webhook_double)
    first, second = plan(channel, 2)
    sends = sending.prepare(dispatch.claim_due())
    assert sending.start(sends) == {first.id, second.id}
    db.session.commit()
    # The sweep took the second back meanwhile (its worker looked dead).
    db.session.execute(Delivery.__table__.update().where(Delivery.id == second.id).values(status="scheduled"))
    db.session.commit()
    written = sending.record([sending.deliver(s) for s in sends])
    db.session.commit()
    assert [r.send.id for r in written] == [first.id]
    assert reload(first).status == "sent" and reload(second).status == "scheduled"
    sent_events = db.session.scalars(select(DeliveryEvent.delivery_id).where(DeliveryEvent.reason == "sent"))
    assert list(sent_events) == [first.id]


def test_items_published_in_one_batch_get_their_numbers_in_sending_order(app, drain, webhook_double):
    from publisher.models import Column, Item
    from tests.factories import make_item

    channel = webhook_channel(webhook_double)
    column = Column(name="Weekly", slug="weekly", first_issue=7)
    db.session.add(column)
    db.session.commit()
    start = utcnow() - timedelta(minutes=3)
    items = []
    for k in range(3):
        item = make_item(title=f"issue {k}", column_id=column.id)
        dispatch.schedule(item, [channel], start + timedelta(seconds=k))
        items.append(item)
    db.session.commit()
    dispatch.tick()
    drain()
    db.session.expire_all()
    assert [db.session.get(Item, i.id).issue_number for i in items] == [7, 8, 9]
    assert {db.session.get(Item, i.id).status for i in items} == {"published"}


def test_a_send_whose_start_cannot_be_written_is_not_sent_and_its_channel_waits(make_app, monkeypatch, webhook_double):
    """The database refuses the "sending" mark (it is away): no request leaves, and the channel's
    deliveries stay queued for their leases to bring back, in order."""
    from sqlalchemy.exc import OperationalError

    from channels.webhook import Webhook
    from workers.pool import Recorder

    app = make_app(IN_FLIGHT=1)
    with app.app_context():
        from workers.jobs import close_pool, deliver_batch

        channel = webhook_channel(webhook_double)
        planned = plan(channel, 3)
        monkeypatch.setattr(Webhook, "idempotent", False)  # so the mark must be committed first
        monkeypatch.setattr(Recorder, "ATTEMPTS", (0.01,))

        def away(_sends, now=None):
            raise OperationalError("UPDATE deliveries …", {}, Exception("server closed the connection"))

        monkeypatch.setattr(sending, "start", away)
        deliver_batch(dispatch.claim_due())
        close_pool(app, finish=True)
        assert webhook_double.requests == []
        assert {reload(d).state for d in planned} == {"queued"}
        later = utcnow() + timedelta(seconds=app.config["QUEUED_LEASE_SECONDS"] + 1)
        assert dispatch.sweep(later) == 3


def test_a_retried_delivery_still_goes_before_the_later_ones_of_its_channel(app, drain, webhook_double):
    channel = webhook_channel(webhook_double)
    first, second = plan(channel, 2)  # due a minute ago, one second apart
    # The first failed once and its retry is due now, after the second's due time.
    db.session.execute(Delivery.__table__.update().where(Delivery.id == first.id)
                       .values(attempt=1, next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert dispatch.tick() == 2
    drain()
    assert titles_in_arrival_order(webhook_double) == ["post 0", "post 1"]
