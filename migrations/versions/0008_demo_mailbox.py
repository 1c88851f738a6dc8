"""The demo mode's local mailbox: a copy of every message the portal queued.

Revision ID: 0008_demo_mailbox
Revises: 0007_payment_disputes
Create Date: 2026-11-30

"""
from alembic import op
import sqlalchemy as sa

revision = "0008_demo_mailbox"
down_revision = "0007_payment_disputes"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "demo_mailbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("to_address", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade():
    op.drop_table("demo_mailbox")
