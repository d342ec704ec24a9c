"""A burst on slow channels: the makespan of many deliveries due in the same second, next to the ideal.

    .venv/bin/python bench/delivery_burst.py [--deliveries 1000] [--channels 100] [--latency 0.2]

Starts the real processes (`publisher scheduler` and `--workers` × `publisher worker`) on a scratch
SQLite database (PUBLISHER_BENCH_DATABASE_URL names another one; a PostgreSQL database's `public`
schema is DROPPED and recreated) and PUBLISHER_REDIS_URL (or an embedded Redis). `--deliveries`
deliveries on `--channels` signed-webhook channels are all due at the same instant; the local
receiver takes `--latency` seconds to answer each request (the requests wait concurrently).
Measured: the makespan, from the due time to the moment the last request is answered.

The ideal (the floor): the larger of N × latency ÷ (workers × PUBLISHER_IN_FLIGHT), everything spread
over every concurrent send, and the longest per-channel chain × latency, a channel's deliveries going
out one after another. The aim (the delivery engine issue): a makespan within 1.25x the ideal.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the receiver takes per request")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tick", type=float, default=0.25, help="PUBLISHER_TICK_SECONDS")
    parser.add_argument("--in-flight", type=int, default=32, help="PUBLISHER_IN_FLIGHT")
    parser.add_argument("--batch-size", type=int, default=100, help="PUBLISHER_BATCH_SIZE")
    parser.add_argument("--lead", type=float, default=1.0, help="seconds from the release to the due time")
    parser.add_argument("--timeout", type=float, default=150, help="give up waiting after this many seconds")
    args = parser.parse_args()
    per_channel = max(1, args.deliveries // args.channels)
    total = per_channel * args.channels
    ideal_spread = total * args.latency / (args.workers * args.in_flight)
    ideal_chain = per_channel * args.latency
    ideal = max(ideal_spread, ideal_chain)

    print(h.machine())
    print(f"engine: {h.engine_description()}; {args.workers} workers, 1 scheduler, tick {args.tick} s, "
          f"in flight {args.in_flight}, batch size {args.batch_size}")
    print(f"{total} deliveries: {args.channels} webhook channels x {per_channel} items, all due in the same "
          f"instant; the receiver answers each request after {args.latency * 1000:.0f} ms")
    from publisher.models import utcnow

    service = None
    with h.Receiver(latency=args.latency) as receiver:
        try:
            service = h.Service(database_url=os.environ.get("PUBLISHER_BENCH_DATABASE_URL"), tick=args.tick,
                                in_flight=args.in_flight, batch_size=args.batch_size)
            service.fill(args.channels, per_channel, receiver)
            print(f"database: {service.database_url.split(':')[0]}; Redis: {service.redis_url.split('://')[0]}")
            service.start_engine(args.workers)
            due = utcnow() + timedelta(seconds=args.lead)
            service.release(due)
            counts = service.wait_settled(total, args.lead + args.timeout)
            time.sleep(args.latency + 0.1)  # the last answer is recorded once written
        finally:
            if service:
                service.close()

    answered = [a for a in receiver.arrivals if a.answered]
    print(f"\nstates at the end: {dict(counts)}")
    keys = Counter(a.key for a in receiver.arrivals)
    print(f"receiver: {len(receiver.arrivals)} requests ({len(answered)} answered), {len(keys)} distinct "
          f"Idempotency-Keys, {sum(n - 1 for n in keys.values())} repeats")
    if not answered:
        print("nothing arrived")
        return
    start = due.timestamp()
    makespan = max(a.answered for a in answered) - start
    early = [a for a in receiver.arrivals if a.arrived < start]
    # How many requests the receiver held at once, and how the channels' calls overlapped.
    events = sorted([(a.arrived, 1) for a in answered] + [(a.answered, -1) for a in answered])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    by_channel = defaultdict(list)
    for a in answered:
        by_channel[a.path].append(a)
    overlaps = sum(1 for calls in by_channel.values() for x, y in zip(sorted(calls, key=lambda a: a.arrived),
                   sorted(calls, key=lambda a: a.arrived)[1:], strict=False) if y.arrived < x.answered)
    print(f"first request {min(a.arrived for a in answered) - start:.3f} s after due, {len(early)} before it; "
          f"at most {peak} requests in progress at once; {overlaps} calls to a channel started before its "
          "previous call was answered")
    done = "" if len(keys) >= total else f" (only {len(keys)} of {total} delivered within the timeout)"
    print(f"makespan (due -> last request answered): {makespan:.2f} s{done}")
    print(f"ideal: max({total} x {args.latency} s / ({args.workers} workers x {args.in_flight} in flight) = "
          f"{ideal_spread:.2f} s, {per_channel} per channel x {args.latency} s = {ideal_chain:.2f} s) = {ideal:.2f} s")
    if args.in_flight > 1 and not h.batched():
        one = max(total * args.latency / args.workers, ideal_chain)
        print(f"  (this engine sends one at a time per worker: its own ideal is {one:.2f} s)")
    ratio = makespan / ideal
    print(f"ratio makespan / ideal: {ratio:.2f}; aim (<= 1.25x): {h.verdict(ratio <= 1.25 and not done)}")


if __name__ == "__main__":
    h.run(main)
