"""index for each channel's delivery order

Revision ID: 0004
Revises: 0003
The claim keeps each channel's deliveries in their scheduled order: for every due delivery it
asks whether its channel has one queued or sending, and whether an earlier one of the channel
waits for a retry. The first is a lookup on (channel_id, status, due_at); the second on a partial
index of the deliveries that were claimed before and are scheduled again (the only ones that can
wait for a retry), so it never reads the deliveries planned for later.

Create Date: 2026-11-23 17:05:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


WAITING = "status = 'scheduled' AND attempt > 0"  # only deliveries claimed before can wait for a retry


def upgrade() -> None:
    op.create_index("ix_deliveries_channel_status_due", "deliveries", ["channel_id", "status", "due_at"], unique=False)
    op.create_index("ix_deliveries_waiting", "deliveries", ["channel_id", "due_at"], unique=False,
                    postgresql_where=sa.text(WAITING), sqlite_where=sa.text(WAITING))


def downgrade() -> None:
    op.drop_index("ix_deliveries_waiting", table_name="deliveries")
    op.drop_index("ix_deliveries_channel_status_due", table_name="deliveries")
