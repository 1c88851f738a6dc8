"""Teams as plain functions: create one, invite and accept, change roles, remove members,
transfer ownership, delete the team, and who gets its alert mail.

Views call these and show their ``TeamError`` messages; every check of who may do what
to whom (beyond the route's role rule) is made here.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from portal.extensions import db
from portal.gateway_client import gateway
from portal.mail import public_link, queue_mail
from portal.models import User
from portal.timeutil import utcnow

from .models import ADMIN, BILLING, GRANTABLE, OWNER, ROLE_LABELS, ROLES, Invitation, Membership, Team

log = logging.getLogger(__name__)

INVITATION_DAYS = 7
MAX_NAME = 80
# Invitations still open per team: enough for any real team, and a cap on mail sent by one account.
MAX_OPEN_INVITATIONS = 50
INVITATION_SUBJECT = "You are invited to a team on SAMALink"


class TeamError(Exception):
    """A refused team action; the message is safe to show to the user."""


class InvitationGone(TeamError):
    """The invitation was used, revoked or has expired (or never existed)."""


# -- the team and its account ------------------------------------------------------------


def clean_name(raw: str | None) -> str:
    """A team name as typed, trimmed; raises ``TeamError`` for an empty or overlong one."""
    name = " ".join((raw or "").split())
    if not name:
        raise TeamError("Give the team a name.")
    if len(name) > MAX_NAME:
        raise TeamError(f"A team name has at most {MAX_NAME} characters.")
    return name


def ensure_team_account(team: Team) -> str:
    """The team's gateway account id, creating the account (idempotent on ``team:<id>``)."""
    if team.account_id:
        return team.account_id
    account = gateway().create_account(external_id=f"team:{team.id}")
    team.account_id = account["id"]
    db.session.commit()
    return team.account_id


def create_team(user: User, raw_name: str | None) -> Team:
    """A new team owned by ``user``. Raises ``TeamError``.

    Its gateway account is made by ``ensure_team_account``, now or on the first page that
    needs it when the gateway is down.
    """
    team = Team(name=clean_name(raw_name), created_by=user.id)
    db.session.add(team)
    db.session.flush()
    db.session.add(Membership(team_id=team.id, user_id=user.id, role=OWNER))
    db.session.commit()
    return team


def members(team: Team) -> list[tuple[Membership, User]]:
    """The team's members with their users, owners first, then by address."""
    rows = db.session.execute(
        sa.select(Membership, User).join(User, User.id == Membership.user_id).where(Membership.team_id == team.id)
    ).all()
    order = {role: n for n, role in enumerate(ROLES)}
    return sorted(((m, u) for m, u in rows), key=lambda row: (order.get(row[0].role, 9), row[1].email))


def recipients(account_id: str) -> list[User]:
    """Who gets an account's alert mail: its user for a personal account; for a team,
    every owner and billing member. Each once, in a stable order."""
    users = list(db.session.scalars(sa.select(User).where(User.account_id == account_id).order_by(User.id)))
    team = db.session.scalar(sa.select(Team).where(Team.account_id == account_id, Team.deleted_at.is_(None)))
    if team is not None:
        users += db.session.scalars(
            sa.select(User).join(Membership, Membership.user_id == User.id)
            .where(Membership.team_id == team.id, Membership.role.in_((OWNER, BILLING))).order_by(User.email))
    return list({user.id: user for user in users}.values())


def account_zone(account_id: str) -> str:
    """The time zone an account's months are counted in: its user's for a personal account,
    the owner's for a team (UTC when neither is known)."""
    user = db.session.scalar(sa.select(User).where(User.account_id == account_id).order_by(User.id).limit(1))
    if user is None:
        user = db.session.scalar(
            sa.select(User).join(Membership, Membership.user_id == User.id).join(Team, Team.id == Membership.team_id)
            .where(Team.account_id == account_id, Membership.role == OWNER).order_by(User.id).limit(1))
    return user.tz if user is not None else "UTC"


# -- invitations -----------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="samalink-team-invitation")


def invitation_token(invitation: Invitation) -> str:
    """The signed token of ``invitation``'s link."""
    return _serializer().dumps({"i": invitation.id, "n": invitation.nonce})


def _normalise_email(raw: str | None) -> str:
    from email_validator import EmailNotValidError, validate_email

    text = (raw or "").strip()
    if not text or len(text) > 254:
        raise TeamError("Enter the e-mail address to invite.")
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise TeamError("That is not an e-mail address.") from None


