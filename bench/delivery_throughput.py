"""Deliveries per second end to end, next to raw RQ no-op jobs per second on the same Redis (the floor).

    .venv/bin/python bench/delivery_throughput.py [--deliveries 5000] [--channels 20] [--workers 2]

Starts the real processes on a scratch SQLite database (PUBLISHER_BENCH_DATABASE_URL names another
one; a PostgreSQL database's `public` schema is DROPPED and recreated) and PUBLISHER_REDIS_URL (or an
embedded Redis): `publisher scheduler`, `--workers` × `publisher worker` and `publisher web`
(gunicorn). `--deliveries` deliveries on `--channels` signed-webhook channels pointing at a local
receiver that answers 200 at once are bulk-inserted, then all made due at one moment. Measured:
from that moment to the last `sent_at` in the database (claim, job, render, HTTP post, state
recorded). Meanwhile the peak RSS of each worker and of the web app (gunicorn and its workers) is
sampled every 50 ms while a logged-in client asks for /healthz, the items list and an item page,
and the CPU time of every process (the scheduler's too) is read at each sample.

The floor: the same number of no-op RQ jobs enqueued with enqueue_many and run by `--workers` burst
`rq.SimpleWorker` processes, from the first job's start to the last job's end.
The aim (the delivery engine issue): at least 1.5x the floor's jobs per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tick", type=float, default=0.25, help="PUBLISHER_TICK_SECONDS")
    parser.add_argument("--in-flight", type=int, default=32, help="PUBLISHER_IN_FLIGHT")
    parser.add_argument("--batch-size", type=int, default=100, help="PUBLISHER_BATCH_SIZE")
    parser.add_argument("--timeout", type=float, default=100, help="give up waiting after this many seconds")
    parser.add_argument("--no-web", action="store_true", help="no web process, no page polling")
    args = parser.parse_args()
    per_channel = max(1, args.deliveries // args.channels)
    total = per_channel * args.channels

    print(h.machine())
    print(f"engine: {h.engine_description()}; {args.workers} workers, 1 scheduler, tick {args.tick} s, "
          f"in flight {args.in_flight}, batch size {args.batch_size}")
    print(f"{total} deliveries: {args.channels} webhook channels x {per_channel} items, all due at once; "
          "the receiver answers 200 at once")
    from publisher.models import utcnow

    service = None
    with h.Receiver() as receiver:
        try:
            service = h.Service(database_url=os.environ.get("PUBLISHER_BENCH_DATABASE_URL"), tick=args.tick,
                                in_flight=args.in_flight, batch_size=args.batch_size)
            began = time.perf_counter()
            service.fill(args.channels, per_channel, receiver)
            print(f"database: {service.database_url.split(':')[0]}, filled in {time.perf_counter() - began:.1f} s; "
                  f"Redis: {service.redis_url.split('://')[0]}")
            children = service.start_engine(args.workers, web=not args.no_web)
            watched = {name: c.proc.pid for name, c in children.items()}
            poller = h.WebPoller(f"http://127.0.0.1:{service.port}") if not args.no_web else None
            with h.MemorySampler(watched) as memory:
                if poller:
                    poller.__enter__()
                try:
                    time.sleep(1.0)  # idle figures first; the processes have settled
                    due = utcnow()
                    service.release(due)
                    counts = service.wait_settled(total, args.timeout)
                finally:
                    if poller:
                        poller.__exit__()
            first_sent, last_sent = service.sent_times()
            for child in service.children:  # the floor runs alone
                child.stop()
            floor = h.raw_rq(service.redis_url, total, args.workers)
        finally:
            if service:
                service.close()

    sent = counts.get("sent", 0)
    print(f"\nstates at the end: {dict(counts)}")
    if sent:
        seconds = (last_sent - due).total_seconds()
        rate = sent / seconds
        partial = "" if sent >= total else f" (TIMED OUT after {args.timeout:g} s: {sent} of {total} sent)"
        print(f"delivered {sent} in {seconds:.2f} s (due -> last sent_at): {rate:.1f} deliveries/s{partial}; "
              f"first sent {(first_sent - due).total_seconds():.2f} s after due")
    else:
        rate = 0.0
        print("nothing was sent")
    keys = Counter(a.key for a in receiver.arrivals)
    print(f"receiver: {len(receiver.arrivals)} requests, {len(keys)} distinct Idempotency-Keys, "
          f"{sum(n - 1 for n in keys.values())} repeats")
    for name in watched:
        if name != "scheduler":
            single = f" (largest process {h.mib(memory.peak_single[name])})" if name == "web" else ""
            print(f"peak RSS {name}: {h.mib(memory.peak[name])}{single}")
    print(f"  ({memory.samples} samples every 50 ms)")
    cpu = {name: memory.cpu_seconds(name) for name in watched}
    workers = sum(v for k, v in cpu.items() if k.startswith("worker"))
    print("CPU seconds from 1 s before due to the end: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
          + (f"; the workers' per delivery: {workers / sent * 1000:.2f} ms" if sent else ""))
    if poller:
        print(f"web during the run: {poller.summary()}")

    print(f"floor: raw RQ no-op jobs, {args.workers} burst SimpleWorker processes, the same Redis: "
          f"{floor['finished']} jobs in {floor['seconds']:.2f} s (first start -> last end): "
          f"{floor['per_second']:.1f} jobs/s (workers' wall time with start-up {floor['wall']:.2f} s; "
          f"enqueue_many took {floor['enqueue_seconds']:.2f} s)")
    ratio = rate / floor["per_second"]
    print(f"ratio deliveries/s / raw RQ jobs/s: {ratio:.2f}; aim (>= 1.5x): {h.verdict(ratio >= 1.5)}")


if __name__ == "__main__":
    h.run(main)
