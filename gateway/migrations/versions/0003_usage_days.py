"""Daily usage sums in each account's own time zone, by model and by key.

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

DAY_TABLES = (("usage_days", "model", 100), ("usage_key_days", "key_id", 36))


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("usage_tz", sa.String(length=64), server_default="UTC", nullable=False))
    for name, column, length in DAY_TABLES:
        op.create_table(
            name,
            sa.Column("account_id", sa.String(length=36), nullable=False),
            sa.Column("day", sa.Integer(), nullable=False),
            sa.Column(column, sa.String(length=length), nullable=False),
            sa.Column("requests", sa.BigInteger(), nullable=False),
            sa.Column("input_tokens", sa.BigInteger(), nullable=False),
            sa.Column("output_tokens", sa.BigInteger(), nullable=False),
            sa.Column("cost_micro_p", sa.BigInteger(), nullable=False),
            sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
            sa.PrimaryKeyConstraint("account_id", "day", column, name=f"pk_{name}"),
            sqlite_with_rowid=False,
        )
        # Every account starts in UTC, whose days are whole groups of 96 buckets.
        op.execute(
            f"INSERT INTO {name} (account_id, day, {column}, requests, input_tokens, output_tokens, cost_micro_p) "
            f"SELECT account_id, bucket_start / 86400, {column}, SUM(requests), SUM(input_tokens), "
            f"SUM(output_tokens), SUM(cost_micro_p) FROM usage_rollups "
            f"GROUP BY account_id, bucket_start / 86400, {column}"
        )


def downgrade() -> None:
    for name, _, _ in DAY_TABLES:
        op.drop_table(name)
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("usage_tz")
