"""Queue health: jobs waiting, running and failed in real RQ, live and stale workers, scheduler
heartbeats, due deliveries and their lag from the database, and a clear answer when Redis is away."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from rq import SimpleWorker
from rq.utils import utcformat
from sqlalchemy import update

from publisher import dispatch
from publisher.extensions import db
from publisher.models import Channel, utcnow
from tests.conftest import wait_for
from tests.factories import make_channel, scheduled, set_organisation
from tests.test_web_items import english_client, logged_in
from workers import health
from workers.queues import delivery_queue, get_redis
from workers.scheduler import Scheduler

DUE = datetime(2024, 1, 1, 6, 5, 3, tzinfo=UTC)  # 14:05:03 in Asia/Shanghai


def explode(words: str) -> None:
    """A job that fails, as a bug in a worker would."""
    raise RuntimeError(words)


def exercise_the_api(api, admin: dict, editor: dict) -> None:
    """For tests/test_openapi.py: GET /api/queue answers as documented, for admins only; with a failed
    job, a live worker and a scheduler in it, so that every part of the answer is checked."""
    queue = delivery_queue()
    queue.enqueue(explode, "checked against the schema")
    SimpleWorker([queue], connection=get_redis()).work(burst=True, with_scheduler=False)
    worker = SimpleWorker([queue], connection=get_redis())
    worker.register_birth()
    health.beat(get_redis(), queue.name, "documented", ttl=30)
    try:
        body = api.call("get", "/api/queue", 200, admin).get_json()
    finally:
        worker.register_death()
    assert body["redis"]["ok"] and body["queue"]["name"].endswith("-deliveries")
    assert body["failed_jobs"] and body["workers"] and body["schedulers"]
    api.call("get", "/api/queue", 403, editor)


def queue_json(app, c=None) -> dict:
    c = c or logged_in(app, "admin")
    resp = c.get("/api/queue")
    assert resp.status_code == 200
    return resp.get_json()


def test_only_admins(app, users):
    for role in ("editor", "reviewer"):
        c = logged_in(app, role)
        assert c.get("/settings/queue").status_code == 403 and c.get("/settings/queue/panel").status_code == 403
        assert c.get("/api/queue").status_code == 403
    anonymous = english_client(app)
    assert "/login" in anonymous.get("/settings/queue").headers["Location"]
    assert anonymous.get("/api/queue").status_code == 401
    admin = logged_in(app, "admin")
    assert 'href="/settings/queue"' in admin.get("/deliveries").text
    assert 'href="/settings/queue"' in admin.get("/settings").text


def test_waiting_then_run_by_a_burst_worker(app, users, drain):
    channel = make_channel("feed", name="News")
    ids = [d.id for d in scheduled([channel] * 3)]
    assert queue_json(app)["deliveries"]["due"] == 3
    assert dispatch.tick() == 3
    body = queue_json(app)
    # One job: the three deliveries of the channel travel together, in order.
    assert body["queue"]["waiting"] == 1 and body["queue"]["running"] == 0 and body["deliveries"]["due"] == 0
    assert body["deliveries"]["by_status"]["queued"] == 3
    page = logged_in(app, "admin").get("/settings/queue").text
    assert '<dd id="waiting">1</dd>' in page and 'id="no-workers"' in page and 'id="no-schedulers"' in page
    drain()
    body = queue_json(app)
    assert body["queue"]["waiting"] == 0 and body["deliveries"]["by_status"]["sent"] == len(ids)
    assert body["workers"] == []  # a burst worker says goodbye when it is done


def test_a_failing_job_shows_with_its_error(app, users):
    queue = delivery_queue()
    queue.enqueue(explode, "the disk is full", job_id="broken-1")
    SimpleWorker([queue], connection=get_redis()).work(burst=True, with_scheduler=False)
    body = queue_json(app)
    assert body["queue"]["failed"] == 1
    (job,) = body["failed_jobs"]
    assert job["id"] == "broken-1" and job["error"] == "RuntimeError: the disk is full"
    page = logged_in(app, "admin").get("/settings/queue/panel")
    assert page.headers["Cache-Control"] == "no-store" and "<html" not in page.text
    assert "broken-1" in page.text and "RuntimeError: the disk is full" in page.text


def test_a_live_worker_and_a_stale_one(app, users):
    queue = delivery_queue()
    live = SimpleWorker([queue], connection=get_redis(), name="live-one")
    stale = SimpleWorker([queue], connection=get_redis(), name="stale-one")
    live.register_birth()
    stale.register_birth()
    live.set_state("idle")
    try:
        old = utcnow() - timedelta(seconds=stale.worker_ttl + 60)
        get_redis().hset(stale.key, "last_heartbeat", utcformat(old))
        workers = {w["name"]: w for w in queue_json(app)["workers"]}
        assert set(workers) == {"live-one", "stale-one"}
        assert workers["live-one"]["stale"] is False and workers["stale-one"]["stale"] is True
        assert workers["live-one"]["state"] == "idle" and workers["live-one"]["birth"].endswith("+00:00")
        page = logged_in(app, "admin").get("/settings/queue").text
        assert page.count("stale: no heartbeat for too long") == 1 and 'data-worker="live-one"' in page
    finally:
        live.register_death()
        stale.register_death()


@pytest.mark.slow
def test_a_worker_process_shows_while_it_runs(app, users, processes):
    proc = processes.start("worker")
    # Registered first, then idle: wait for the state it settles in.
    (worker,) = wait_for(lambda: [w for w in queue_json(app)["workers"] if w["state"] == "idle"], timeout=30)
    assert worker["stale"] is False and worker["last_heartbeat"] and worker["birth"]
    proc.terminate()
    proc.wait(timeout=15)
    assert wait_for(lambda: queue_json(app)["workers"] == [], timeout=15)


def test_scheduler_heartbeats(app, users):
    scheduler = Scheduler(app)
    scheduler.tick_once()
    (beat,) = queue_json(app)["schedulers"]
    assert beat["name"] == scheduler.name and beat["ttl"] >= 10
    assert 'id="schedulers"' in logged_in(app, "admin").get("/settings/queue").text
    name = delivery_queue().name
    health.beat(get_redis(), name, "short-lived", ttl=0.3)
    assert {s["name"] for s in health.schedulers(get_redis(), name)} == {scheduler.name, "short-lived"}
    time.sleep(0.5)
    assert [s["name"] for s in health.schedulers(get_redis(), name)] == [scheduler.name]


def test_due_deliveries_their_lag_and_the_held_ones(app, users):
    set_organisation(timezone="Asia/Shanghai")
    news, off = make_channel("feed", name="News"), make_channel("feed", name="Off")
    scheduled([news], DUE)
    scheduled([news], utcnow() - timedelta(seconds=5))
    scheduled([news], utcnow() + timedelta(hours=1))  # not due yet
    scheduled([off], DUE)
    db.session.execute(update(Channel).where(Channel.id == off.id).values(enabled=False))
    db.session.commit()
    d = queue_json(app)["deliveries"]
    assert d["due"] == 2 and d["held"] == 1 and d["oldest_due_at"] == DUE.isoformat()
    assert d["lag_seconds"] >= (utcnow() - DUE).total_seconds() - 60
    assert d["by_status"]["scheduled"] == 4 and set(d["by_status"]) >= {"sent", "failed", "unconfirmed"}
    page = logged_in(app, "admin").get("/settings/queue").text
    assert '<dd id="due">2</dd>' in page and '<dd id="held">1</dd>' in page
    assert "The oldest was due at 2024-01-01 14:05:03." in page  # in the organisation's zone


def test_redis_down_is_explained_not_a_500(app, users, make_app):
    down = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    scheduled([make_channel("feed")], DUE)
    c = logged_in(down, "admin")
    started = time.monotonic()
    resp = c.get("/settings/queue")
    assert resp.status_code == 200 and time.monotonic() - started < 5
    assert 'id="redis-down"' in resp.text and "Redis cannot be reached" in resp.text
    assert '<dd id="due">1</dd>' in resp.text  # the database half still shows
    body = queue_json(down, c)
    assert body["redis"]["ok"] is False and "Error" in body["redis"]["error"]
    assert body["queue"] is None and body["workers"] == [] and body["deliveries"]["due"] == 1


def test_the_page_refreshes_itself(app, users):
    page = logged_in(app, "admin").get("/settings/queue").text
    assert 'data-url="/settings/queue/panel"' in page and "queue.js" in page


def test_bearer_tokens(app, users):
    from publisher.security import create_token

    c = english_client(app)
    tokens = {role: create_token(users[role], "queue test")[1] for role in ("admin", "editor")}
    db.session.commit()
    assert c.get("/api/queue", headers={"Authorization": f"Bearer {tokens['admin']}"}).get_json()["redis"]["ok"]
    assert c.get("/api/queue", headers={"Authorization": f"Bearer {tokens['editor']}"}).status_code == 403
