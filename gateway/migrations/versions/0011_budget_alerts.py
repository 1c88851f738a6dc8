"""Budget alerts: an event names the key (or member) whose budget period it is about.

Revision ID: 0011_budget_alerts
Revises: 0009_events
Create Date: 2026-11-30 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0011_budget_alerts"
down_revision = "0010_members"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("account_events", sa.Column("subject_kind", sa.String(8)))
    op.add_column("account_events", sa.Column("subject_id", sa.String(36)))
    op.add_column("account_events", sa.Column("period_start", sa.DateTime()))
    op.add_column("account_events", sa.Column("resets_at", sa.DateTime()))
    op.add_column("account_events", sa.Column("budget_micro_p", sa.BigInteger()))
    op.add_column("account_events", sa.Column("spent_micro_p", sa.BigInteger()))
    # One event of each kind per budget period, whoever records it; balance events (no
    # subject) are left alone, as NULLs never collide in a unique index.
    op.create_index("ux_account_events_budget_period", "account_events",
                    ["kind", "account_id", "subject_kind", "subject_id", "period_start"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_account_events_budget_period", table_name="account_events")
    for column in ("spent_micro_p", "budget_micro_p", "resets_at", "period_start", "subject_id", "subject_kind"):
        op.drop_column("account_events", column)
