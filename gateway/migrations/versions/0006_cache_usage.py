"""Prompt-cache and reasoning parts of each request, their sums, and cache prices in catalogue changes.

Revision ID: 0006_cache_usage
Revises: 0005_limits_and_flags
Create Date: 2026-11-30 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0006_cache_usage"
down_revision = "0005_limits_and_flags"
branch_labels = None
depends_on = None

LOG_TOKENS = ("cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens")
SUMS = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "saved_micro_p")
SUM_TABLES = ("usage_rollups", "usage_days", "usage_key_days")
CACHE_PRICES = ("cache_read_price", "cache_write_price", "cache_write_1h_price")


def _zero(name: str) -> sa.Column:
    # Rows written before this revision had no cached parts: zero is their true value.
    return sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        for name in LOG_TOKENS:
            batch_op.add_column(_zero(name))
        batch_op.add_column(sa.Column("price_tier", sa.BigInteger(), nullable=True))
        batch_op.add_column(_zero("saved_micro_p"))
    for table in SUM_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in SUMS:
                batch_op.add_column(_zero(name))
    with op.batch_alter_table("catalog_overrides", schema=None) as batch_op:
        for name in CACHE_PRICES:
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("cache_prices_set", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("catalog_overrides", schema=None) as batch_op:
        batch_op.drop_column("cache_prices_set")
        for name in reversed(CACHE_PRICES):
            batch_op.drop_column(name)
    for table in reversed(SUM_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in reversed(SUMS):
                batch_op.drop_column(name)
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_column("saved_micro_p")
        batch_op.drop_column("price_tier")
        for name in reversed(LOG_TOKENS):
            batch_op.drop_column(name)
