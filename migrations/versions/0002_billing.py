"""Billing tables: Stripe Checkout payments and the webhook events already handled.

Revision ID: 0002_billing
Revises: 0001_portal
Create Date: 2026-11-25

"""
from alembic import op
import sqlalchemy as sa

revision = "0002_billing"
down_revision = "0001_portal"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("reference", sa.String(36), nullable=False),
        sa.Column("stripe_session_id", sa.String(255), nullable=True),
        sa.Column("payment_intent_id", sa.String(255), nullable=True),
        sa.Column("charge_id", sa.String(255), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("credit_micro_p", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False, server_default="pending"),
        sa.Column("refunded_cents", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("disputed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("receipt_url", sa.String(2048), nullable=True),
        sa.Column("failure_reason", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("reference", name="uq_payments_reference"),
        sa.UniqueConstraint("stripe_session_id", name="uq_payments_stripe_session_id"),
    )
    op.create_index("ix_payments_user_id_id", "payments", ["user_id", "id"])
    op.create_index("ix_payments_payment_intent_id", "payments", ["payment_intent_id"])
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("processed_at", sa.DateTime(), nullable=False),
    )


def downgrade():
    op.drop_table("stripe_events")
    op.drop_index("ix_payments_payment_intent_id", table_name="payments")
    op.drop_index("ix_payments_user_id_id", table_name="payments")
    op.drop_table("payments")
