"""Server-side sign-in sessions, reset links tied to the password, and the outgoing mail queue.

Revision ID: 0006_sign_in_hardening
Revises: 0005_email_confirmation
Create Date: 2026-11-30

"""
from alembic import op
import sqlalchemy as sa

revision = "0006_sign_in_hardening"
down_revision = "0005_email_confirmation"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    # Links made before this change carry no fingerprint and are refused; they lived an hour at most.
    op.add_column("password_reset_tokens", sa.Column("password_fingerprint", sa.String(64), nullable=True))
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("to_address", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("reply_to", sa.String(254), nullable=True),
        sa.Column("support_message_id", sa.Integer(),
                  sa.ForeignKey("support_messages.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(32), nullable=True),
        sa.Column("failed_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
    )
    op.create_index("ix_mail_outbox_due", "mail_outbox", ["failed_at", "next_attempt_at"])


def downgrade():
    op.drop_index("ix_mail_outbox_due", table_name="mail_outbox")
    op.drop_table("mail_outbox")
    with op.batch_alter_table("password_reset_tokens") as batch:
        batch.drop_column("password_fingerprint")
    op.drop_index("ix_user_sessions_user_id", table_name="user_sessions")
    op.drop_table("user_sessions")
