"""Confirming the e-mail address of a new account before its first sign-in.

A new account is not signed in at sign-up: it gets a signed link (valid for 24 hours)
by e-mail, and opening the link confirms the address and signs the owner in. So a
sign-up for a new address and one for a taken address both end on the same "Check your
inbox" page, and nothing tells a visitor which addresses already have an account.

The link carries the user id, the address and where to land afterwards, signed with the
app's secret. It works once: the first use sets ``email_confirmed_at`` with a
conditional update, and every link for an address already confirmed is refused.
Mail goes through the outbox (see ``portal.mail``), as for a taken address (see
``duplicates``), so both sign-up answers take the same time.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..extensions import db
from ..mail import public_link, queue_mail
from ..models import User
from ..timeutil import utcnow

MAX_AGE_SECONDS = 24 * 3600
# A new link at most this often per account, whichever way it is asked for.
RESEND_INTERVAL = timedelta(seconds=60)
SUBJECT = "Confirm your SAMALink e-mail address"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="samalink-email-confirmation")


def is_confirmed(user: User) -> bool:
    """True once the user's address is confirmed."""
    return user.email_confirmed_at is not None


def make_token(user: User, next_url: str = "/dashboard") -> str:
    """A signed confirmation token for ``user`` that lands on ``next_url``."""
    return _serializer().dumps({"u": user.id, "e": user.email, "n": next_url})


def _message(link: str) -> str:
    return (
        "Welcome to SAMALink.\n\n"
        f"Confirm your e-mail address and sign in here (the link works once, for 24 hours):\n{link}\n\n"
        "If you did not create a SAMALink account, ignore this message; nothing happens without the link.\n"
    )


def send_link(user: User, next_url: str = "/dashboard") -> None:
    """Queue a new confirmation link for ``user`` and note when."""
    link = public_link("auth.confirm_email", token=make_token(user, next_url))
    user.confirmation_sent_at = utcnow()
    queue_mail(user.email, SUBJECT, _message(link))
    db.session.commit()


def may_resend(user: User) -> bool:
    """True when the last link went out long enough ago (or never)."""
    sent = user.confirmation_sent_at
    return sent is None or utcnow() - sent >= RESEND_INTERVAL


def resend_link(user: User) -> bool:
    """Send a new link to an unconfirmed ``user`` unless one went out a moment ago; True if sent."""
    if is_confirmed(user) or not may_resend(user):
        return False
    send_link(user)
    return True


def resend_for_address(email: str) -> None:
    """Send a new link when ``email`` belongs to an unconfirmed user; nothing visible otherwise."""
    user = db.session.scalar(sa.select(User).where(User.email == email))
    if user is not None:
        resend_link(user)


def read_token(token: str) -> tuple[User, str] | None:
    """The unconfirmed user and landing page of a valid, unexpired token, or None."""
    try:
        data = _serializer().loads(token, max_age=MAX_AGE_SECONDS)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        return None
    user = db.session.get(User, data["u"])
    if user is None or user.email != data.get("e") or is_confirmed(user):
        return None
    next_url = data.get("n") if isinstance(data.get("n"), str) else "/dashboard"
    return user, next_url


def confirm(token: str) -> tuple[User, str] | None:
    """Confirm the address of a valid token, once; the user and landing page, or None."""
    found = read_token(token)
    if found is None:
        return None
    user, next_url = found
    # A conditional update, so two simultaneous clicks cannot both sign in.
    claimed = db.session.execute(
        sa.update(User).where(User.id == user.id, User.email_confirmed_at.is_(None))
        .values(email_confirmed_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        return None
    db.session.commit()
    db.session.refresh(user)
    return user, next_url
