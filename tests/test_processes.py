"""The delivery core as it runs in production: `publisher scheduler`, `worker` and `up` as real
subprocesses, on the configured database and Redis, sending to HTTP doubles."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
import redis
import requests
from sqlalchemy import func, select

from publisher import create_app, dispatch, embedded_redis
from publisher.extensions import db
from publisher.models import Delivery, DeliveryClaim, DeliveryEvent, Item, utcnow
from tests.conftest import REPO, Processes, wait_for
from tests.doubles import Answer, WebhookDouble
from tests.factories import make_channel, scheduled, set_organisation, webhook_channel

pytestmark = pytest.mark.slow

SCHEDULER_READY = "scheduler started"
WORKER_READY = "Listening on"


class Watched:
    """A subprocess whose stderr is read by a thread: a chatty process never blocks on a full pipe,
    and a test can wait for a line of its log or show the log when it fails."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace"))

    @property
    def log(self) -> str:
        if self.proc.poll() is not None:
            self.reader.join(timeout=5)  # the last lines, up to the end of the pipe
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 20.0) -> None:
        wait_for(lambda: text in self.log or self.proc.poll() is not None, timeout)
        assert text in self.log, f"exited with {self.proc.returncode} before {text!r}:\n{self.log}"


def start(processes: Processes, *commands: str) -> list[Watched]:
    """Start `publisher <command>` for each command at once; return when all are ready."""
    started = [Watched(processes.start(command)) for command in commands]
    for command, watched in zip(commands, started, strict=True):
        watched.wait_for_line(WORKER_READY if command == "worker" else SCHEDULER_READY)
    return started


def fresh(query):
    """Run a query on a new snapshot: the subprocesses change the rows under us."""
    db.session.rollback()
    return db.session.execute(query)


def statuses(*deliveries: Delivery) -> list[str]:
    return list(fresh(select(Delivery.status).where(Delivery.id.in_([d.id for d in deliveries]))
                      .order_by(Delivery.id)).scalars())


def history(delivery: Delivery) -> list[tuple[str, int]]:
    rows = fresh(select(DeliveryEvent.reason, DeliveryEvent.attempt)
                 .where(DeliveryEvent.delivery_id == delivery.id).order_by(DeliveryEvent.id))
    return [tuple(r) for r in rows]


def queued_pairs() -> list[tuple[int, int]]:
    """Every (delivery, attempt) carried by the jobs waiting in the queue."""
    from workers.queues import delivery_queue

    return [tuple(pair) for job in delivery_queue().jobs for pair in job.args[0]]


def test_three_schedulers_claim_each_delivery_once(app, processes):
    # No worker runs: every claim stays visible in the database and in Redis. The long queued
    # lease keeps the sweep from taking unworked jobs back (which would be a second, legitimate claim).
    processes.env["PUBLISHER_QUEUED_LEASE_SECONDS"] = "600"
    processes.env["PUBLISHER_CLAIM_BATCH"] = "40"  # many small claims: the schedulers interleave more
    schedulers = start(processes, "scheduler", "scheduler", "scheduler")

    # A channel is claimed one batch at a time (its posts keep their order) and no worker runs here,
    # so each delivery has a channel of its own: all 400 can be claimed.
    feeds = [make_channel("feed", name=f"feed {k}") for k in range(400)]
    items = [Item(title=f"n°{k}", body="b") for k in range(400)]
    db.session.add_all(items)
    db.session.commit()
    now = utcnow()
    # 300 due already, 100 more over the next two seconds; all visible in one commit, so the three
    # schedulers race for the first 300.
    due = [now - timedelta(seconds=1)] * 300 + [now + timedelta(seconds=2 * k / 100) for k in range(1, 101)]
    for item, at, feed in zip(items, due, feeds, strict=True):
        dispatch.schedule(item, [feed], at)
    db.session.commit()
    ids = set(fresh(select(Delivery.id)).scalars())
    assert len(ids) == 400

    wait_for(lambda: utcnow() > max(due) and not fresh(
        select(func.count()).select_from(Delivery).where(Delivery.in_state("scheduled"))).scalar(), timeout=20)
    time.sleep(0.5)  # a second claim of anything would happen within these ten ticks
    processes.stop_all()
    for s in schedulers:
        assert s.proc.returncode == 0, s.log
        assert "Traceback" not in s.log, s.log

    rows = fresh(select(Delivery.id, Delivery.status, Delivery.attempt)).all()
    assert {(status, attempt) for _, status, attempt in rows} == {("scheduled", 0)}  # claimed, not started
    claims = fresh(select(DeliveryClaim.delivery_id, DeliveryClaim.attempt)).all()
    assert sorted(claims) == sorted((i, 1) for i in ids)  # a first claim of each, none ended
    enqueued = [sum(int(n) for n in re.findall(r"enqueued (\d+) deliveries", s.log)) for s in schedulers]
    print(f"\ndeliveries enqueued by each scheduler: {enqueued}")
    assert sum(enqueued) == 400
    pairs = queued_pairs()
    assert sorted(pairs) == sorted((i, 1) for i in ids)  # each delivery in exactly one job


