"""The portal's own tables: users, their sign-in sessions, password reset tokens, support
messages, login attempts and the outgoing mail queue.

Balances, keys and usage live in the gateway; a user holds only the gateway ``account_id``.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db
from .timeutil import utcnow


class User(UserMixin, db.Model):
    """A customer who signs in to the portal."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    account_id: Mapped[str | None] = mapped_column(sa.String(64), unique=True, nullable=True)
    # None until the browser reports its zone on the first visit.
    timezone: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    session_version: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
    is_operator: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    # None until the owner opens the confirmation link; an unconfirmed user cannot sign in.
    email_confirmed_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    # When the last confirmation link was sent, so resending can be limited.
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)

    def get_id(self) -> str:
        """Session identity: the id plus the session version, so a bump signs sessions out."""
        return f"{self.id}:{self.session_version}"

    @property
    def tz(self) -> str:
        """The zone used for dates and day boundaries."""
        return self.timezone or "UTC"


class PasswordResetToken(db.Model):
    """A single-use password reset link; only the SHA-256 of the token is stored."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    # Fingerprint of the password hash when the link was made: any password change voids the link.
    password_fingerprint: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)


class UserSession(db.Model):
    """One signed-in browser session; signing out ends it on the server, not only in the cookie."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    # SHA-256 of the random session id the cookie carries.
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class SupportMessage(db.Model):
    """A message sent through the Support page."""

    __tablename__ = "support_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    email: Mapped[str] = mapped_column(sa.String(254), nullable=False)
    subject: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    body: Mapped[str] = mapped_column(sa.Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    mailed_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)

    @property
    def sender_verified(self) -> bool:
        """True when the message was sent signed in; otherwise anyone could have typed the address."""
        return self.user_id is not None


class LoginAttempt(db.Model):
    """One failed sign-in, kept to slow down password guessing per account and per address."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        sa.Index("ix_login_attempts_email_created", "email", "created_at"),
        sa.Index("ix_login_attempts_ip_created", "ip", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), nullable=False)
    ip: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)


class OutboxMessage(db.Model):
    """An e-mail waiting for the background sender (written in the request's transaction)."""

    __tablename__ = "mail_outbox"
    __table_args__ = (sa.Index("ix_mail_outbox_due", "failed_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    to_address: Mapped[str] = mapped_column(sa.String(254), nullable=False)
    subject: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    body: Mapped[str] = mapped_column(sa.Text, nullable=False)
    reply_to: Mapped[str | None] = mapped_column(sa.String(254), nullable=True)
    # Set for the copy of a support message, so its ``mailed_at`` is stamped on delivery.
    support_message_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("support_messages.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)


class MailboxMessage(db.Model):
    """A copy of every message the portal queued, kept in demo mode for the local mailbox page."""

    __tablename__ = "demo_mailbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    to_address: Mapped[str] = mapped_column(sa.String(254), nullable=False)
    subject: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    body: Mapped[str] = mapped_column(sa.Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)


class EventCursor(db.Model):
    """How far the event worker has read the gateway's events (one row per source).

    ``claimed_by`` and ``claimed_at`` mark the worker reading now, so one process at a
    time handles a page and moves the position with the mail it queued.
    """

    __tablename__ = "event_cursors"

    name: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    position: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(16))
    claimed_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
