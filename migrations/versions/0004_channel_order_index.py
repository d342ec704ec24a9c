"""index for each channel's delivery order

Revision ID: 0004
Revises: 0003
The claim keeps each channel's deliveries in their scheduled order: for every due delivery it
asks whether its channel has one queued or sending, and whether an earlier one of the channel
waits for a retry. Both are lookups on (channel_id, status, due_at).

Create Date: 2026-11-23 17:05:00
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_channel_status_due", "deliveries", ["channel_id", "status", "due_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_deliveries_channel_status_due", table_name="deliveries")