def invite(team: Team, inviter: User, raw_email: str | None, role: str | None) -> Invitation:
    """Record an invitation and e-mail its link (valid ``INVITATION_DAYS`` days, once).

    Raises ``TeamError`` for a bad address or role, a current member, or too many open invitations.
    """
    email = _normalise_email(raw_email)
    if role not in GRANTABLE:
        raise TeamError("Choose a role: admin, developer or billing.")
    existing = db.session.scalar(sa.select(Membership).join(User, User.id == Membership.user_id)
                                 .where(Membership.team_id == team.id, sa.func.lower(User.email) == email))
    if existing is not None:
        raise TeamError(f"{email} is already a member of {team.name}.")
    now = utcnow()
    open_count = db.session.scalar(sa.select(sa.func.count()).select_from(Invitation).where(
        Invitation.team_id == team.id, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None),
        Invitation.expires_at > now))
    if open_count >= MAX_OPEN_INVITATIONS:
        raise TeamError("This team has too many open invitations; revoke some first.")
    # Inviting an address again replaces its earlier invitation: only the newest link works.
    db.session.execute(sa.update(Invitation).where(
        Invitation.team_id == team.id, Invitation.email == email, Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None)).values(revoked_at=now))
    invitation = Invitation(team_id=team.id, email=email, role=role, nonce=secrets.token_urlsafe(24),
                            invited_by=inviter.id, created_at=now, expires_at=now + timedelta(days=INVITATION_DAYS))
    db.session.add(invitation)
    db.session.flush()
    link = public_link("teams.invitation", token=invitation_token(invitation))
    queue_mail(email, INVITATION_SUBJECT, (
        f"{inviter.email} invited you to the team “{team.name}” on SAMALink as "
        f"{ROLE_LABELS[role].lower()}.\n\n"
        f"Open this link to join (it works once, for {INVITATION_DAYS} days):\n{link}\n\n"
        "No account yet? The link lets you create one with this address first.\n"
        "If you did not expect this invitation, ignore it; nothing happens without the link.\n"
    ))
    db.session.commit()
    return invitation


def open_invitations(team: Team) -> list[Invitation]:
    """The team's invitations that can still be accepted, newest first."""
    return list(db.session.scalars(sa.select(Invitation).where(
        Invitation.team_id == team.id, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None),
        Invitation.expires_at > utcnow()).order_by(Invitation.id.desc())))


def revoke_invitation(team: Team, invitation_id: int) -> Invitation:
    """Void an open invitation of ``team``; its link stops working. Raises ``TeamError``."""
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is None or invitation.team_id != team.id:
        raise TeamError("There is no such invitation.")
    if invitation.revoked_at is None and invitation.accepted_at is None:
        invitation.revoked_at = utcnow()
        db.session.commit()
    return invitation


def read_invitation(token: str) -> tuple[Invitation, Team] | None:
    """The open invitation (and its live team) of a valid, unexpired link, or None."""
    if not token or len(token) > 500:
        return None
    try:
        data = _serializer().loads(token, max_age=INVITATION_DAYS * 24 * 3600)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("i"), int) or not isinstance(data.get("n"), str):
        return None
    invitation = db.session.get(Invitation, data["i"])
    if invitation is None or not secrets.compare_digest(invitation.nonce, data["n"]):
        return None
    team = db.session.get(Team, invitation.team_id)
    if team is None or team.deleted_at is not None or not invitation.is_open(utcnow()):
        return None
    return invitation, team