def test_no_delivery_starts_before_its_due_time(app, processes, webhook_double):
    start(processes, "scheduler", "worker")
    channel = webhook_channel(webhook_double)
    now = utcnow()
    due_by_item = {}
    for k in range(40):
        # Staggered from 1 to 4 seconds ahead, at fractions of a second.
        (d,) = scheduled([channel], now + timedelta(seconds=1 + 3 * k / 39 + 0.013 * (k % 7)), title=f"n°{k}")
        due_by_item[d.item_id] = d.due_at.timestamp()

    wait_for(lambda: len(webhook_double.requests) >= 40, timeout=20)
    time.sleep(0.3)  # nothing more may come
    assert len(webhook_double.requests) == 40 and len(webhook_double.posts) == 40
    lags = sorted(r.at - due_by_item[r.json()["item_id"]] for r in webhook_double.requests)
    print(f"\nlag after due time over {len(lags)} deliveries: min {lags[0]:.3f}s, "
          f"p50 {statistics.median(lags):.3f}s, max {lags[-1]:.3f}s")
    assert lags[0] >= 0, "a delivery went out before its due time"
    assert lags[-1] < 1.5


@pytest.fixture
def plugin_path(tmp_path, processes) -> Path:
    """Install tests/plain_channel.py for the subprocesses as a `publisher.channels` plugin."""
    dist = tmp_path / "publisher_test_channels-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: publisher-test-channels\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[publisher.channels]\nplain-test = tests.plain_channel:PlainWebhook\n")
    processes.env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(tmp_path)])
    return tmp_path


def test_worker_killed_mid_send_is_swept_and_sent_once(app, processes, plugin_path):
    idem = WebhookDouble("hook-secret")
    plain = WebhookDouble("hook-secret")
    try:
        # Both receivers hold the first request far past the moment the worker is killed.
        for double in (idem, plain):
            double.answer(Answer(200, {"ok": True}, delay=10))
        channels = [webhook_channel(idem, timeout=2),
                    make_channel("plain-test", url=f"{plain.url}/hook", secret=plain.secret, timeout=2)]
        _scheduler, *workers = start(processes, "scheduler", "worker", "worker")
        d_idem, d_plain = scheduled(channels)  # two jobs at once: one for each worker
        wait_for(lambda: idem.requests and plain.requests, timeout=10)
        for w in workers:
            w.proc.kill()
            w.proc.wait()
        # Killed within the channel's 2 s timeout: the sends had neither ended nor failed.
        assert statuses(d_idem, d_plain) == ["sending", "sending"]

        start(processes, "worker")
        # The lease (2 × timeout + 1 s margin) runs out, the scheduler's sweep takes both back.
        wait_for(lambda: statuses(d_idem, d_plain) == ["sent", "unconfirmed"], timeout=15)
        time.sleep(0.5)  # the unconfirmed one must stay unsent

        key = fresh(select(Delivery.idempotency_key).where(Delivery.id == d_idem.id)).scalar()
        assert [r.headers["Idempotency-Key"] for r in idem.requests] == [key, key]
        assert set(idem.posts) == {key}  # the receiver dropped the repeat: one post
        assert history(d_idem) == [("scheduled", 0), ("sending", 1), ("worker_lost", 1), ("sending", 2),
                                   ("sent", 2)]

        assert len(plain.requests) == 1  # never sent twice on a channel that cannot drop repeats
        assert history(d_plain) == [("scheduled", 0), ("sending", 1), ("worker_lost", 1)]
        row = fresh(select(Delivery).where(Delivery.id == d_plain.id)).scalar_one()
        assert row.last_reason == "worker_lost" and row.attempt == 1
    finally:
        idem.close()
        plain.close()


