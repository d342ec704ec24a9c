"""What the delivery benches share: a scratch service (database, Redis, instance folder), the real
`publisher` processes started on it, a fast local HTTP receiver, memory sampling and figures.

Also runnable as `python bench/_harness.py rq-worker REDIS_URL QUEUE`: a bare RQ SimpleWorker in
burst mode, the floor the delivery throughput is compared with.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # runnable from anywhere

EMAIL, PASSWORD = "bench-editor@example.com", "bench-password"
CHUNK = 2000


def noop() -> None:
    """The job of the raw RQ floor: nothing at all."""


# --- figures ----------------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def machine() -> str:
    import psutil

    cpus = len(os.sched_getaffinity(0))
    memory = psutil.virtual_memory().total / 2**30
    return (f"machine: {cpus} CPUs ({platform.processor() or platform.machine()}), {memory:.0f} GiB, "
            f"Python {platform.python_version()}, SQLite library {sqlite3.sqlite_version}, "
            f"load average {os.getloadavg()[0]:.2f}")


def batched() -> bool:
    """Which engine the processes run: the batched one declares IN_FLIGHT among its settings."""
    from publisher.config import SETTINGS

    return "IN_FLIGHT" in SETTINGS


def engine_description() -> str:
    if batched():
        return "batched engine (deliver_batch jobs, IN_FLIGHT sends per worker)"
    return "one RQ job per delivery, one send at a time per worker"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def run(main) -> None:
    """Run a bench's main(): Ctrl-C and SIGTERM (even where the shell ignored SIGINT) unwind through
    every `finally`, which stops the processes the bench started."""
    def raise_interrupt(_signum, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, raise_interrupt)
    signal.signal(signal.SIGINT, raise_interrupt)
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted: every process the bench started is stopped", file=sys.stderr)
        sys.exit(130)


# --- the local receiver -----------------------------------------------------------------------------

@dataclass(slots=True)
class Arrival:
    path: str
    key: str
    arrived: float  # time.time() when the request's headers and body were read
    answered: float = 0.0  # time.time() when the answer was written


class Receiver:
    """An asyncio HTTP/1.1 server on 127.0.0.1 in a thread of its own: answers every POST with 200
    and `{"ok": true}` after `latency` seconds (requests wait concurrently), verifying nothing, and
    records each request's arrival time and Idempotency-Key."""

    ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
              b"Connection: keep-alive\r\n\r\n{\"ok\":true}")

    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.arrivals: list[Arrival] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="receiver", daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the receiver did not start")
        return self

    def __exit__(self, *exc) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1] if " " in lines[0] else "/"
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                if length:
                    await reader.readexactly(length)
                arrival = Arrival(path, headers.get("idempotency-key", ""), time.time())
                self.arrivals.append(arrival)
                if self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(self.ANSWER)
                await writer.drain()
                arrival.answered = time.time()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


# --- processes --------------------------------------------------------------------------------------

