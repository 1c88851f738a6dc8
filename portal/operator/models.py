"""The operator console's tables: the audit log and the support inbox's replies.

Audit rows are only ever added: who did what to which object, when, and the object's
state before and after. Support messages keep their own row (``SupportMessage``); the
inbox adds one ``SupportAction`` per reply, close or reopen, and a message is answered
when its latest action is a reply or a close.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..timeutil import utcnow


class AuditLog(db.Model):
    """One operator action."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_target", "target_type", "target_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    # Kept as text too, so the entry still says who acted if the user is deleted.
    actor_email: Mapped[str] = mapped_column(sa.String(254), nullable=False)
    action: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    target_type: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    target_id: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    before: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
    after: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
    reason: Mapped[str] = mapped_column(sa.String(500), nullable=False, default="")
    # Set for actions a form may submit twice (balance adjustments): the second is refused.
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow, index=True)


class SupportAction(db.Model):
    """A reply to, or a close or reopen of, a support message."""

    __tablename__ = "support_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(sa.ForeignKey("support_messages.id", ondelete="CASCADE"),
                                            nullable=False, index=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    actor_email: Mapped[str] = mapped_column(sa.String(254), nullable=False)
    kind: Mapped[str] = mapped_column(sa.String(16), nullable=False)  # reply | close | reopen
    body: Mapped[str] = mapped_column(sa.Text, nullable=False, default="")
    mailed: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