def test_redis_outage_delays_deliveries_but_loses_none(app, processes, webhook_double, tmp_path):
    """The scheduler and the worker keep running while Redis is away, and catch up when it returns."""
    private = tmp_path / "redis"
    processes.env["PUBLISHER_REDIS_URL"] = embedded_redis.ensure(private)
    try:
        scheduler, worker = start(processes, "scheduler", "worker")
        channel = webhook_channel(webhook_double)
        (before,) = scheduled([channel], title="before")
        wait_for(lambda: statuses(before) == ["sent"], timeout=10)

        embedded_redis.stop(private)
        (during,) = scheduled([channel], title="during")
        time.sleep(1.5)  # thirty ticks without Redis
        assert scheduler.proc.poll() is None and worker.proc.poll() is None
        # Not claimed while no worker could be told: no attempts, no history piling up.
        # (A tick that found Redis just before it stopped may have claimed it once and handed it back.)
        lost = [("scheduled", 0), ("queue_lost", 1)]
        assert history(during) in ([("scheduled", 0)], lost)
        attempts = 1 if history(during) == [("scheduled", 0)] else 2
        assert scheduler.log.count("Redis unavailable") == 1

        embedded_redis.ensure(private)
        wait_for(lambda: statuses(during) == ["sent"], timeout=20)
        assert history(during)[-1] == ("sent", attempts)
        assert len(webhook_double.requests) == 2 and len(webhook_double.posts) == 2
        assert "ticking normally again" in scheduler.log
    finally:
        processes.stop_all()
        embedded_redis.stop(private)


# --- `publisher up`: the whole service on the embedded defaults -------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _role(proc: psutil.Process) -> str | None:
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return None
    if any("gunicorn" in part for part in cmd):
        return "web"
    if cmd[-2:] in (["publisher", "worker"], ["publisher", "scheduler"]):
        return cmd[-1]
    return None


def ended(proc: psutil.Process) -> bool:
    # A daemon that exited stays a zombie until init reaps it, which some container inits never do.
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_up_starts_everything_and_ctrl_c_stops_it(tmp_path, webhook_double):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
    env.update(PUBLISHER_INSTANCE_PATH=str(tmp_path), PUBLISHER_PORT=str(port), PUBLISHER_WEB_WORKERS="1",
               PUBLISHER_BASE_URL=f"http://127.0.0.1:{port}", PYTHONPATH=str(REPO))
    log_path = tmp_path / "up.log"
    children: list[psutil.Process] = []
    with open(log_path, "wb") as log:
        # Its own process group, so that Ctrl-C can be delivered as a terminal does: to the group.
        up = subprocess.Popen([sys.executable, "-m", "publisher", "up"], env=env, cwd=REPO, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def healthy() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return up.poll() is not None

        wait_for(healthy, timeout=30)
        assert up.poll() is None, log_path.read_text()

        def all_started() -> bool:
            children[:] = psutil.Process(up.pid).children(recursive=True)
            return {"web", "worker", "scheduler"} <= {_role(p) for p in children}

        wait_for(all_started, timeout=10)
        redis_server = psutil.Process(int((tmp_path / "redis.pid").read_text()))

        service = create_app({
            "INSTANCE_PATH": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'publisher.db'}",
            "REDIS_URL": embedded_redis.url(tmp_path), "SECRET_KEY": (tmp_path / "secret_key").read_text().strip(),
        })
        with service.app_context():
            set_organisation(require_approval=False)  # a fresh database requires approval; this is about delivery
            (d,) = scheduled([webhook_channel(webhook_double)], utcnow() + timedelta(seconds=2))
            due = d.due_at.timestamp()
            wait_for(lambda: statuses(d) == ["sent"], timeout=15)
            db.session.remove()
            db.engine.dispose()
        assert len(webhook_double.requests) == 1 and webhook_double.requests[0].at >= due

        os.killpg(up.pid, signal.SIGINT)
        assert up.wait(timeout=15) == 0, log_path.read_text()
        wait_for(lambda: all(ended(p) for p in children), timeout=5)
        assert ended(redis_server), "the embedded redis-server is still running"
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(embedded_redis.url(tmp_path), socket_timeout=1).ping()
        assert "publisher stopped." in log_path.read_text()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        for p in children:
            with contextlib.suppress(psutil.Error):
                p.kill()
        embedded_redis.stop(tmp_path)

