"""The event worker's position in the gateway's event outbox.

Revision ID: 0009_event_cursor
Revises: 0008_demo_mailbox
Create Date: 2026-11-30

"""
from alembic import op
import sqlalchemy as sa

revision = "0009_event_cursor"
down_revision = "0008_demo_mailbox"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "event_cursors",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("claimed_by", sa.String(16), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
    )


def downgrade():
    op.drop_table("event_cursors")
