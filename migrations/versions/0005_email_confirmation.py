"""E-mail confirmation at sign-up: users count as confirmed once they open the link.

Users who signed up before this change are treated as confirmed since they were created.

Revision ID: 0005_email_confirmation
Revises: 0004_security
Create Date: 2026-11-25

"""
from alembic import op
import sqlalchemy as sa

revision = "0005_email_confirmation"
down_revision = "0004_security"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN works on SQLite too and leaves the tables referring to users alone.
    op.add_column("users", sa.Column("email_confirmed_at", sa.DateTime(), nullable=True))
    op.add_column("users", sa.Column("confirmation_sent_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE users SET email_confirmed_at = created_at WHERE email_confirmed_at IS NULL")


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("confirmation_sent_at")
        batch.drop_column("email_confirmed_at")
