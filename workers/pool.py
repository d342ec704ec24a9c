"""Sends in flight inside one worker process.

An RQ job hands the worker a batch of claimed deliveries and returns; the pool sends them on
`lanes` threads (PUBLISHER_IN_FLIGHT), so a worker keeps many slow channel calls in flight
instead of waiting for each. Each channel's deliveries go one after another in their scheduled
order, channels take turns (a lane takes the next delivery of whichever channel is ready), and a
delivery that has to wait (rate limit, service down) holds its channel's later deliveries too:
they go back to the schedule untried, behind it.

The database stays the truth: a delivery the pool holds is `queued` with a lease, so if this
process dies the scheduler's sweep takes it back. On a normal stop the pool finishes the sends in
flight and gives the others back at once (`close`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import datetime

from flask import Flask

log = logging.getLogger(__name__)


class SendPool:
    def __init__(self, app: Flask, lanes: int):
        self.app = app
        self.lanes = max(1, lanes)
        self.cond = threading.Condition()
        self.chains: dict[int, deque[tuple[int, int]]] = {}  # channel -> its deliveries still to send, in order
        self.ready: deque[int] = deque()  # channels with a delivery to send and none in flight
        self.in_flight = 0
        self.stopping = False
        self.threads = [threading.Thread(target=self._lane, name=f"send-{n}", daemon=True) for n in range(self.lanes)]
        self.threads.append(threading.Thread(target=self._keep_leases, name="leases", daemon=True))
        for thread in self.threads:
            thread.start()

    @property
    def waiting(self) -> int:
        with self.cond:
            return sum(len(chain) for chain in self.chains.values())

    def submit(self, chains: dict[int, list[tuple[int, int]]], room: int | None = None) -> None:
        """Add each channel's deliveries (in order). Blocks while more than `room` wait (default:
        two per lane), so a worker does not take jobs it cannot start soon."""
        room = room if room is not None else 2 * self.lanes
        with self.cond:
            self.cond.wait_for(lambda: self.stopping or sum(len(c) for c in self.chains.values()) < room)
            if self.stopping:
                raise RuntimeError("the worker is stopping")
            for channel_id, pairs in chains.items():
                chain = self.chains.setdefault(channel_id, deque())
                if not chain and channel_id not in self.ready:
                    self.ready.append(channel_id)
                chain.extend(pairs)
            self.cond.notify_all()

    def _next(self) -> tuple[int, tuple[int, int]] | None:
        with self.cond:
            self.cond.wait_for(lambda: self.stopping or self.ready)
            if self.stopping:
                return None
            channel_id = self.ready.popleft()
            pair = self.chains[channel_id].popleft()
            self.in_flight += 1
            return channel_id, pair

    def _lane(self) -> None:
        from publisher import dispatch

        from .jobs import http_session

        while (task := self._next()) is not None:
            channel_id, (delivery_id, attempt) = task
            hold_until = None
            try:
                with self.app.app_context():
                    hold_until = dispatch.run_one(delivery_id, attempt, session=http_session()).hold_until
            except Exception:  # a database error mid-send: the lease brings the delivery back
                log.exception("delivery %s: the send failed in the worker", delivery_id)
            with self.cond:
                self.in_flight -= 1
                chain = self.chains.get(channel_id)
                held = list(chain) if chain and hold_until else []
                if held:
                    chain.clear()
                if chain:
                    self.ready.append(channel_id)
                elif chain is not None:
                    del self.chains[channel_id]
                self.cond.notify_all()
            if held:
                self._give_back(held, hold_until, "held")

    def _keep_leases(self) -> None:
        """Renew the queued lease of what the pool holds, a few times per lease."""
        from publisher import dispatch

        interval = max(0.5, self.app.config["QUEUED_LEASE_SECONDS"] / 3)
        with self.cond:
            while not self.cond.wait_for(lambda: self.stopping, timeout=interval):
                held = [pair for chain in self.chains.values() for pair in chain]
                if not held:
                    continue
                self.cond.release()
                try:
                    with self.app.app_context():
                        dispatch.extend_leases(held)
                except Exception:  # the database is away: the leases run out and the sweep takes them back
                    log.warning("could not renew the leases of %d deliveries", len(held), exc_info=True)
                finally:
                    self.cond.acquire()

    def _give_back(self, pairs: list[tuple[int, int]], at: datetime | None, reason: str) -> None:
        from publisher import dispatch
        from publisher.models import utcnow

        try:
            with self.app.app_context():
                dispatch.release(pairs, at or utcnow(), reason)
        except Exception:  # the leases bring them back
            log.exception("could not give %d deliveries back", len(pairs))

    def wait_idle(self) -> None:
        """Until nothing waits and nothing is in flight."""
        with self.cond:
            self.cond.wait_for(lambda: self.stopping or (not self.chains and not self.in_flight))

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking work, give back what has not started, wait for the sends in flight."""
        with self.cond:
            self.stopping = True
            left = [pair for chain in self.chains.values() for pair in chain]
            self.chains.clear()
            self.ready.clear()
            self.cond.notify_all()
        if left:
            self._give_back(left, None, "released")
        for thread in self.threads:
            thread.join(timeout)
