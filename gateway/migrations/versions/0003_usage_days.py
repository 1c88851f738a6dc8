"""Daily usage sums in each account's own time zone.

Revision ID: 0003_usage_days
Revises: 0002_catalog_versions
Create Date: 2026-11-25 15:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0003_usage_days"
down_revision = "0002_catalog_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("usage_tz", sa.String(length=64), server_default="UTC", nullable=False))
    op.create_table(
        "usage_days",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_micro_p", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("account_id", "day", "model", "key_id", name="pk_usage_days"),
        sqlite_with_rowid=False,
    )
    # Every account starts in UTC, whose days are whole groups of 96 buckets.
    op.execute(
        "INSERT INTO usage_days (account_id, day, key_id, model, requests, input_tokens, output_tokens, cost_micro_p) "
        "SELECT account_id, bucket_start / 86400, key_id, model, SUM(requests), SUM(input_tokens), "
        "SUM(output_tokens), SUM(cost_micro_p) FROM usage_rollups "
        "GROUP BY account_id, bucket_start / 86400, key_id, model"
    )


def downgrade() -> None:
    op.drop_table("usage_days")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("usage_tz")
