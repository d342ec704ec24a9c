"""How punctual deliveries are: the lag from each delivery's due time to its request at the receiver.

    .venv/bin/python bench/delivery_precision.py [--deliveries 500] [--channels 50] [--lead 3]

Starts the real processes (`publisher scheduler` and `--workers` × `publisher worker`) on a scratch
SQLite database (PUBLISHER_BENCH_DATABASE_URL names another one; a PostgreSQL database's `public`
schema is DROPPED and recreated) and PUBLISHER_REDIS_URL (or an embedded Redis). `--deliveries`
deliveries on `--channels` signed-webhook channels to a local receiver that answers at once are
due within one and the same second, `--lead` seconds after the processes are ready, each at its
own fraction of that second. Measured: for each delivery, the time from its due time to the
arrival of its request (matched by Idempotency-Key); none may arrive early.

The floor is zero lag; the aim (the delivery engine issue): p50 <= 0.3 s, p99 <= 1.0 s, minimum >= 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=500)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tick", type=float, default=0.25, help="PUBLISHER_TICK_SECONDS")
    parser.add_argument("--in-flight", type=int, default=32, help="PUBLISHER_IN_FLIGHT")
    parser.add_argument("--batch-size", type=int, default=100, help="PUBLISHER_BATCH_SIZE")
    parser.add_argument("--lead", type=float, default=3.0, help="seconds from the release to the due second")
    parser.add_argument("--timeout", type=float, default=90, help="give up waiting after this many seconds")
    args = parser.parse_args()
    per_channel = max(1, args.deliveries // args.channels)
    total = per_channel * args.channels

    print(h.machine())
    print(f"engine: {h.engine_description()}; {args.workers} workers, 1 scheduler, tick {args.tick} s, "
          f"in flight {args.in_flight}, batch size {args.batch_size}")
    print(f"{total} deliveries: {args.channels} webhook channels x {per_channel} items, due within one second "
          f"{args.lead:g} s after the start; the receiver answers at once")
    from publisher.models import utcnow

    service = None
    with h.Receiver() as receiver:
        try:
            service = h.Service(database_url=os.environ.get("PUBLISHER_BENCH_DATABASE_URL"), tick=args.tick,
                                in_flight=args.in_flight, batch_size=args.batch_size)
            service.fill(args.channels, per_channel, receiver)
            print(f"database: {service.database_url.split(':')[0]}; Redis: {service.redis_url.split('://')[0]}")
            service.start_engine(args.workers)
            second = utcnow().replace(microsecond=0) + timedelta(seconds=args.lead + 1)
            ids = service.delivery_ids()
            # Spread over the second (ids interleave the channels), so every fraction of it is tried.
            due_of = {i: second + timedelta(seconds=k / len(ids)) for k, i in enumerate(ids)}
            due_by_key = service.release(due_of)
            counts = service.wait_settled(total, args.lead + 1 + args.timeout)
        finally:
            if service:
                service.close()

    print(f"\nstates at the end: {dict(counts)}")
    firsts: dict[str, float] = {}
    for a in receiver.arrivals:
        firsts.setdefault(a.key, a.arrived)
    lags = [at - due_by_key[key].timestamp() for key, at in firsts.items() if key in due_by_key]
    print(f"receiver: {len(receiver.arrivals)} requests, {len(firsts)} distinct Idempotency-Keys")
    if not lags:
        print("nothing arrived")
        return
    early = sum(1 for lag in lags if lag < 0)
    print(f"lag from due time to arrival over {len(lags)} deliveries: {h.describe_lags(lags)}")
    print(f"early (before the due time): {early}")
    p50, p99 = h.pct(lags, 50), h.pct(lags, 99)
    missing = "" if len(lags) >= total else f" ({total - len(lags)} never arrived)"
    ok = p50 <= 0.3 and p99 <= 1.0 and early == 0 and not missing
    print(f"aim (p50 <= 0.3 s, p99 <= 1.0 s, none early): {h.verdict(ok)}{missing}")


if __name__ == "__main__":
    h.run(main)