def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the bench itself dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path

    @property
    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, line: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if line in self.text:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready ({line!r}), exit code {self.proc.poll()}:\n{self.text[-3000:]}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the child's whole process group (gunicorn's workers too), SIGKILL after `timeout`."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the group
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A scratch publisher: its own instance folder, a migrated SQLite file (or the given database,
    whose `public` schema is dropped and created again), a Redis (PUBLISHER_REDIS_URL or an embedded
    one), a queue name of its own, and the `publisher` processes it starts, all stopped by close()."""

    def __init__(self, *, database_url: str | None = None, tick: float = 0.25, in_flight: int = 32,
                 batch_size: int = 100, extra: dict[str, str] | None = None):
        from publisher import create_app, embedded_redis
        from publisher.migrate import upgrade

        self.work = Path(tempfile.mkdtemp(prefix="publisher-bench-"))
        self.instance = self.work / "instance"
        self.embedded = not os.environ.get("PUBLISHER_REDIS_URL")
        self.redis_url = os.environ.get("PUBLISHER_REDIS_URL") or embedded_redis.ensure(self.instance)
        self.database_url = database_url or f"sqlite:///{self.work / 'bench.db'}"
        if not self.database_url.startswith("sqlite"):
            reset_postgres(self.database_url)
        self.queue = f"bench-{secrets.token_hex(4)}"
        self.port = free_port()
        self.config = {
            "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url, "INSTANCE_PATH": str(self.instance),
            "SECRET_KEY": secrets.token_hex(), "QUEUE": self.queue, "TICK_SECONDS": str(tick),
            "IN_FLIGHT": str(in_flight), "BATCH_SIZE": str(batch_size), "PORT": str(self.port),
            "BASE_URL": f"http://127.0.0.1:{self.port}", **(extra or {}),
        }
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
        self.env.update({f"PUBLISHER_{k}": str(v) for k, v in self.config.items()})
        self.env["PYTHONPATH"] = str(REPO)
        self.children: list[Child] = []
        self.app = create_app({k: self.config[k] for k in ("DATABASE_URL", "REDIS_URL", "INSTANCE_PATH", "SECRET_KEY",
                                                           "QUEUE", "BASE_URL")})
        upgrade(self.app)
        self._redis = None

    @property
    def redis(self):
        if self._redis is None:
            from workers.queues import connect

            self._redis = connect(self.redis_url)
        return self._redis

    def start(self, command: str, *args: str, name: str | None = None) -> Child:
        name = name or f"{command}-{sum(c.name.startswith(command) for c in self.children) + 1}"
        log = self.work / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "publisher", command, *args], env=self.env, cwd=REPO,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=_die_with_parent)
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def start_engine(self, workers: int, web: bool = False) -> dict[str, Child]:
        """The scheduler, `workers` workers (and the web app); returns once each is ready."""
        started = {"scheduler": self.start("scheduler")}
        for n in range(workers):
            started[f"worker-{n + 1}"] = self.start("worker")
        if web:
            started["web"] = self.start("web")
        for name, child in started.items():
            if name == "web":
                wait_http(f"http://127.0.0.1:{self.port}/healthz", child)
            else:
                child.wait_for("scheduler started" if name == "scheduler" else "Listening on")
        return started

    def close(self) -> None:
        for child in self.children:
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGTERM)
        for child in self.children:
            child.stop()
        with contextlib.suppress(Exception):
            self.forget_jobs()
        with contextlib.suppress(Exception):
            from publisher.extensions import db

            with self.app.app_context():
                db.session.remove()
                db.engine.dispose()
        if self.embedded:
            from publisher import embedded_redis

            embedded_redis.stop(self.instance)
        shutil.rmtree(self.work, ignore_errors=True)

    def forget_jobs(self) -> None:
        """Delete what this run left in Redis: its queues, workers and the delivery jobs and results
        (their ids are per database, so a scratch Redis database is best)."""
        forget_rq(self.redis, self.queue, ("rq:*:delivery-*", "rq:*:deliveries-*", f"{self.queue}:*",
                                              f"LIMITS:LIMITER/{self.queue}*"))

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- data ---------------------------------------------------------------------------------------

    def fill(self, channels: int, per_channel: int, receiver: Receiver) -> list[int]:
        """`channels` webhook channels to the receiver (path /hook/<n>) and `per_channel` scheduled
        items, each planned on every channel: channels × per_channel deliveries, all due far in the
        future until release(). Bulk inserts. Returns the channel ids."""
        from sqlalchemy import insert

        from publisher.extensions import db
        from publisher.models import Channel, Delivery, DeliveryStatus, Item, ItemStatus, Role, utcnow
        from publisher.security import create_user

        far = utcnow() + timedelta(days=365)
        with self.app.app_context():
            create_user(EMAIL, PASSWORD, Role.EDITOR)
            rows = []
            for n in range(channels):
                channel = Channel(name=f"Receiver {n + 1}", type="webhook")
                channel.config = {"url": receiver.url(f"/hook/{n + 1}"), "secret": "bench-secret", "timeout": 10}
                rows.append(channel)
            db.session.add_all(rows)
            db.session.commit()
            channel_ids = [c.id for c in rows]
            now = utcnow()
            items = [{"id": i, "title": f"Bench item {i}: 第{i}期", "body": f"Body of item {i}, **in Markdown**.",
                      "status": ItemStatus.SCHEDULED, "planned_at": far, "version": 1, "created_at": now,
                      "updated_at": now} for i in range(1, per_channel + 1)]
            deliveries = [{"item_id": i, "channel_id": c, "status": DeliveryStatus.SCHEDULED, "due_at": far,
                           "next_attempt_at": far, "idempotency_key": secrets.token_hex(16), "attempt": 0,
                           "created_at": now, "updated_at": now}
                          for i in range(1, per_channel + 1) for c in channel_ids]
            for start in range(0, len(items), CHUNK):
                db.session.execute(insert(Item), items[start:start + CHUNK])
            for start in range(0, len(deliveries), CHUNK):
                db.session.execute(insert(Delivery), deliveries[start:start + CHUNK])
            db.session.commit()
            db.session.remove()
        return channel_ids

    def release(self, due: datetime | dict[int, datetime]) -> dict[str, datetime]:
        """Make the deliveries due: all at `due`, or each at its own time ({delivery id: due}).
        Returns {idempotency key: due time}."""
        from sqlalchemy import select, update

        from publisher.extensions import db
        from publisher.models import Delivery

        with self.app.app_context():
            if isinstance(due, dict):
                db.session.execute(update(Delivery), [{"id": i, "due_at": at, "next_attempt_at": at}
                                                      for i, at in due.items()])
            else:
                db.session.execute(update(Delivery).values(due_at=due, next_attempt_at=due))
            db.session.commit()
            keys = {key: at for key, at in db.session.execute(select(Delivery.idempotency_key, Delivery.due_at))}
            db.session.remove()
        return keys

    def delivery_ids(self) -> list[int]:
        from sqlalchemy import select

        from publisher.extensions import db
        from publisher.models import Delivery

        with self.app.app_context():
            ids = list(db.session.scalars(select(Delivery.id).order_by(Delivery.id)))
            db.session.remove()
        return ids

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func, select

        from publisher.extensions import db
        from publisher.models import Delivery

        with self.app.app_context():
            rows = dict(db.session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
            db.session.remove()
        return rows

    def sent_times(self) -> tuple[datetime | None, datetime | None]:
        from sqlalchemy import func, select

        from publisher.extensions import db
        from publisher.models import Delivery

        with self.app.app_context():
            first, last = db.session.execute(select(func.min(Delivery.sent_at), func.max(Delivery.sent_at))).one()
            db.session.remove()
        return first, last

    def wait_settled(self, total: int, timeout: float, interval: float = 0.25) -> dict[str, int]:
        """Wait until every delivery is sent, failed or unconfirmed (or `timeout` passes)."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.counts()
            if sum(counts.get(s, 0) for s in ("sent", "failed", "unconfirmed", "cancelled")) >= total:
                return counts
            if time.monotonic() > deadline:
                return counts
            for child in self.children:
                if child.proc.poll() is not None:
                    raise RuntimeError(f"{child.name} exited with {child.proc.returncode}:\n{child.text[-3000:]}")
            time.sleep(interval)


def reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def wait_http(url: str, child: Child | None = None, timeout: float = 30.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return
        if child and child.proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200" + (f":\n{child.text[-3000:]}" if child else ""))


# --- watching the processes ---------------------------------------------------------------------------

class MemorySampler:
    """Peak RSS of each watched process (with its children, e.g. gunicorn's workers), sampled every
    `interval` seconds in a thread; and the CPU time each used between the first and the last sample."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05):
        import psutil

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)  # the process tree's total
        self.peak_single: dict[str, int] = dict.fromkeys(pids, 0)  # its largest single process
        self.cpu_first: dict[str, float] = {}
        self.cpu_last: dict[str, float] = {}
        self.samples = 0
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory", daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(self.interval):
            self.samples += 1
            for name, proc in self.procs.items():
                try:
                    tree = [proc, *proc.children(recursive=True)]
                    sizes, cpu = [], 0.0
                    for p in tree:
                        with contextlib.suppress(psutil.Error):
                            sizes.append(p.memory_info().rss)
                            times = p.cpu_times()
                            cpu += times.user + times.system
                except psutil.Error:
                    continue
                self.cpu_first.setdefault(name, cpu)
                self.cpu_last[name] = cpu
                self.peak[name] = max(self.peak[name], sum(sizes))
                self.peak_single[name] = max(self.peak_single[name], max(sizes, default=0))

    def cpu_seconds(self, name: str) -> float:
        return self.cpu_last.get(name, 0.0) - self.cpu_first.get(name, 0.0)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class WebPoller:
    """Logs in to the web app and asks in turn for /healthz, the items list and one item's page (with its
    deliveries) while the run goes on."""

    base: str
    interval: float = 0.5
    times: dict[str, list[float]] = field(default_factory=lambda: {"/healthz": [], "/": [], "/items/1": []})
    errors: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="web-poller", daemon=True)

    def _run(self) -> None:
        import requests

        with requests.Session() as http:
            http.headers["Accept-Language"] = "en"
            page = http.get(f"{self.base}/login", timeout=10).text
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
            answer = http.post(f"{self.base}/login", timeout=10, allow_redirects=False, data={
                "email": EMAIL, "password": PASSWORD, "csrf_token": token.group(1) if token else ""})
            if answer.status_code != 302:
                self.errors.append(f"login answered {answer.status_code}")
                return
            while not self._stop.wait(self.interval):
                for path in self.times:
                    began = time.perf_counter()
                    try:
                        answer = http.get(f"{self.base}{path}", timeout=10, allow_redirects=False)
                    except requests.RequestException as exc:
                        self.errors.append(f"{path}: {type(exc).__name__}")
                        continue
                    if answer.status_code != 200:
                        self.errors.append(f"{path}: {answer.status_code}")
                    self.times[path].append((time.perf_counter() - began) * 1000)

    def __enter__(self) -> WebPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(15)

    def summary(self) -> str:
        parts = []
        for path, times in self.times.items():
            if times:
                parts.append(f"{path} {len(times)} requests, p50 {pct(times, 50):.0f} ms, p95 {pct(times, 95):.0f} ms")
        errors = f"; {len(self.errors)} errors (first: {self.errors[0]})" if self.errors else "; no errors"
        return "; ".join(parts or ["no requests"]) + errors


def mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


# --- the raw RQ floor -------------------------------------------------------------------------------

def raw_rq(redis_url: str, jobs: int, workers: int, timeout: float = 120.0) -> dict:
    """Enqueue `jobs` no-op jobs with enqueue_many, start `workers` burst SimpleWorker processes and
    time them: from the first job started to the last one ended (the jobs' own timestamps), and the
    wall time from the workers' launch to their exit."""
    from rq import Queue
    from rq.job import Job

    from workers.queues import connect

    connection = connect(redis_url)
    name = f"bench-noop-{secrets.token_hex(4)}"
    queue = Queue(name, connection=connection)
    ids = []
    began = time.perf_counter()
    for start in range(0, jobs, 1000):
        prepared = [Queue.prepare_data("_harness.noop", job_id=f"bench-noop-{name}-{n}", result_ttl=600)
                    for n in range(start, min(jobs, start + 1000))]
        ids += [job.id for job in queue.enqueue_many(prepared)]
    enqueue_seconds = time.perf_counter() - began
    procs = []
    try:
        launched = time.perf_counter()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "bench"), str(REPO)]))
        for _ in range(workers):
            procs.append(subprocess.Popen([sys.executable, str(Path(__file__)), "rq-worker", redis_url, name],
                                          env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True,
                                          preexec_fn=_die_with_parent))
        for proc in procs:
            proc.wait(timeout)
        wall = time.perf_counter() - launched
        fetched = [job for start in range(0, len(ids), 1000)
                   for job in Job.fetch_many(ids[start:start + 1000], connection=connection) if job]
        done = [job for job in fetched if job.get_status() == "finished"]
        first = min(job.started_at for job in done)
        last = max(job.ended_at for job in done)
        seconds = (last - first).total_seconds()
        return {"jobs": jobs, "finished": len(done), "seconds": seconds, "per_second": len(done) / seconds,
                "wall": wall, "enqueue_seconds": enqueue_seconds}
    finally:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        forget_rq(connection, name)


