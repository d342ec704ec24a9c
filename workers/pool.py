"""Sends in flight inside one worker process.

An RQ job hands the worker a batch of claimed deliveries, loaded and rendered (publisher/sending.py),
and returns; the pool sends them on `lanes` threads (PUBLISHER_IN_FLIGHT), so a worker keeps many
slow channel calls in flight instead of waiting for each. Each channel's deliveries go one after
another in their scheduled order, none before its due time (the scheduler claims a little ahead),
channels take turns (a lane takes the next delivery of whichever channel is due first), and a
delivery that has to wait (rate limit, service down) holds its channel's later deliveries too:
they go back to the schedule untried, behind it.

The lanes do not write to the database themselves: the pool's recorder thread gathers every
lane's "starting" and "done" and writes them in one transaction at a time, so a worker with 32
sends in flight makes a few commits, not 64. A lane waits for its "starting" to be committed
before its request leaves; its "done" is written soon after (if the process dies first, the
delivery is still `sending` and the sweep treats it as a send whose answer was lost).

The database stays the truth: a delivery the pool holds is claimed, and the claim has a lease
(renewed while the pool holds it), so if this process dies the scheduler's sweep takes it back. On
a normal stop the pool finishes the sends in flight and gives the others back at once (`close`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
import urllib.request
from collections import deque
from datetime import datetime

import requests
from flask import Flask

from publisher import sending
from publisher.models import utcnow

log = logging.getLogger(__name__)


class RecordingFailed(Exception):
    """The database could not be written: what was to be written is left to the leases."""


class _Cycle:
    """The sends whose start the recorder writes in one transaction; their lanes wait for `done`."""

    def __init__(self):
        self.sends: list[sending.Send] = []
        self.early: list[sending.Send] = []  # marked without waiting (channels that drop repeats)
        self.moved: set[int] | None = None  # None: the database could not be written
        self.done = threading.Event()


class Recorder:
    """One thread that writes the lanes' steps, many at a time (group commit). Only the lanes of the
    transaction just written wake up: with tens of lanes, waking all of them at every write costs
    more than the writes."""

    ATTEMPTS = (0.2, 1.0, 2.0)  # waits before trying a failed transaction again

    def __init__(self, app: Flask):
        self.app = app
        self.wake = threading.Condition()
        self.cycle = _Cycle()
        self.results: list[sending.Result] = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self.thread.start()

    def start(self, send: sending.Send, wait: bool = True) -> bool:
        """Claimed → sending, committed (`wait`). False if the delivery moved meanwhile (not ours to
        send). Without `wait` the mark is written with the next transaction and the send goes on."""
        with self.wake:
            cycle = self.cycle
            if wait:
                cycle.sends.append(send)
            else:
                cycle.early.append(send)
            self.wake.notify()
        if not wait:
            return True
        cycle.done.wait()
        if cycle.moved is None:
            raise RecordingFailed(f"delivery {send.id} could not be marked as sending")
        return send.id in cycle.moved

    def record(self, results: list[sending.Result]) -> None:
        """Written soon, with whatever else is waiting; does not wait for it."""
        with self.wake:
            self.results.extend(results)
            self.wake.notify()

    def _run(self) -> None:
        from publisher.extensions import db

        while True:
            with self.wake:
                self.wake.wait_for(lambda: self.cycle.sends or self.cycle.early or self.results or self.stopping)
                if not (self.cycle.sends or self.cycle.early or self.results):
                    return
                cycle, self.cycle = self.cycle, _Cycle()
                results, self.results = self.results, []
            for wait in (*self.ATTEMPTS, None):
                try:
                    with self.app.app_context():
                        starts = cycle.early + cycle.sends
                        moved = sending.start(starts) if starts else set()
                        sending.record(results)  # after the starts: a result may follow its start
                        db.session.commit()
                    cycle.moved = moved
                    break
                except Exception:
                    if wait is None:
                        log.exception("could not record %d sends and %d results; their leases bring them back",
                                      len(cycle.early) + len(cycle.sends), len(results))
                    else:
                        time.sleep(wait)
            cycle.done.set()

    def close(self, timeout: float = 30.0) -> None:
        """Write what waits, then stop."""
        with self.wake:
            self.stopping = True
            self.wake.notify()
        self.thread.join(timeout)


class SendPool:
    def __init__(self, app: Flask, lanes: int):
        self.app = app
        self.lanes = max(1, lanes)
        # A worker takes another batch while it has fewer channels than this: enough to keep every
        # lane busy while some channels wait for their previous answer, not so many that it takes
        # work another worker could start sooner.
        self.capacity = self.lanes + self.lanes // 2
        self.http = requests.Session()  # one connection pool for every lane, sized to them
        for scheme in ("http://", "https://"):
            self.http.mount(scheme, requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=self.lanes))
        self.http.headers["User-Agent"] = "publisher/0.1"
        # requests reads the environment (proxies, CA bundle) again for every request: a tenth of a
        # worker's time. Without a proxy, what it would find is the CA bundle, read here once.
        if not urllib.request.getproxies():
            self.http.trust_env = False
            self.http.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.adapters: dict = {}  # channel id -> its adapter, made again when its settings change
        self.recorder = Recorder(app)
        lock = threading.Lock()
        self.cond = threading.Condition(lock)  # lanes wait here for a channel to be ready; woken one at a time
        self.changed = threading.Condition(lock)  # the job thread waits here for room, and for idle
        self.chains: dict[int, deque[sending.Send]] = {}  # channel -> its sends still to go, in order
        self.ready: list[tuple] = []  # heap of (head's due time, n, channel) for channels with none in flight
        self.order = itertools.count()
        self.in_flight = 0
        self.stopping = False
        self.threads = [threading.Thread(target=self._lane, name=f"send-{n}", daemon=True) for n in range(self.lanes)]
        self.threads.append(threading.Thread(target=self._keep_leases, name="leases", daemon=True))
        for thread in self.threads:
            thread.start()

    def wait_for_room(self) -> None:
        """Blocks while the pool has work enough, so a worker does not take jobs it cannot start soon."""
        with self.changed:
            self.changed.wait_for(lambda: self.stopping or len(self.chains) < self.capacity)
            if self.stopping:
                raise RuntimeError("the worker is stopping")

    def submit(self, sends: list[sending.Send]) -> None:
        """Add sends; each channel's keep the order they come in."""
        with self.cond:
            if self.stopping:
                raise RuntimeError("the worker is stopping")
            added = 0
            for send in sends:
                chain = self.chains.get(send.channel_id)
                if chain is None:
                    chain = self.chains[send.channel_id] = deque()
                    heapq.heappush(self.ready, (send.not_before, next(self.order), send.channel_id))
                    added += 1
                chain.append(send)
            self.cond.notify(added)

    def _next(self) -> sending.Send | None:
        with self.cond:
            while not self.stopping:
                if not self.ready:
                    self.cond.wait()
                    continue
                wait = (self.ready[0][0] - utcnow()).total_seconds()
                if wait > 0:  # never before its time
                    self.cond.wait(timeout=wait)
                    continue
                channel_id = heapq.heappop(self.ready)[2]
                self.in_flight += 1
                return self.chains[channel_id].popleft()
            return None

    def _lane(self) -> None:
        # The lane's sends use the app (its settings, Redis) but not the database session: the
        # recorder writes. One app context for the lane's life.
        with self.app.app_context():
            send = self._next()
            while send is not None:
                send = self._after(send, self._send(send))

    def _send(self, send: sending.Send) -> datetime | bool | None:
        """Send; returns when the channel's later sends must wait, True if they cannot be sent now."""
        try:
            result = sending.run(send, self.recorder)
        except Exception:  # the database is away: the leases bring this channel's sends back
            log.exception("delivery %s: the send failed in the worker", send.id)
            return True
        return result.hold_until if result else None

    def _after(self, send: sending.Send, hold: datetime | bool | None) -> sending.Send | None:
        """Put the channel back in turn (or hold it), and take this lane's next send."""
        held: list[sending.Send] = []
        next_send = None
        with self.cond:
            chain = self.chains.get(send.channel_id)  # gone if the pool closed meanwhile
            if chain and hold:
                held = list(chain)
                chain.clear()
            if not chain:
                if chain is not None:
                    del self.chains[send.channel_id]
                self.changed.notify_all()
            elif not self.stopping and chain[0].not_before <= utcnow() and not self._due_now():
                next_send = chain.popleft()  # no other channel waits for a lane: go on, wake nobody
            else:
                heapq.heappush(self.ready, (chain[0].not_before, next(self.order), send.channel_id))
                self.cond.notify()
            if next_send is None:
                self.in_flight -= 1
        if held and hold is not True:
            self.recorder.record([sending.give_back(s, hold, "held") for s in held])
        return next_send or self._next()

    def _due_now(self) -> bool:
        return bool(self.ready) and self.ready[0][0] <= utcnow()

    def _keep_leases(self) -> None:
        """Renew the claims' lease of what the pool holds, a few times per lease."""
        from publisher import dispatch

        interval = max(0.5, self.app.config["QUEUED_LEASE_SECONDS"] / 3)
        with self.changed:
            while not self.changed.wait_for(lambda: self.stopping, timeout=interval):
                held = [(s.id, s.attempt) for chain in self.chains.values() for s in chain]
                if not held:
                    continue
                self.changed.release()
                try:
                    with self.app.app_context():
                        dispatch.extend_leases(held)
                except Exception:  # the database is away: the leases run out and the sweep takes them back
                    log.warning("could not renew the leases of %d deliveries", len(held), exc_info=True)
                finally:
                    self.changed.acquire()

    def wait_idle(self) -> None:
        """Until nothing waits and nothing is in flight."""
        with self.changed:
            self.changed.wait_for(lambda: self.stopping or (not self.chains and not self.in_flight))

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking work, give back what has not started, wait for the sends in flight and for
        the recorder to write everything."""
        with self.cond:
            self.stopping = True
            left = [send for chain in self.chains.values() for send in chain]
            self.chains.clear()
            self.ready.clear()
            self.cond.notify_all()
            self.changed.notify_all()
        if left:
            now = utcnow()
            self.recorder.record([sending.give_back(s, now, "released") for s in left])
        for thread in self.threads:
            thread.join(timeout)
        self.recorder.close(timeout)
        self.http.close()
