"""How fast the calendar loads one month, next to the bare SQL query for the same month (the floor).

    .venv/bin/python bench/calendar_api.py [--items 20000] [--requests 200]

Fills a temporary SQLite database (and, when PUBLISHER_BENCH_PG_URL is set, that PostgreSQL
database, whose `public` schema is DROPPED and recreated: give it a scratch database) with
`--items` items over two years across 20 weekly columns, each item with 1-3 deliveries on a few
channels and a mix of statuses, written with bulk inserts. Then, logged in as an editor through
the Flask test client, it asks the calendar events endpoint for one month at a time (10 warm-ups,
then `--requests` requests over different months) twice: as editors load it (a month seen before
comes from the cache), and with a write before every request (each answer computed afresh). It
runs the bare query the same number of times: the items planned in the month joined with their
deliveries, through SQLAlchemy core.

Redis: PUBLISHER_REDIS_URL, or an embedded server in the temporary instance folder.
The aim (issue 3): p50 within 2x of the floor's p50, and under 30 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from anywhere

from sqlalchemy import create_engine, insert, select, text  # noqa: E402

from publisher import calendar_cache, create_app, embedded_redis  # noqa: E402
from publisher.extensions import db  # noqa: E402
from publisher.migrate import upgrade  # noqa: E402
from publisher.models import (  # noqa: E402
    Channel,
    Column,
    Delivery,
    DeliveryStatus,
    Item,
    ItemStatus,
    Organisation,
    Role,
    column_channels,
    utcnow,
)
from publisher.schedule import weekly_rule  # noqa: E402
from publisher.security import create_user  # noqa: E402

COLUMNS = 20
CHANNELS = 6
PATHS = ("/api/calendar/events", "/calendar/events")  # engineer C's API, then the page's own route
WARMUPS = 10
CHUNK = 2000
EMAIL, PASSWORD = "bench-editor@example.com", "bench-password"
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def months(zone: ZoneInfo, now: datetime) -> list[tuple[datetime, datetime]]:
    """The 24 calendar months (org-local) around now, as naive wall-clock bounds."""
    year, month = now.astimezone(zone).year - 1, now.astimezone(zone).month
    bounds = []
    for _ in range(24):
        start = datetime(year, month, 1)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        bounds.append((start, datetime(year, month, 1)))
    return bounds


def fill(items: int, rng: random.Random) -> None:
    """Bulk-insert the data set (the caller holds an app context on a migrated, empty database)."""
    now = utcnow().replace(second=0, microsecond=0)
    first = now - timedelta(days=365)
    create_user(EMAIL, PASSWORD, Role.EDITOR)
    channels = []
    for n in range(CHANNELS):
        channel = Channel(name=f"Channel {n + 1}", type="feed" if n % 3 == 2 else "webhook")
        channel.config = {"title": "Bench"} if channel.type == "feed" else {"url": "http://127.0.0.1:9/", "secret": "x"}
        channels.append(channel)
    db.session.add_all(channels)
    db.session.commit()
    channel_ids = [c.id for c in channels]

    db.session.execute(insert(Column), [
        {"id": n + 1, "name": f"Column {n + 1}", "slug": f"column-{n + 1}", "color": f"#{rng.randrange(0x1000000):06x}",
         "cadence": weekly_rule([DAYS[n % 7]], 20, 0), "cadence_start": first, "timezone": "Asia/Shanghai",
         "themes": "Stories\nPeople\nHow-to"} for n in range(COLUMNS)
    ])
    db.session.execute(insert(column_channels), [
        {"column_id": n + 1, "channel_id": channel_ids[(n + k) % CHANNELS]} for n in range(COLUMNS) for k in range(2)
    ])

    future_statuses = (ItemStatus.DRAFT, ItemStatus.IN_REVIEW, ItemStatus.APPROVED, ItemStatus.SCHEDULED)
    item_rows, delivery_rows = [], []
    for item_id in range(1, items + 1):
        planned = first + timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))
        past = planned < now
        status = ItemStatus.PUBLISHED if past and rng.random() < 0.9 else rng.choice(future_statuses)
        item_rows.append({
            "id": item_id, "column_id": item_id % COLUMNS + 1, "title": f"Item {item_id}: 第{item_id}期",
            "body": "Body text", "status": status, "planned_at": planned, "version": 1,
            "created_at": planned - timedelta(days=7), "updated_at": planned - timedelta(days=1),
            "published_at": planned if status == ItemStatus.PUBLISHED else None,
        })
        for channel_id in rng.sample(channel_ids, rng.randint(1, 3)):
            if status == ItemStatus.PUBLISHED:
                delivery_status = DeliveryStatus.SENT if rng.random() < 0.95 else DeliveryStatus.FAILED
            else:
                delivery_status = DeliveryStatus.SCHEDULED
            delivery_rows.append({
                "item_id": item_id, "channel_id": channel_id, "status": delivery_status, "due_at": planned,
                "next_attempt_at": planned, "idempotency_key": secrets.token_hex(16),
                "attempt": 1 if past else 0, "sent_at": planned if delivery_status == DeliveryStatus.SENT else None,
                "created_at": planned - timedelta(days=7), "updated_at": planned,
            })
    for start in range(0, len(item_rows), CHUNK):
        db.session.execute(insert(Item), item_rows[start:start + CHUNK])
    for start in range(0, len(delivery_rows), CHUNK):
        db.session.execute(insert(Delivery), delivery_rows[start:start + CHUNK])
    db.session.commit()


def floor_query(start: datetime, end: datetime):
    """The least any calendar endpoint must do: read the month's items and their deliveries."""
    return (
        select(Item.id, Item.title, Item.status, Item.column_id, Item.planned_at,
               Delivery.id.label("delivery_id"), Delivery.channel_id, Delivery.status.label("delivery_status"))
        .select_from(Item)
        .outerjoin(Delivery, Delivery.item_id == Item.id)
        .where(Item.planned_at >= start, Item.planned_at < end)
        .order_by(Item.planned_at, Item.id)
    )


