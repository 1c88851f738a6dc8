"""Balance thresholds and the event outbox the portal polls.

Revision ID: 0009_events
Revises: 0008_channels
Create Date: 2026-11-30 13:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0009_events"
down_revision = "0008_channels"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "balance_thresholds",
        sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("threshold_micro_p", sa.BigInteger(), nullable=False),
        sa.Column("armed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "name", name="pk_balance_thresholds"),
    )
    op.create_table(
        "account_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("balance_micro_p", sa.BigInteger(), nullable=False),
        sa.Column("threshold_micro_p", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("account_events")
    op.drop_table("balance_thresholds")