def forget_rq(connection, queue: str, patterns: tuple[str, ...] = ()) -> None:
    """Delete the keys of RQ queues named after `queue`, of the workers that served them, and `patterns`."""
    keys = []
    for pattern in (f"rq:*{queue}*", *patterns):
        keys += list(connection.scan_iter(match=pattern, count=1000))
    for key in connection.scan_iter(match="rq:worker:*", count=1000):
        if connection.type(key) == b"hash" and queue.encode() in (connection.hget(key, "queues") or b""):
            keys.append(key)
            connection.srem("rq:workers", key)
    for member in connection.smembers("rq:queues"):
        if queue.encode() in member:
            connection.srem("rq:queues", member)
    for start in range(0, len(keys), 1000):
        connection.delete(*keys[start:start + 1000])


def _rq_worker(redis_url: str, queue: str) -> None:
    from rq import Queue, SimpleWorker

    from workers.queues import connect

    connection = connect(redis_url)
    SimpleWorker([Queue(queue, connection=connection)], connection=connection).work(
        burst=True, with_scheduler=False, logging_level="WARNING")


def describe_lags(lags: list[float]) -> str:
    return (f"min {min(lags):.3f} s, p50 {pct(lags, 50):.3f} s, p99 {pct(lags, 99):.3f} s, "
            f"max {max(lags):.3f} s, mean {statistics.fmean(lags):.3f} s")


if __name__ == "__main__" and sys.argv[1:2] == ["rq-worker"]:
    _rq_worker(sys.argv[2], sys.argv[3])
