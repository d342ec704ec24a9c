"""The delivery engine under failures, with real processes: workers killed mid-send, Redis flushed
or stopped, schedulers racing, a channel that rate-limits. Each test says what it saw."""

from __future__ import annotations

import os
import random
import re
import time
from collections import Counter
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from publisher import dispatch
from publisher.extensions import db
from publisher.models import Delivery, DeliveryEvent, Item, utcnow
from tests.conftest import wait_for
from tests.doubles import Answer, WebhookDouble
from tests.factories import make_channel
from tests.failure_kit import (
    RateLimitingDouble,
    RedisServer,
    busiest_window,
    fresh_session,
    install_plain_channel,
    keys_of,
    quiet,
    status_counts,
    unfinished,
    wait_until,
)
from tests.test_processes import Watched, free_port, start

pytestmark = pytest.mark.slow

SECRET = "hook-secret"


def plan(items_channels: list[tuple[list, object]], title: str = "n°") -> None:
    """Items scheduled in one commit: (channels, due_at) for each item."""
    items = [Item(title=f"{title}{k}", body="b") for k in range(len(items_channels))]
    db.session.add_all(items)
    db.session.flush()
    for item, (channels, due) in zip(items, items_channels, strict=True):
        dispatch.schedule(item, channels, due)
    db.session.commit()


def fresh_query(query):
    fresh_session()
    return db.session.execute(query)


def deliveries_by_channel(channel_ids) -> list[Delivery]:
    fresh_session()
    return list(db.session.scalars(select(Delivery).where(Delivery.channel_id.in_(channel_ids))))


def events(reason: str) -> Counter:
    """(delivery id, attempt) -> how many events with this reason."""
    fresh_session()
    rows = db.session.execute(select(DeliveryEvent.delivery_id, DeliveryEvent.attempt)
                              .where(DeliveryEvent.reason == reason))
    return Counter((i, a) for i, a in rows)


# --- 1. workers killed with SIGKILL during a run of 2,000 deliveries ---------------------------------

KILLS = 10
WAVE = 50  # items planned at a time
RUN_LIMIT = 150  # seconds; a healthy machine needs far less
ITEMS = 1000  # each on one idempotent and one non-idempotent channel: 2,000 deliveries


