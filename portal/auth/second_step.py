"""The sign-in waiting for its second step: the password was right, two-factor is on.

Both the password route (which starts it) and the code route (which finishes it) use
this module, so neither route module imports the other.
"""

from __future__ import annotations

import time

from flask import Response, session

from ..extensions import db
from ..htmx import redirect_to
from ..models import User

PENDING_KEY = "2fa_pending"
# How long the password step stays good while the user fetches a code.
PENDING_SECONDS = 300


def begin_second_step(user: User, next_url: str) -> Response:
    """The password was right and the user has two-factor on: ask for the code next.

    The session is cleared, so nothing from before survives; only the pending user id
    (with its session version, so a password change in between voids it) is kept.
    """
    session.clear()
    session[PENDING_KEY] = {"uid": user.id, "v": user.session_version, "at": int(time.time()), "next": next_url}
    return redirect_to("/login/2fa")


def pending_user() -> tuple[User | None, str]:
    """The user half-way through signing in and where to land after, or (None, default)."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None, "/dashboard"
    user = db.session.get(User, pending.get("uid"))
    if user is None or user.session_version != pending.get("v"):
        return None, "/dashboard"
    return user, pending.get("next") or "/dashboard"


def forget_pending() -> None:
    """Drop a pending second step."""
    session.pop(PENDING_KEY, None)