def accept(token: str, user: User) -> Team:
    """Join the team of an invitation link, once. Raises ``TeamError``.

    The link is for the address it was sent to: the signed-in user must have it.
    """
    found = read_invitation(token)
    if found is None:
        raise InvitationGone("This invitation is no longer valid: it was used, revoked or has expired.")
    invitation, team = found
    if user.email.lower() != invitation.email:
        raise TeamError(f"This invitation is for {invitation.email}; sign in with that address to accept it.")
    # A conditional update, so two simultaneous clicks cannot both use the link.
    claimed = db.session.execute(
        sa.update(Invitation).where(Invitation.id == invitation.id, Invitation.accepted_at.is_(None),
                                    Invitation.revoked_at.is_(None))
        .values(accepted_at=utcnow(), accepted_by=user.id).execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        raise InvitationGone("This invitation is no longer valid: it was used, revoked or has expired.")
    if db.session.scalar(sa.select(Membership).where(Membership.team_id == team.id,
                                                     Membership.user_id == user.id)) is None:
        db.session.add(Membership(team_id=team.id, user_id=user.id, role=invitation.role))
    db.session.commit()
    return team


def join_on_confirmation(user: User, landing: str) -> Team | None:
    """Accept the invitation an address was just confirmed to land on, if it is one; its team.

    Someone invited without an account signs up through the invitation: the link they
    come back with is signed into the confirmation link, and opening that proves the
    address, so they are in the team at once. Any refusal leaves them on the invitation page.
    """
    path = landing.split("?", 1)[0]
    prefix = "/teams/invite/"
    if not path.startswith(prefix) or "/" in path[len(prefix):]:
        return None
    try:
        return accept(path[len(prefix):], user)
    except TeamError:
        return None


# -- members -----------------------------------------------------------------------------------


def member_emails(member_ids: list[str]) -> dict[str, str]:
    """The address of each member id the gateway names (a former member's too), by id."""
    ids = [int(m) for m in member_ids if m.isdigit() and int(m) < 2**31]
    if not ids:
        return {}
    return {str(user.id): user.email for user in db.session.scalars(sa.select(User).where(User.id.in_(ids)))}


def _member(team: Team, user_id: int) -> Membership:
    row = db.session.scalar(sa.select(Membership).where(Membership.team_id == team.id,
                                                        Membership.user_id == user_id))
    if row is None:
        raise TeamError("That person is not a member of this team.")
    return row


def change_role(team: Team, actor_role: str, user_id: int, role: str | None) -> Membership:
    """Give a member another role (not owner: ownership moves by ``transfer``). Raises ``TeamError``."""
    if role not in GRANTABLE:
        raise TeamError("Choose a role: admin, developer or billing.")
    member = _member(team, user_id)
    if member.role == OWNER:
        raise TeamError("The owner's role changes only by transferring ownership.")
    if actor_role != OWNER and ADMIN in (member.role, role) and member.role != role:
        raise TeamError("Only the owner makes or unmakes admins.")
    member.role = role
    db.session.commit()
    return member


def remove_member(team: Team, actor_role: str, user_id: int) -> int:
    """Take a member out of the team and revoke their keys in it at once; the number revoked.

    The membership goes first, so the member loses the team's pages even if the gateway is
    down; the revocation is then retried by removing again (it is idempotent). Raises
    ``TeamError`` and ``GatewayUnavailable``.
    """
    member = _member(team, user_id)
    if member.role == OWNER:
        raise TeamError("The owner cannot be removed; transfer ownership first.")
    if actor_role != OWNER and member.role == ADMIN:
        raise TeamError("Only the owner removes an admin.")
    db.session.delete(member)
    db.session.commit()
    return revoke_keys_of(team, user_id)


def leave(team: Team, user_id: int) -> int:
    """The member leaves the team; their keys in it are revoked. Raises ``TeamError``, ``GatewayUnavailable``."""
    member = _member(team, user_id)
    if member.role == OWNER:
        raise TeamError("The owner cannot leave; transfer ownership or delete the team.")
    db.session.delete(member)
    db.session.commit()
    return revoke_keys_of(team, user_id)


def revoke_keys_of(team: Team, user_id: int) -> int:
    """Revoke every key of one member in the team's account; how many were active."""
    if not team.account_id:
        return 0
    return int(gateway().revoke_member_keys(team.account_id, str(user_id)).get("revoked") or 0)


def transfer(team: Team, owner_id: int, new_owner_id: int) -> None:
    """Make another member the owner; the old owner becomes an admin. Raises ``TeamError``."""
    if new_owner_id == owner_id:
        raise TeamError("You already own this team.")
    new_owner = _member(team, new_owner_id)
    old_owner = _member(team, owner_id)
    new_owner.role, old_owner.role = OWNER, ADMIN
    db.session.commit()


def delete_team(team: Team, typed_name: str | None) -> int:
    """Delete the team: members out, every key of its account revoked; how many keys were revoked.

    The owner types the team's name to confirm. The row stays (marked deleted) so
    ``team:<id>`` never names another account. Raises ``TeamError``, ``GatewayUnavailable``.
    """
    if " ".join((typed_name or "").split()) != team.name:
        raise TeamError("Type the team's name exactly to confirm.")
    revoked = 0
    if team.account_id:
        for key in gateway().list_keys(team.account_id):
            if key.get("status") == "active":
                gateway().revoke_key(team.account_id, key["id"])
                revoked += 1
    team.deleted_at = utcnow()
    db.session.execute(sa.delete(Membership).where(Membership.team_id == team.id))
    db.session.execute(sa.update(Invitation).where(Invitation.team_id == team.id, Invitation.accepted_at.is_(None),
                                                   Invitation.revoked_at.is_(None)).values(revoked_at=utcnow()))
    db.session.commit()
    return revoked
