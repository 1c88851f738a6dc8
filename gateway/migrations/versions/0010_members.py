"""Team members: the member who owns a key, and a spend cap per member that resets each
period, with the leases gateway processes hold on it.

Revision ID: 0010_members
Revises: 0009_events
Create Date: 2026-11-30 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0010_members"
down_revision = "0009_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("member_id", sa.String(length=36), nullable=True))
        batch_op.create_index("ix_api_keys_account_member", ["account_id", "member_id"], unique=False)
    op.create_table(
        "member_budgets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("budget_micro_p", sa.BigInteger(), nullable=True),
        sa.Column("budget_period", sa.String(length=8), nullable=True),
        sa.Column("spent_micro_p", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("leased_micro_p", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=True),
        sa.Column("resets_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "member_id", name="uq_member_budgets_member"),
    )
    op.create_table(
        "member_budget_leases",
        sa.Column("member_budget_id", sa.String(length=36), nullable=False),
        sa.Column("holder_id", sa.String(length=36), nullable=False),
        sa.Column("amount_micro_p", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["member_budget_id"], ["member_budgets.id"]),
        sa.PrimaryKeyConstraint("member_budget_id", "holder_id"),
    )
    op.create_index("ix_member_budget_leases_expires_at", "member_budget_leases", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_member_budget_leases_expires_at", table_name="member_budget_leases")
    op.drop_table("member_budget_leases")
    op.drop_table("member_budgets")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_account_member")
        batch_op.drop_column("member_id")
