"""Single-use password reset links, valid for one hour."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, url_for

from ..extensions import db
from ..mail import send_mail
from ..models import PasswordResetToken, User
from ..timeutil import utcnow
from .passwords import hash_password


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def send_reset_link(email: str) -> None:
    """E-mail a reset link when ``email`` belongs to a user; do nothing visible otherwise."""
    user = db.session.scalar(sa.select(User).where(User.email == email))
    if user is None:
        return
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(PasswordResetToken(
        user_id=user.id, token_hash=_digest(token), created_at=now,
        expires_at=now + timedelta(seconds=current_app.config["RESET_TOKEN_MAX_AGE"]),
    ))
    db.session.commit()
    link = url_for("auth.reset_password", token=token, _external=True)
    body = (
        "Someone asked to reset the password of your SAMALink account.\n\n"
        f"Choose a new password here (the link works once, for one hour):\n{link}\n\n"
        "If this was not you, ignore this message; your password stays the same.\n"
    )
    # Without SMTP, send_mail writes the message (and so the link) to the log.
    send_mail(user.email, "Reset your SAMALink password", body)


def valid_token(token: str) -> PasswordResetToken | None:
    """The unused, unexpired reset token, or None."""
    row = db.session.scalar(sa.select(PasswordResetToken).where(PasswordResetToken.token_hash == _digest(token)))
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        return None
    return row


def reset_password(token: str, new_password: str) -> User | None:
    """Set a new password with a valid token; the token and all sessions end. None if invalid."""
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
    db.session.commit()
    return user