def test_workers_killed_mid_send_lose_nothing_and_repeat_only_what_they_flag(app, processes, tmp_path):
    install_plain_channel(tmp_path, processes)
    # Short leases (the pool renews the queued lease of what it holds; sending: 2 × timeout + margin
    # = 3 s), so what a killed worker held comes back quickly and its channels go on.
    processes.env.update(PUBLISHER_QUEUED_LEASE_SECONDS="4", PUBLISHER_LEASE_MARGIN_SECONDS="1")
    # A few milliseconds per answer: a kill lands while requests are on the wire.
    idem = quiet(WebhookDouble(SECRET, default=Answer(200, {"ok": True}, delay=0.004)))
    plain = quiet(WebhookDouble(SECRET, default=Answer(200, {"ok": True}, delay=0.004)))
    try:
        idem_channels = [make_channel("webhook", f"hook {n}", url=f"{idem.url}/hook", secret=SECRET, timeout=1)
                         for n in range(4)]
        plain_channels = [make_channel("plain-test", f"plain {n}", url=f"{plain.url}/hook", secret=SECRET,
                                       timeout=1) for n in range(4)]
        workers = start(processes, "scheduler", "worker", "worker")[1:]

        # The items are fed in waves as the earlier ones go out, so the backlog stays well inside the
        # queued lease on a slow machine too; the kills follow the progress, spread over the whole run.
        began = time.monotonic()
        planned = 0
        kills = []  # (seconds into the run, deliveries finished, deliveries unfinished) at each kill
        rng = random.Random(7)
        while len(kills) < KILLS:
            assert time.monotonic() - began < RUN_LIMIT, f"the run is too slow: {kills}, {status_counts()}"
            left = unfinished()
            if planned < ITEMS and left < 2 * WAVE:
                plan([([idem_channels[k % 4], plain_channels[k % 4]], utcnow()) for k in range(WAVE)])
                planned += WAVE
                continue
            done = 2 * planned - left
            if done >= 2 * ITEMS * (len(kills) + 1) / (KILLS + 1):
                victim = rng.choice([w for w in workers if w.proc.poll() is None])
                victim.proc.kill()  # SIGKILL: no handler runs, nothing is cleaned up
                victim.proc.wait()
                kills.append((round(time.monotonic() - began, 1), done, left))
                workers.append(Watched(processes.start("worker")))
            time.sleep(0.2)
        # The last kill's deliveries come back when their lease runs out (sending: 3 s; queued: 20 s).
        finished = wait_until(lambda: unfinished() == 0, timeout=RUN_LIMIT - (time.monotonic() - began) + 25,
                              interval=0.5)
        counts = status_counts()
        print(f"\n{KILLS} kills at (s, deliveries finished, unfinished): {kills}; "
              f"all done after {time.monotonic() - began:.1f}s: {counts}")
        assert planned == ITEMS and all(left > 0 for *_, left in kills), f"a kill came after the run ended: {kills}"
        assert finished, f"deliveries left unfinished after the leases passed: {counts}"

        lost = events("worker_lost")
        print(f"worker_lost events: {len(lost)}; requests: idempotent {len(idem.requests)}, "
              f"plain {len(plain.requests)}")
        assert lost, "no kill landed in the middle of a send: the test did not test what it should"

        # The idempotent receiver: every delivery sent, one key per item, each shown once.
        hooks = deliveries_by_channel([c.id for c in idem_channels])
        assert Counter(d.status for d in hooks) == {"sent": ITEMS}, Counter(d.status for d in hooks)
        keys_by_item: dict[int, set[str]] = {}
        for r in idem.requests:
            keys_by_item.setdefault(r.json()["item_id"], set()).add(r.headers["Idempotency-Key"])
        changed = {i: k for i, k in keys_by_item.items() if len(k) > 1}
        assert not changed, f"{len(changed)} items reached the idempotent receiver under several keys: " \
                            f"it shows them twice; e.g. {list(changed.items())[:3]}"
        expected = {d.idempotency_key for d in hooks}
        missing = expected - set(idem.posts)
        assert not missing, f"{len(missing)} deliveries marked sent never reached the idempotent receiver"
        assert set(idem.posts) <= expected, "the idempotent receiver got keys that belong to no delivery"
        repeats = sum(n - 1 for n in keys_of(idem.requests).values())
        print(f"idempotent receiver: {len(idem.posts)} posts shown, {repeats} repeated requests dropped")

        # The receiver that cannot drop repeats: whatever arrived twice must be flagged unconfirmed.
        plains = deliveries_by_channel([c.id for c in plain_channels])
        by_status = Counter(d.status for d in plains)
        assert set(by_status) <= {"sent", "unconfirmed"}, by_status
        received = keys_of(plain.requests)
        status_of = {d.idempotency_key: d.status for d in plains}
        unflagged = {k: n for k, n in received.items() if n > 1 and status_of.get(k) != "unconfirmed"}
        assert not unflagged, f"sent more than once without being flagged unconfirmed: {unflagged}"
        never = [d.id for d in plains if d.status == "sent" and received[d.idempotency_key] == 0]
        assert not never, f"marked sent but never received: deliveries {never[:10]}"
        reasons = Counter(d.last_reason for d in plains if d.status == "unconfirmed")
        print(f"plain receiver: {by_status}; unconfirmed because {dict(reasons)}; "
              f"received twice: {sum(1 for n in received.values() if n > 1)}")
    finally:
        idem.close()
        plain.close()


# --- 2. Redis loses everything in the middle of a run ------------------------------------------------

QUEUED_LEASE = 3.0
MARGIN = 1.0
TIMEOUT = 1  # the channels' timeout: a send's lease is 2 × TIMEOUT + MARGIN


@pytest.fixture
def own_redis(tmp_path, processes):
    """A redis-server of this test's own, which the subprocesses use: it may be flushed or stopped."""
    server = RedisServer(tmp_path / "redis").start()
    processes.env["PUBLISHER_REDIS_URL"] = server.url
    yield server
    processes.stop_all()  # before the server goes: nothing waits on it at the end
    server.stop()


