"""The calendar's answers are cached until anything they show changes, and never stale after a write."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import event, update

from publisher import calendar_cache, dispatch, schedule
from publisher.extensions import db
from publisher.models import Delivery, DeliveryStatus, Item, Role, User, utcnow
from tests.factories import make_channel
from tests.test_calendar_page import around_now, events, plan, sign_in, utc, weekly_column


@pytest.fixture
def editor(client):
    user = User(email="editor@example.com", password_hash="-", role=Role.EDITOR)
    db.session.add(user)
    db.session.commit()
    sign_in(client, user)
    return client


def titles(client, **params) -> list[str]:
    return sorted(e["extendedProps"]["itemTitle"] for e in events(client, **params)
                  if e["extendedProps"]["kind"] == "item")


def statements_of(app, call) -> int:
    seen = []
    listener = lambda *args: seen.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        call()
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    return len([s for s in seen if "items" in s])


def test_a_repeat_is_served_from_the_cache(app, editor):
    plan("first", utc(2030, 3, 5, 12), [make_channel()])
    assert titles(editor) == ["first"]
    assert statements_of(app, lambda: titles(editor)) == 0  # the same month again: no item query
    assert statements_of(app, lambda: titles(editor, origin="pgc")) > 0  # other filters: another answer


def test_every_write_is_seen_at_once(app, editor):
    channel = make_channel()
    item = plan("first", utc(2030, 3, 5, 12), [channel])
    assert titles(editor) == ["first"]

    item.title = "renamed"  # an ORM change
    db.session.commit()
    assert titles(editor) == ["renamed"]

    db.session.execute(update(Item).where(Item.id == item.id).values(title="again"))  # an ORM-enabled UPDATE
    db.session.commit()
    assert titles(editor) == ["again"]

    delivery = db.session.query(Delivery).one()
    assert dispatch._move(delivery.id, delivery.attempt, (DeliveryStatus.SCHEDULED,), status=DeliveryStatus.FAILED)
    db.session.commit()  # how the worker moves deliveries
    (got,) = events(editor)
    assert got["extendedProps"]["deliveries"][0]["status"] == DeliveryStatus.FAILED

    channel.name = "Renamed channel"
    db.session.commit()
    (got,) = events(editor)
    assert got["extendedProps"]["deliveries"][0]["channel"] == "Renamed channel"


def test_a_rollback_does_not_invalidate(app, editor):
    plan("first", utc(2030, 3, 5, 12), [make_channel()])
    titles(editor)
    before = calendar_cache.version()
    item = db.session.query(Item).one()
    item.title = "never saved"
    db.session.flush()
    db.session.rollback()
    assert calendar_cache.version() == before
    assert titles(editor) == ["first"]


def test_answers_expire_when_the_first_counted_slot_passes(app):
    column = weekly_column()
    now = utcnow()
    numbering = schedule.Numbering([column], now, now + timedelta(days=40), now)
    first = numbering.slots[0][1].at
    assert 0 < numbering.fresh_for == (first - now).total_seconds() <= 7 * 24 * 3600
    past = schedule.Numbering([column], now - timedelta(days=60), now - timedelta(days=30), now)
    assert past.fresh_for == float("inf")  # a month in the past does not move with the clock


def test_slots_move_on_after_the_cache_expires(app, editor):
    weekly_column()
    got = events(editor, **around_now())
    assert any(e["extendedProps"]["kind"] == "slot" for e in got)
    keys = calendar_cache.get_redis().keys("test:calendar:*")
    stored = [k for k in keys if not k.endswith(b":version")]
    assert stored and all(0 < calendar_cache.get_redis().pttl(k) <= calendar_cache.MAX_AGE * 1000 for k in stored)


def test_without_redis_the_calendar_still_answers(app, make_app):
    down = make_app(REDIS_URL="redis://127.0.0.1:9/0")
    with down.app_context():
        assert calendar_cache.version() == ""
        calls = []
        assert calendar_cache.cached("", "k", lambda: (calls.append(1) or b"[]", 10)) == b"[]"
        assert calendar_cache.cached("", "k", lambda: (calls.append(1) or b"[]", 10)) == b"[]"
        assert len(calls) == 2


def test_a_claim_that_finds_nothing_keeps_the_cache(app, editor):
    plan("first", utc(2030, 3, 5, 12), [make_channel()])
    titles(editor)
    before = calendar_cache.version()
    assert dispatch.claim_due(utcnow()) == []  # nothing is due yet: the scheduler's usual tick
    assert dispatch.sweep(utcnow()) == 0
    assert calendar_cache.version() == before
    assert dispatch.claim_due(utc(2030, 3, 6)) != []  # now it is due: the calendar shows "queued"
    assert calendar_cache.version() != before


def test_a_busy_worker_folds_its_bumps(make_app, app):
    worker_app = make_app(CALENDAR_BUMP_EVERY=0.3)
    with worker_app.app_context():
        start = int(calendar_cache.version())
        for _ in range(20):  # twenty commits in a burst: one bump now, one at the end of the window
            calendar_cache.bump()
        assert int(calendar_cache.version()) == start + 1
        time.sleep(0.45)
        assert int(calendar_cache.version()) == start + 2  # the changes after the first are not lost
