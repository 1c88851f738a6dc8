"""Channels: the one that served each request and what it cost the operator, each attempt, breaker state,
and provider keys entered in the console (encrypted).

Revision ID: 0008_channels
Revises: 0007_key_controls
Create Date: 2026-11-30 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0008_channels"
down_revision = "0007_key_controls"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        # Rows logged before channels existed: which one served is not known.
        batch_op.add_column(sa.Column("channel", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("upstream_cost_micro_p", sa.BigInteger(), nullable=True))
    op.create_table(
        "request_attempts",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error_class", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "attempt", name="pk_request_attempts"),
    )
    op.create_index("ix_request_attempts_channel_created", "request_attempts", ["channel", "created_at"])
    op.create_table(
        "channel_health",
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("open_until", sa.DateTime(), nullable=True),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("last_error_at", sa.DateTime(), nullable=True),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel"),
    )

    op.create_table(
        "provider_keys",
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("hint", sa.String(20), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("provider"),
    )


def downgrade() -> None:
    op.drop_table("provider_keys")
    op.drop_table("channel_health")
    op.drop_index("ix_request_attempts_channel_created", table_name="request_attempts")
    op.drop_table("request_attempts")
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_column("upstream_cost_micro_p")
        batch_op.drop_column("channel")