def test_flushall_mid_run_delays_deliveries_by_one_lease_at_most(app, processes, own_redis):
    # One send in flight per worker and a job per channel: the workers hold two jobs each, and
    # the others wait in Redis, where the flush loses them.
    processes.env.update(PUBLISHER_QUEUED_LEASE_SECONDS=str(QUEUED_LEASE), PUBLISHER_LEASE_MARGIN_SECONDS=str(MARGIN),
                         PUBLISHER_IN_FLIGHT="1", PUBLISHER_BATCH_SIZE="1")
    hook = quiet(WebhookDouble(SECRET, default=Answer(200, {"ok": True}, delay=0.02)))
    try:
        channels = [make_channel("webhook", f"hook {n}", url=f"{hook.url}/hook", secret=SECRET, timeout=TIMEOUT)
                    for n in range(8)]
        procs = start(processes, "scheduler", "worker", "worker")
        due = utcnow()
        plan([([channels[k % 8]], due) for k in range(80)])
        ids = list(fresh_query(select(Delivery.id)).scalars())

        # Flush once the run is under way and work is waiting in Redis.
        redis_client = own_redis.client()
        wait_for(lambda: len(hook.posts) >= 10, timeout=30)
        waiting = sum(redis_client.llen(k) for k in redis_client.scan_iter("rq:queue:*"))
        redis_client.flushall()
        flushed_at = time.time()
        sent_before = len(hook.posts)

        lease = max(QUEUED_LEASE, 2 * TIMEOUT + MARGIN)
        done = wait_until(lambda: status_counts(ids).get("sent") == len(ids), timeout=lease + 5 + 10)
        counts = status_counts(ids)
        last = max(r.at for r in hook.requests) - flushed_at
        print(f"\nflushed with {sent_before} of {len(ids)} sent and {waiting} jobs waiting in Redis; "
              f"the last delivery went out {last:.1f}s after the flush (lease {lease:g}s); {counts}")
        assert waiting > 0, "nothing was waiting in Redis when it was flushed: the test did not test the loss"
        assert done, f"not every delivery went out after the flush: {counts}"
        assert last <= lease + 5, f"the last delivery went out {last:.1f}s after the flush, more than the " \
                                  f"lease ({lease:g}s) plus five seconds"
        keys = {d.idempotency_key for d in deliveries_by_channel([c.id for c in channels])}
        assert set(hook.posts) == keys, f"{len(keys - set(hook.posts))} deliveries never reached the receiver"
        lost = {i for i, _ in events("queue_lost")}
        print(f"deliveries taken back after their job was lost: {len(lost)}")
        assert all(p.proc.poll() is None for p in procs), [(p.proc.returncode, p.log[-2000:]) for p in procs]
    finally:
        hook.close()


# --- 3. Redis stopped for twenty seconds -------------------------------------------------------------

OUTAGE = 20.0


