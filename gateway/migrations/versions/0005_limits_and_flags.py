"""Key spending limits leased like the balance; flags on request log rows.

Revision ID: 0005_limits_and_flags
Revises: 0004_dead_letters
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0005_limits_and_flags"
down_revision = "0004_dead_letters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leased_micro_p", sa.BigInteger(), server_default="0", nullable=False))
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flags", sa.String(length=200), server_default="", nullable=False))
    op.create_table(
        "key_leases",
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("holder_id", sa.String(length=36), nullable=False),
        sa.Column("amount_micro_p", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("key_id", "holder_id"),
    )
    op.create_index("ix_key_leases_expires_at", "key_leases", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_key_leases_expires_at", table_name="key_leases")
    op.drop_table("key_leases")
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_column("flags")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("leased_micro_p")
