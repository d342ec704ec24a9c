"""indexes for predicted issue numbers

Revision ID: 0003
Revises: 0002
The calendar predicts the issue numbers of a month for every column at once (schedule.Numbering):
the last number per column, the planned times of each column in the month, and how many
unpublished items are planned before it. Each of those queries reads an index instead of every item.

Create Date: 2026-11-23 16:30:00
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

INDEXES = {
    "ix_items_column_issue": ["column_id", "issue_number"],
    "ix_items_column_planned": ["column_id", "planned_at"],
    "ix_items_status_planned": ["status", "planned_at"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "items", columns, unique=False)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="items")
