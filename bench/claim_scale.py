"""How the claim scales: claim_due taking 500 due deliveries among 1,000,000 scheduled ones, next to
the same claim among 10,000 (the floor). PostgreSQL only.

    PUBLISHER_BENCH_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/scratch \\
    .venv/bin/python bench/claim_scale.py [--large 1000000] [--small 10000] [--due 500] [--runs 20]

PUBLISHER_BENCH_PG_URL must name a scratch database: its `public` schema is DROPPED and recreated,
migrated, then filled with COPY: 10 enabled webhook channels, one scheduled item per 10 deliveries,
and the deliveries, all `scheduled`: `--due` of them (ids spread over the table) due in the last
minute, every other one due between a day and a year ahead. After ANALYZE it times
`publisher.dispatch.claim_due(now, limit=--due)` (the advisory lock, the INSERT … SELECT … RETURNING
into delivery_claims and the commit), `--runs` times after 3 untimed warm-ups; after each run the
claims are deleted, so every run claims the same rows. Prints the median, p95 and the query plan of
the claim (EXPLAIN ANALYZE, rolled back) on the large table, and two references measured on the same
rows in the same run (each rolled back): their claims inserted alone, with no selection (the floor
of writing a claim), and the same rows updated in `deliveries` the way a claim was written before it
had a table of its own (status `queued`, attempt, lease: a new entry in each of the table's indexes).

Redis: PUBLISHER_REDIS_URL, or an embedded server (the claim itself does not use it).
The aim (the delivery engine issue): median < 20 ms on the large table, and <= 1.5x the small one's.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

CHANNELS = 10
WARMUPS = 3


def fill(service: h.Service, total: int, due: int, rng: random.Random):
    """COPY the data set in; returns the time `now` the due deliveries are due before."""
    from sqlalchemy import text

    from publisher.extensions import db
    from publisher.models import Channel, utcnow

    now = utcnow()
    with service.app.app_context():
        channels = []
        for n in range(CHANNELS):
            channel = Channel(name=f"Channel {n + 1}", type="webhook")
            channel.config = {"url": "http://127.0.0.1:9/", "secret": "x"}
            channels.append(channel)
        db.session.add_all(channels)
        db.session.commit()
        channel_ids = [c.id for c in channels]
        items = -(-total // CHANNELS)
        due_rows = set(rng.sample(range(total), due))
        raw = db.engine.raw_connection()
        try:
            conn = raw.driver_connection
            with conn.cursor() as cur:
                columns = ("id, origin, format, title, body, status, created_at, updated_at, theme, link_url, "
                           "event_place, event_url, review_comment, version, planned_at")
                with cur.copy(f"COPY items ({columns}) FROM STDIN") as copy:
                    for i in range(1, items + 1):
                        copy.write_row((i, "pgc", "article", f"Item {i}", "Body", "scheduled", now, now, "", "", "",
                                        "", "", 1, now + timedelta(days=1)))
                cur.execute("SELECT setval(pg_get_serial_sequence('items', 'id'), %s)", (items,))
                with cur.copy("COPY deliveries (item_id, channel_id, status, due_at, next_attempt_at, attempt, "
                              "failures, idempotency_key, created_at, updated_at) FROM STDIN") as copy:
                    for n in range(total):
                        if n in due_rows:
                            at = now - timedelta(seconds=rng.uniform(1, 60))
                        else:
                            at = now + timedelta(days=1, seconds=rng.uniform(0, 364 * 86400))
                        copy.write_row((n // CHANNELS + 1, channel_ids[n % CHANNELS], "scheduled", at, at, 0, 0,
                                        secrets.token_hex(16), now, now))
            conn.commit()
        finally:
            raw.close()
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        db.session.remove()
    return now


def measure(service: h.Service, now, due: int, runs: int,
            explain: bool) -> tuple[list[float], list[tuple], dict[str, list[float]], str]:
    """Milliseconds per claim_due call; per call the part spent in the claim statement and the rest
    (the lock, the commit, Python); the references (see the module's text); the query plan."""
    from sqlalchemy import event, text

    from publisher import dispatch
    from publisher.extensions import db

    times, claim_times, plan = [], [], ""
    references: dict[str, list[float]] = {"insert": [], "update": []}
    reference_sql = {
        "insert": "INSERT INTO delivery_claims (delivery_id, attempt, channel_id, next_attempt_at, lease_until) "
                  "SELECT id, attempt + 1, channel_id, next_attempt_at, now() FROM deliveries WHERE id = ANY(:ids)",
        "update": "UPDATE deliveries SET status = 'queued', attempt = attempt + 1, lease_until = now(), "
                  "updated_at = now() WHERE id = ANY(:ids)",
    }
    with service.app.app_context():
        captured: list[tuple[str, object]] = []
        started: list[float] = []
        in_claim: list[float] = []

        def before(_conn, _cursor, statement, parameters, _context, _executemany):
            captured.append((statement, parameters))
            started.append(time.perf_counter())

        def after(_conn, _cursor, statement, _parameters, _context, _executemany):
            if "delivery_claims" in statement:
                in_claim.append((time.perf_counter() - started[-1]) * 1000)

        event.listen(db.engine, "before_cursor_execute", before)
        event.listen(db.engine, "after_cursor_execute", after)
        for run in range(WARMUPS + runs):
            captured.clear()
            in_claim.clear()
            began = time.perf_counter()
            claimed = dispatch.claim_due(now, limit=due)
            elapsed = (time.perf_counter() - began) * 1000
            statements, claim_ms = list(captured), sum(in_claim)
            if len(claimed) != due:
                raise RuntimeError(f"claimed {len(claimed)} deliveries, expected {due}")
            if run >= WARMUPS:
                times.append(elapsed)
                claim_times.append((claim_ms, elapsed - claim_ms))
            ids = [i for i, _ in claimed]
            db.session.execute(text("DELETE FROM delivery_claims WHERE delivery_id = ANY(:ids)"), {"ids": ids})
            db.session.commit()
            if run >= WARMUPS:
                for name, sql in reference_sql.items():
                    began = time.perf_counter()
                    db.session.execute(text(sql), {"ids": ids})
                    references[name].append((time.perf_counter() - began) * 1000)
                    db.session.rollback()
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)
        if explain:
            # The claim statement, explained with its parameters inside a transaction that is rolled back.
            with db.engine.connect() as conn:
                for statement, parameters in statements:
                    if "delivery_claims" not in statement:
                        continue
                    rows = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).all()
                    plan += f"{statement.strip()}\n{'-' * 40}\n" + "\n".join(r[0] for r in rows) + "\n\n"
                    conn.rollback()
        db.session.remove()
    return times, claim_times, references, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=500)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    url = os.environ.get("PUBLISHER_BENCH_PG_URL")
    if not url or url.startswith("sqlite"):
        sys.exit("claim_scale needs PUBLISHER_BENCH_PG_URL: a scratch PostgreSQL database (its schema is dropped)")
    print(h.machine())
    results = {}
    for label, total in (("small", args.small), ("large", args.large)):
        service = None
        try:
            service = h.Service(database_url=url)
            began = time.perf_counter()
            now = fill(service, total, args.due, random.Random(20261123))
            with service.app.app_context():
                from sqlalchemy import text

                from publisher.extensions import db

                server = db.session.execute(text("SHOW server_version")).scalar()
                db.session.remove()
            print(f"\n{total:,} scheduled deliveries ({args.due} due), PostgreSQL {server}: "
                  f"filled with COPY in {time.perf_counter() - began:.1f} s")
            times, claim_times, references, plan = measure(service, now, args.due, args.runs,
                                                           explain=label == "large")
        finally:
            if service:
                service.close()
        results[label] = times
        print(f"  claim_due(limit={args.due}) over {len(times)} runs: median {statistics.median(times):.1f} ms, "
              f"p95 {h.pct(times, 95):.1f} ms, min {min(times):.1f} ms, max {max(times):.1f} ms")
        print("    medians of its parts: the claim statement {:.1f} ms, the lock, the commit and the rest {:.1f} ms"
              .format(*(statistics.median(t[k] for t in claim_times) for k in range(2))))
        print(f"    references on the same {args.due} rows: their claims inserted alone (no selection) "
              f"{statistics.median(references['insert']):.1f} ms; updated in deliveries as a claim was written "
              f"before (status, attempt, lease) {statistics.median(references['update']):.1f} ms")
        if plan:
            print(f"\nquery plan of the claim among {total:,}:\n{plan}")
    large, small = statistics.median(results["large"]), statistics.median(results["small"])
    ratio = large / small
    print(f"median among {args.large:,}: {large:.1f} ms; among {args.small:,} (the floor): {small:.1f} ms; "
          f"ratio {ratio:.2f}")
    print(f"aim (< 20 ms and <= 1.5x the floor): {h.verdict(large < 20 and ratio <= 1.5)}")


if __name__ == "__main__":
    h.run(main)
