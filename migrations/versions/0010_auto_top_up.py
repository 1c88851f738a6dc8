"""Auto top-up: settings and saved card per user, and one row per refill.

Revision ID: 0010_auto_top_up
Revises: 0009_event_cursor
Create Date: 2026-11-30

"""
from alembic import op
import sqlalchemy as sa

revision = "0010_auto_top_up"
down_revision = "0009_event_cursor"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "auto_top_ups",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("threshold_micro_p", sa.BigInteger(), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=True),
        sa.Column("monthly_max_cents", sa.Integer(), nullable=True),
        sa.Column("stripe_customer_id", sa.String(255), nullable=True),
        sa.Column("stripe_payment_method_id", sa.String(255), nullable=True),
        sa.Column("card_label", sa.String(64), nullable=True),
        sa.Column("in_flight_refill_id", sa.Integer(), nullable=True),
        sa.Column("stopped_reason", sa.String(255), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "refills",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("payment_intent_id", sa.String(255), nullable=True, unique=True),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_refills_user_month", "refills", ["user_id", "month"])


def downgrade():
    op.drop_index("ix_refills_user_month", table_name="refills")
    op.drop_table("refills")
    op.drop_table("auto_top_ups")
