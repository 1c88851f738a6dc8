"""Versioned catalogue changes: operator price changes and model switches.

Revision ID: 0002_catalog_versions
Revises: 0001
Create Date: 2026-11-25 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0002_catalog_versions"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_overrides",
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.String(length=100), nullable=False),
        sa.Column("input_price", sa.BigInteger(), nullable=True),
        sa.Column("output_price", sa.BigInteger(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("effective_from", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=320), server_default="", nullable=False),
        sa.Column("reason", sa.String(length=500), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    with op.batch_alter_table("catalog_overrides", schema=None) as batch_op:
        batch_op.create_index("ix_catalog_overrides_model_effective", ["model_id", "effective_from"], unique=False)
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        # The traffic console reads every account's log by time and provider.
        batch_op.create_index("ix_request_log_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_index("ix_request_log_created_at")
    with op.batch_alter_table("catalog_overrides", schema=None) as batch_op:
        batch_op.drop_index("ix_catalog_overrides_model_effective")
    op.drop_table("catalog_overrides")
