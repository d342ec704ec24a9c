"""claims in a table of their own

Revision ID: 0005
Revises: 0004
A scheduler's claim was an update of the delivery (status `queued`, attempt + 1, lease), and the
deliveries row is wide and has six indexes, each written again by such an update. A claim is now a
row of the narrow delivery_claims table, and the delivery stays `scheduled` until a worker starts it.
Deliveries queued at the upgrade become claims as they were: their jobs still find them.

Create Date: 2026-11-23 22:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_claims",
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("delivery_id"),
    )
    op.create_index("ix_delivery_claims_channel_id", "delivery_claims", ["channel_id"], unique=False)
    op.create_index("ix_delivery_claims_lease_until", "delivery_claims", ["lease_until"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # A queue table: every send adds a row and removes it. Vacuumed after a thousand dead rows
        # rather than after a fifth of the table, so that the claim's scan of it stays short.
        op.execute("ALTER TABLE delivery_claims SET (autovacuum_vacuum_scale_factor = 0, "
                   "autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0, "
                   "autovacuum_vacuum_insert_threshold = 1000)")
    op.execute("INSERT INTO delivery_claims (delivery_id, attempt, channel_id, next_attempt_at, lease_until) "
               "SELECT id, attempt, channel_id, next_attempt_at, COALESCE(lease_until, updated_at) "
               "FROM deliveries WHERE status = 'queued'")
    op.execute("UPDATE deliveries SET status = 'scheduled', attempt = attempt - 1, lease_until = NULL "
               "WHERE status = 'queued'")


def downgrade() -> None:
    op.execute("UPDATE deliveries SET status = 'queued', attempt = attempt + 1, lease_until = ("
               "SELECT lease_until FROM delivery_claims WHERE delivery_claims.delivery_id = deliveries.id) "
               "WHERE status = 'scheduled' AND EXISTS ("
               "SELECT 1 FROM delivery_claims WHERE delivery_claims.delivery_id = deliveries.id)")
    op.drop_index("ix_delivery_claims_lease_until", table_name="delivery_claims")
    op.drop_index("ix_delivery_claims_channel_id", table_name="delivery_claims")
    op.drop_table("delivery_claims")
