"""Session lifetime: idle and absolute time-outs, and the cookie's name behind HTTPS.

The session is a signed cookie. Two times travel in it: when the user signed in
(``auth_at``) and when the session was last used (``seen_at``, refreshed at most once
a minute so the cookie is not rewritten on every request). A session idle longer than
``SESSION_IDLE_MINUTES`` (default 30) or older than ``SESSION_MAX_HOURS`` (default 12)
is ended on its next request, whatever the browser still holds.
"""

from __future__ import annotations

import time

from flask import Flask, current_app, flash, request, session
from flask_login import current_user, logout_user

DEFAULT_IDLE_MINUTES = 30
DEFAULT_MAX_HOURS = 12
# Rewrite seen_at only when it is this stale: the idle limit is coarse on purpose.
SEEN_GRANULARITY_SECONDS = 60


def mark_signed_in() -> None:
    """Stamp a session that has just been started by a complete sign-in."""
    now = int(time.time())
    session["auth_at"] = now
    session["seen_at"] = now


def _limits() -> tuple[int, int]:
    config = current_app.config
    idle = int(float(config.get("SESSION_IDLE_MINUTES", DEFAULT_IDLE_MINUTES)) * 60)
    absolute = int(float(config.get("SESSION_MAX_HOURS", DEFAULT_MAX_HOURS)) * 3600)
    return idle, absolute


def enforce_time_outs() -> None:
    """End the session if it has been idle or alive for too long; else note this use."""
    # Stylesheets and scripts neither need the user nor count as activity.
    if request.endpoint == "static" or not current_user.is_authenticated:
        return
    now = int(time.time())
    idle, absolute = _limits()
    auth_at = session.get("auth_at")
    seen_at = session.get("seen_at")
    if not isinstance(auth_at, int) or not isinstance(seen_at, int):
        # A session from before time-outs existed: start counting now.
        mark_signed_in()
        return
    if now - seen_at > idle or now - auth_at > absolute:
        logout_user()
        session.clear()
        flash("Your session expired. Sign in again.", "info")
        return
    if now - seen_at >= SEEN_GRANULARITY_SECONDS:
        session["seen_at"] = now


def install(app: Flask) -> None:
    """Check time-outs before every request; name the cookie ``__Host-session`` behind HTTPS."""
    if app.config.get("SESSION_COOKIE_SECURE"):
        # __Host- cookies must be Secure, have Path=/ and no Domain: bound to this exact host.
        app.config["SESSION_COOKIE_NAME"] = "__Host-session"
        app.config["SESSION_COOKIE_PATH"] = "/"
        app.config["SESSION_COOKIE_DOMAIN"] = None
        app.config["REMEMBER_COOKIE_NAME"] = "__Host-remember_token"
    app.before_request(enforce_time_outs)
