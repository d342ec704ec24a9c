"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from publisher.extensions import db


def test_models_and_migrations_agree(app):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_deliveries_queued_at_the_upgrade_become_claims_and_back(app):
    """Migration 0005: a delivery queued when it runs keeps its job (a claim of the same attempt and
    lease); the downgrade makes it queued again."""
    from datetime import timedelta

    from alembic import command
    from sqlalchemy import select, text

    from publisher.migrate import alembic_config
    from publisher.models import Delivery, DeliveryClaim, utcnow
    from tests.factories import make_channel, make_item

    channel, item = make_channel("feed"), make_item()
    db.session.commit()
    channel_id, item_id = channel.id, item.id
    now = utcnow().replace(microsecond=0)
    cfg = alembic_config(app)
    db.session.remove()
    command.downgrade(cfg, "0004")
    try:
        insert = text("INSERT INTO deliveries (item_id, channel_id, status, due_at, next_attempt_at, attempt, "
                      "failures, lease_until, idempotency_key, created_at, updated_at) VALUES "
                      "(:item, :channel, :status, :at, :at, :attempt, 0, :lease, :key, :at, :at)")
        with db.engine.begin() as conn:
            for key, status, attempt, lease in (("q", "queued", 2, now + timedelta(seconds=15)),
                                                ("s", "scheduled", 0, None)):
                conn.execute(insert, dict(item=item_id, channel=channel_id, status=status, at=now, attempt=attempt,
                                          lease=lease, key=key))
    finally:
        command.upgrade(cfg, "head")
    rows = {d.idempotency_key: d for d in db.session.scalars(select(Delivery))}
    assert {k: (d.status, d.attempt, d.state) for k, d in rows.items()} == {
        "q": ("scheduled", 1, "queued"), "s": ("scheduled", 0, "scheduled")}
    claim = db.session.scalars(select(DeliveryClaim)).one()
    assert (claim.delivery_id, claim.attempt, claim.channel_id, claim.next_attempt_at, claim.lease_until) == (
        rows["q"].id, 2, channel_id, now, now + timedelta(seconds=15))
    db.session.remove()
    command.downgrade(cfg, "0004")
    try:
        with db.engine.connect() as conn:
            back = conn.execute(text("SELECT idempotency_key, status, attempt FROM deliveries ORDER BY id")).all()
        assert [tuple(r) for r in back] == [("q", "queued", 2), ("s", "scheduled", 0)]
    finally:
        command.upgrade(cfg, "head")