def test_redis_outage_workers_and_scheduler_recover_and_healthz_tells_the_truth(app, processes, own_redis):
    processes.env.update(PUBLISHER_WEB_WORKERS="1", PUBLISHER_IN_FLIGHT="1", PUBLISHER_QUEUED_LEASE_SECONDS="10")
    port = free_port()
    hooks = [quiet(WebhookDouble(SECRET, default=Answer(200, {"ok": True}, delay=0.3))) for _ in range(6)]
    hooks[0].answer(Answer(200, {"ok": True}, delay=2))  # the first send is still on the wire when Redis stops
    try:
        channels = [make_channel("webhook", f"hook {n}", url=f"{h.url}/hook", secret=SECRET, timeout=5)
                    for n, h in enumerate(hooks)]
        scheduler, *workers = start(processes, "scheduler", "worker", "worker")
        web = Watched(processes.start("web", "--port", str(port)))
        health = f"http://127.0.0.1:{port}/healthz"

        def probe() -> tuple[int, dict, float]:
            began = time.monotonic()
            try:
                resp = requests.get(health, timeout=5)
                return resp.status_code, resp.json(), time.monotonic() - began
            except requests.RequestException as exc:
                return 0, {"error": type(exc).__name__}, time.monotonic() - began

        assert wait_until(lambda: probe()[0] == 200, timeout=20), f"web never healthy: {probe()}\n{web.log}"
        plan([([channels[0]], utcnow())], title="before")
        (before,) = fresh_query(select(Delivery.id)).scalars()
        wait_for(lambda: hooks[0].requests, timeout=15)
        pids = [p.proc.pid for p in (scheduler, *workers)]

        own_redis.stop()  # in the middle of a job: the worker's send ends while Redis is away
        stopped_at = time.time()
        t0 = utcnow()
        # Due during the outage, and after it: one every two seconds for twenty-odd seconds, long
        # enough for a worker that is still waiting out its reconnection backoff to take part.
        plan([([channels[k % 6]], t0 + timedelta(seconds=3 + k)) for k in range(12)], title="during")
        plan([([channels[k % 6]], t0 + timedelta(seconds=OUTAGE + 1 + 2 * k)) for k in range(12)], title="after")
        ids = list(fresh_query(select(Delivery.id).join(Item).where(Item.title.not_like("before%"))).scalars())

        probes = []
        while time.time() - stopped_at < OUTAGE:
            probes.append(probe())
            time.sleep(1)
        logs_at_restart = [len(w.log) for w in workers]
        own_redis.start()
        restarted_at = time.time()
        wrong = [p for p in probes if p[0] != 503 or not str(p[1].get("checks", {}).get("redis")).startswith("error")
                 or p[1]["checks"].get("database") != "ok" or p[2] > 3]
        print(f"\n/healthz during the outage: {len(probes)} probes, e.g. {probes[0]}")
        assert probes and not wrong, f"/healthz during the outage should be a quick 503 naming Redis: {wrong}"
        sent_during = [r for h in hooks for r in h.requests if stopped_at < r.at < restarted_at]
        assert not sent_during, f"{len(sent_during)} requests went out while Redis was down"
        assert status_counts([before]) == {"sent": 1}, \
            f"the send in flight when Redis stopped did not end as sent: {status_counts([before])}"

        healthy = wait_until(lambda: probe()[0] == 200, timeout=10)
        print(f"/healthz after the restart: {probe()[:2]}")
        assert healthy, f"/healthz still unhealthy 10s after Redis came back: {probe()}"

        done = wait_until(lambda: status_counts(ids).get("sent") == len(ids), timeout=40)
        counts = status_counts(ids)
        ends = [r.at - restarted_at for h in hooks for r in h.requests if r.at > restarted_at]
        print(f"after the restart: {counts}; the last went out {max(ends, default=0):.1f}s after it")
        alive = [(p.proc.pid, p.proc.poll()) for p in (scheduler, *workers)]
        assert all(code is None for _, code in alive) and [pid for pid, _ in alive] == pids, \
            f"a process died during the outage: {alive}\n" + "\n".join(
                "".join(line for line in p.log.splitlines(True) if "deliver" not in line)[-3000:]
                for p in (scheduler, *workers) if p.proc.poll() is not None)
        assert done, f"deliveries due during and after the outage did not all go out: {counts}\n" + \
            "\n".join(w.log[-3000:] for w in workers)
        assert sum(n for h in hooks for n in h.posts.values()) == len(ids) + 1, "a post went out twice"
        assert "ticking normally again" in scheduler.log, scheduler.log[-3000:]
        idle = [n for n, (w, at) in enumerate(zip(workers, logs_at_restart, strict=True))
                if "workers.jobs.deliver" not in w.log[at:]]
        assert not idle, f"worker(s) {idle} took no job after Redis came back:\n" + \
            "\n".join(workers[n].log[-3000:] for n in idle)
    finally:
        for h in hooks:
            h.close()


# --- 4. three schedulers and four workers racing on PostgreSQL ---------------------------------------

@pytest.mark.skipif(not os.environ.get("PUBLISHER_DATABASE_URL", "").startswith("postgresql"),
                    reason="needs PostgreSQL: SQLite serialises every writer, so schedulers cannot race "
                           "(CI's second pass, on PostgreSQL, runs it)")