def timed(calls: list[Callable[[], object]], prepare: Callable[[], object] | None = None) -> list[float]:
    """Milliseconds per call, after WARMUPS untimed calls; `prepare` runs untimed before each."""
    for call in calls[:WARMUPS]:
        call()
    times = []
    for call in calls[WARMUPS:]:
        if prepare:
            prepare()
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return times


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def bench(label: str, url: str, instance: Path, redis_url: str, items: int, requests: int) -> dict:
    app = create_app({
        "DATABASE_URL": url, "REDIS_URL": redis_url, "INSTANCE_PATH": str(instance), "SECRET_KEY": secrets.token_hex(),
        "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False, "QUEUE": "bench", "BASE_URL": "http://127.0.0.1:5000",
    })
    upgrade(app)
    with app.app_context():
        began = time.perf_counter()
        fill(items, random.Random(20260301))
        fill_seconds = time.perf_counter() - began
        db.session.remove()
        zone = ZoneInfo(db.session.get(Organisation, 1).timezone)  # the calendar's months are the org's
        bounds = months(zone, utcnow())
        sequence = [bounds[i % len(bounds)] for i in range(WARMUPS + requests)]

    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    assert client.post("/login", data={"email": EMAIL, "password": PASSWORD}).status_code == 302, "login failed"
    path = next(p for p in PATHS if client.get(f"{p}?start=2030-01-01T00:00:00&end=2030-01-02T00:00:00").status_code
                != 404)

    def request(start: datetime, end: datetime) -> Callable[[], object]:
        def call():
            response = client.get(f"{path}?start={start.isoformat()}&end={end.isoformat()}")
            assert response.status_code == 200, response.get_data(as_text=True)[:300]
            return response.get_json()
        return call

    sample = request(*bounds[12])()  # this month: a full month of data on both sides
    events = len(sample if isinstance(sample, list) else sample.get("data") or sample.get("events") or [])
    api_times = timed([request(*b) for b in sequence])  # repeat loads: mostly answered from the cache

    def something_changed():
        with app.app_context():
            calendar_cache.bump()  # what any write does: every stored answer is out of date

    cold_times = timed([request(*b) for b in sequence], prepare=something_changed)

    with app.app_context():
        engine = db.engine
        utc = [(s.replace(tzinfo=zone).astimezone(UTC), e.replace(tzinfo=zone).astimezone(UTC)) for s, e in sequence]

        def query(start: datetime, end: datetime) -> Callable[[], object]:
            def call():
                with engine.connect() as conn:
                    return conn.execute(floor_query(start, end)).all()
            return call

        rows = len(query(*utc[12])())  # the same month as the sample request
        floor_times = timed([query(*b) for b in utc])
        ask = "select sqlite_version()" if url.startswith("sqlite") else "show server_version"
        server = db.session.execute(text(ask)).scalar()
        db.session.remove()
        engine.dispose()

    result = {
        "label": f"{label} {server}", "path": path, "fill_seconds": fill_seconds, "events": events, "rows": rows,
        "p50": p(api_times, 50), "p95": p(api_times, 95), "cold_p50": p(cold_times, 50),
        "cold_p95": p(cold_times, 95), "floor_p50": p(floor_times, 50),
        "floor_p95": p(floor_times, 95),
    }
    result["ratio"] = result["p50"] / result["floor_p50"]
    result["cold_ratio"] = result["cold_p50"] / result["floor_p50"]
    result["aim"] = result["ratio"] <= 2 and result["p50"] < 30
    return result


def reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="publisher-bench-"))
    instance = work / "instance"
    redis_url = os.environ.get("PUBLISHER_REDIS_URL") or embedded_redis.ensure(instance)
    targets = [("SQLite", f"sqlite:///{work / 'bench.db'}")]
    if os.environ.get("PUBLISHER_BENCH_PG_URL"):
        targets.append(("PostgreSQL", os.environ["PUBLISHER_BENCH_PG_URL"]))
    print(f"machine: {len(os.sched_getaffinity(0))} CPUs (nproc), Python {platform.python_version()}, "
          f"SQLite library {sqlite3.sqlite_version}; {args.items} items, {args.requests} requests of one month")
    try:
        for label, url in targets:
            if label == "PostgreSQL":
                reset_postgres(url)
            r = bench(label, url, instance, redis_url, args.items, args.requests)
            print(f"\n{r['label']}: filled in {r['fill_seconds']:.1f} s; one month = {r['events']} events, "
                  f"{r['rows']} rows")
            print(f"  GET {r['path']}, repeat loads: p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms")
            print(f"  GET {r['path']}, first load after a change (no cache): p50 {r['cold_p50']:.1f} ms, "
                  f"p95 {r['cold_p95']:.1f} ms; ratio to the floor {r['cold_ratio']:.2f}")
            print(f"  floor (bare SQL): p50 {r['floor_p50']:.1f} ms, p95 {r['floor_p95']:.1f} ms")
            print(f"  ratio p50/floor p50: {r['ratio']:.2f}; aim (within 2x of the floor and under 30 ms): "
                  f"{'met' if r['aim'] else 'MISSED'}")
    finally:
        if not os.environ.get("PUBLISHER_REDIS_URL"):
            embedded_redis.stop(instance)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
