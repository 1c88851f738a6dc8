"""Single-use password reset links, valid for one hour.

Only the SHA-256 of a link's token is stored, with a fingerprint of the password hash at
the time the link was made. A link works only while the password is unchanged, so any
successful reset or password change voids every link sent before it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..mail import public_link, queue_mail
from ..models import PasswordResetToken, User
from ..timeutil import utcnow
from .passwords import hash_password

SUBJECT = "Reset your SAMALink password"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def password_fingerprint(password_hash: str) -> str:
    """A short digest of the stored password hash: changes whenever the password does."""
    return hashlib.sha256(("reset-link:" + password_hash).encode()).hexdigest()


def send_reset_link(email: str) -> None:
    """Queue a reset link when ``email`` belongs to a user; do nothing visible otherwise."""
    user = db.session.scalar(sa.select(User).where(User.email == email))
    if user is None:
        return
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(PasswordResetToken(
        user_id=user.id, token_hash=_digest(token), created_at=now,
        expires_at=now + timedelta(seconds=current_app.config["RESET_TOKEN_MAX_AGE"]),
        password_fingerprint=password_fingerprint(user.password_hash),
    ))
    link = public_link("auth.reset_password", token=token)
    body = (
        "Someone asked to reset the password of your SAMALink account.\n\n"
        f"Choose a new password here (the link works once, for one hour):\n{link}\n\n"
        "If this was not you, ignore this message; your password stays the same.\n"
    )
    # Without SMTP, the sender writes the message (and so the link) to the log.
    queue_mail(user.email, SUBJECT, body)
    db.session.commit()


def valid_token(token: str) -> PasswordResetToken | None:
    """The unused, unexpired reset token of an unchanged password, or None."""
    row = db.session.scalar(sa.select(PasswordResetToken).where(PasswordResetToken.token_hash == _digest(token)))
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        return None
    user = db.session.get(User, row.user_id)
    if user is None or row.password_fingerprint != password_fingerprint(user.password_hash):
        return None
    return row


def reset_password(token: str, new_password: str) -> User | None:
    """Set a new password with a valid token; every link of the user ends. None if invalid.

    The caller ends the user's sessions.
    """
    row = valid_token(token)
    if row is None:
        return None
    # Mark used with a conditional update so two simultaneous submissions cannot both succeed.
    claimed = db.session.execute(
        sa.update(PasswordResetToken)
        .where(PasswordResetToken.id == row.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=utcnow())
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        return None
    user = db.session.get(User, row.user_id)
    user.password_hash = hash_password(new_password)
    user.session_version += 1
    # The new fingerprint already voids the other links; marking them used says so plainly.
    db.session.execute(
        sa.update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    db.session.commit()
    return user