def test_three_schedulers_four_workers_claim_and_send_each_delivery_once(app, processes):
    processes.env.update(PUBLISHER_CLAIM_BATCH="25", PUBLISHER_QUEUED_LEASE_SECONDS="20")
    hook = quiet(WebhookDouble(SECRET, default=Answer(200, {"ok": True}, delay=0.002)))
    try:
        channels = [make_channel("webhook", f"hook {n}", url=f"{hook.url}/hook", secret=SECRET, timeout=2)
                    for n in range(6)]
        procs = start(processes, "scheduler", "scheduler", "scheduler", "worker", "worker", "worker", "worker")
        now = utcnow()
        # 150 due at once (the schedulers race for them), 250 more over the next three seconds.
        plan([([channels[k % 6]], now + timedelta(seconds=0 if k < 150 else 3 * (k - 150) / 250))
              for k in range(400)])
        ids = list(fresh_query(select(Delivery.id)).scalars())
        done = wait_until(lambda: status_counts(ids).get("sent") == len(ids), timeout=60, interval=0.5)
        time.sleep(0.5)  # a second claim or send would show within ten ticks
        counts = status_counts(ids)
        assert done, f"not all sent: {counts}"

        # Every claim names a new attempt, and every claim that ends leaves a line of history at its
        # attempt (started, given back or taken back): two schedulers claiming the same (delivery,
        # attempt) would show as more deliveries enqueued than (delivery, attempt) pairs.
        fresh_session()
        claims = set(db.session.execute(select(DeliveryEvent.delivery_id, DeliveryEvent.attempt)
                                        .where(DeliveryEvent.attempt > 0)).all())
        started = events("sending")
        twice = {k: n for k, n in started.items() if n > 1}
        sent = events("sent")
        sent_per_delivery = Counter(i for i, _ in sent.elements())
        requests_per_key = keys_of(hook.requests)
        per_scheduler = [sum(int(n) for n in re.findall(r"enqueued (\d+) deliveries", p.log)) for p in procs[:3]]
        print(f"\n{len(claims)} claims of {len(ids)} deliveries ({len(claims) - len(ids)} after a lease ran out); "
              f"{len(hook.requests)} requests; claims per scheduler: "
              f"{per_scheduler}")
        for p in procs:
            assert p.proc.poll() is None and "Traceback" not in p.log, p.log[-3000:]
        assert sum(per_scheduler) == len(claims), "a (delivery, attempt) was claimed more than once"
        assert not twice, f"(delivery, attempt) started more than once: {list(twice.items())[:10]}"
        assert set(sent_per_delivery) == set(ids) and set(sent_per_delivery.values()) == {1}, \
            f"deliveries without exactly one 'sent' event: " \
            f"{[(i, sent_per_delivery[i]) for i in ids if sent_per_delivery[i] != 1][:10]}"
        repeated = {k: n for k, n in requests_per_key.items() if n > 1}
        assert not repeated and len(requests_per_key) == len(ids), \
            f"{len(repeated)} deliveries sent more than once, {len(ids) - len(requests_per_key)} never: " \
            f"{list(repeated.items())[:10]}"
    finally:
        hook.close()


# --- 5. a channel's rate limit, shared by every worker -----------------------------------------------

def test_shared_rate_limit_keeps_three_workers_under_the_service_limit(app, processes):
    # One batch at a time per channel: small batches pass the channel from worker to worker, so a
    # limit counted in each process instead of in Redis lets bursts through.
    processes.env.update(PUBLISHER_BATCH_SIZE="4")
    service = quiet(RateLimitingDouble(SECRET, limit=SERVICE_LIMIT, window=1.0))
    try:
        channel = make_channel("webhook", "limited", url=f"{service.url}/hook", secret=SECRET, timeout=2,
                               rate_limit="5/second")
        start(processes, "scheduler", "worker", "worker", "worker")
        plan([([channel], utcnow()) for _ in range(30)])
        ids = list(fresh_query(select(Delivery.id)).scalars())
        done = wait_until(lambda: status_counts(ids).get("sent") == len(ids), timeout=20, interval=0.25)
        busiest, at = busiest_window([r.at for r in service.requests], 1.0)
        took = max(r.at for r in service.requests) - min(r.at for r in service.requests)
        print(f"\n{len(service.requests)} requests over {took:.1f}s, {len(service.refused)} refused with 429; "
              f"busiest second: {busiest} requests (service limit {SERVICE_LIMIT}, channel limit 5)")
        assert busiest <= SERVICE_LIMIT, f"{busiest} requests within one second (from {at:.2f}); the service " \
                                         f"allows {SERVICE_LIMIT} and answered 429 {len(service.refused)} times"
        assert done, f"not all sent: {status_counts(ids)}"
    finally:
        service.close()


SERVICE_LIMIT = 7  # the channel's limit (5/second) plus room for requests bunched up on the way
