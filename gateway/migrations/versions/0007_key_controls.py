"""Per-key controls: a budget that resets each period, model and IP allow-lists, rate
limits per key and per account, and the shared counters of those limits.

Revision ID: 0007_key_controls
Revises: 0006_cache_usage
Create Date: 2026-11-30 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0007_key_controls"
down_revision = "0006_cache_usage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rpm_limit", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("tpm_limit", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("budget_micro_p", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("budget_period", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("budget_spent_micro_p", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("budget_leased_micro_p", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("budget_period_start", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("budget_resets_at", sa.DateTime(), nullable=True))
        # Existing keys keep reaching every model from anywhere.
        batch_op.add_column(sa.Column("allowed_models", sa.Text(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("allowed_ips", sa.Text(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("rpm_limit", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("tpm_limit", sa.BigInteger(), nullable=True))
    op.create_table(
        "key_budget_leases",
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("holder_id", sa.String(length=36), nullable=False),
        sa.Column("amount_micro_p", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("key_id", "holder_id"),
    )
    op.create_index("ix_key_budget_leases_expires_at", "key_budget_leases", ["expires_at"], unique=False)
    op.create_table(
        "rate_windows",
        sa.Column("scope", sa.String(length=48), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "window_start"),
    )
    op.create_index("ix_rate_windows_window_start", "rate_windows", ["window_start"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_rate_windows_window_start", table_name="rate_windows")
    op.drop_table("rate_windows")
    op.drop_index("ix_key_budget_leases_expires_at", table_name="key_budget_leases")
    op.drop_table("key_budget_leases")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        for name in ("tpm_limit", "rpm_limit", "allowed_ips", "allowed_models", "budget_resets_at",
                     "budget_period_start", "budget_leased_micro_p", "budget_spent_micro_p", "budget_period",
                     "budget_micro_p"):
            batch_op.drop_column(name)
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("tpm_limit")
        batch_op.drop_column("rpm_limit")
