"""Teams: a shared gateway account with members in roles, and the invitations that add them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.timeutil import utcnow

OWNER = "owner"
ADMIN = "admin"
DEVELOPER = "developer"
BILLING = "billing"
ROLES = (OWNER, ADMIN, DEVELOPER, BILLING)
# The roles an invitation or a role change may give: ownership only moves by a transfer.
GRANTABLE = (ADMIN, DEVELOPER, BILLING)

ROLE_LABELS = {
    OWNER: "Owner",
    ADMIN: "Admin",
    DEVELOPER: "Developer",
    BILLING: "Billing",
}

ROLE_HINTS = {
    OWNER: "everything, including deleting the team and transferring ownership",
    ADMIN: "members, everyone's keys and limits",
    DEVELOPER: "their own keys, and the usage and log of those keys",
    BILLING: "top-ups, payments, statements and alerts; no keys",
}


class Team(db.Model):
    """A team: its own gateway account (``external_id`` ``team:<id>``) shared by its members."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), nullable=False)
    # None until the gateway has created the account; creation is idempotent on the team id.
    account_id: Mapped[str | None] = mapped_column(sa.String(64), unique=True, nullable=True)
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    # A deleted team keeps its row, so ``team:<id>`` never names a second account.
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class Membership(db.Model):
    """One user in one team, in one role."""

    __tablename__ = "team_members"
    __table_args__ = (sa.UniqueConstraint("team_id", "user_id", name="uq_team_members_team_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False, index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    role: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)


class Invitation(db.Model):
    """An e-mailed invitation into a team: signed link, single use, valid until ``expires_at``.

    The link carries the row id and ``nonce`` signed with the app's secret; accepting
    sets ``accepted_at`` with a conditional update, so a link works once.
    """

    __tablename__ = "team_invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False, index=True)
    email: Mapped[str] = mapped_column(sa.String(254), nullable=False)
    role: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    nonce: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    invited_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    accepted_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)

    def is_open(self, now: datetime) -> bool:
        """Neither accepted, revoked nor expired at ``now``."""
        return self.accepted_at is None and self.revoked_at is None and now < self.expires_at
