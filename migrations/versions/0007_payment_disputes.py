"""Disputes one by one: what each took from the balance and gave back, and how much of a
top-up has been taken back in all.

Payments disputed before this change took back their whole unrefunded remainder, so
they start with everything taken back; a later event for such a dispute takes nothing more.

Revision ID: 0007_payment_disputes
Revises: 0006_sign_in_hardening
Create Date: 2026-11-26

"""
from alembic import op
import sqlalchemy as sa

revision = "0007_payment_disputes"
down_revision = "0006_sign_in_hardening"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("payments", sa.Column("taken_back_micro_p", sa.BigInteger(), nullable=False, server_default="0"))
    # 10,000,000 micro-P per cent; the product needs BIGINT on PostgreSQL.
    op.execute(
        "UPDATE payments SET taken_back_micro_p = CASE WHEN disputed THEN credit_micro_p "
        "ELSE CAST(refunded_cents AS BIGINT) * 10000000 END "
        "WHERE status IN ('paid', 'refunded', 'partially_refunded', 'disputed')"
    )
    op.create_table(
        "payment_disputes",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("payment_id", sa.Integer(), sa.ForeignKey("payments.id", ondelete="CASCADE"), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("taken_micro_p", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("returned_micro_p", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_payment_disputes_payment_id", "payment_disputes", ["payment_id"])


def downgrade():
    op.drop_index("ix_payment_disputes_payment_id", table_name="payment_disputes")
    op.drop_table("payment_disputes")
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("taken_back_micro_p")
