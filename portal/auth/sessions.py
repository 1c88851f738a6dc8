"""Signed-in sessions: starting and ending them, time-outs, the cookie's name behind HTTPS.

Every sign-in gets a random session id, kept in the cookie and (as a SHA-256) in the
``user_sessions`` table. Each request checks that its id is still open there, so signing
out ends the session on the server: a copy of the cookie taken before is worth nothing
after. A password reset ends every session of the user; a password change (which starts
a fresh session for the browser that made it) ends the others through the user's
``session_version``.

The session is a signed cookie. Two times travel in it: when the user signed in
(``auth_at``) and when the session was last used (``seen_at``, refreshed at most once
a minute so the cookie is not rewritten on every request). A session idle longer than
``SESSION_IDLE_MINUTES`` (default 30) or older than ``SESSION_MAX_HOURS`` (default 12)
is ended on its next request, whatever the browser still holds.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask, current_app, flash, request, session
from flask_login import current_user, login_user, logout_user

from ..extensions import db
from ..models import User, UserSession
from ..timeutil import utcnow

DEFAULT_IDLE_MINUTES = 30
DEFAULT_MAX_HOURS = 12
# Rewrite seen_at only when it is this stale: the idle limit is coarse on purpose.
SEEN_GRANULARITY_SECONDS = 60
SID_KEY = "sid"


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def start_session(user: User) -> None:
    """Sign ``user`` in on a fresh session (nothing carried over from before)."""
    session.clear()
    login_user(user)
    session.permanent = False
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    # Forget this user's ended and long-expired sessions while here.
    oldest = now - timedelta(hours=float(current_app.config.get("SESSION_MAX_HOURS", DEFAULT_MAX_HOURS)))
    db.session.execute(sa.delete(UserSession).where(
        UserSession.user_id == user.id, sa.or_(UserSession.ended_at.is_not(None), UserSession.created_at < oldest)))
    db.session.add(UserSession(user_id=user.id, token_hash=_digest(sid), created_at=now))
    db.session.commit()
    session[SID_KEY] = sid
    mark_signed_in()


def end_session() -> None:
    """Sign out: end this session on the server and clear the cookie."""
    sid = session.get(SID_KEY)
    if isinstance(sid, str):
        db.session.execute(sa.update(UserSession).where(UserSession.token_hash == _digest(sid),
                                                        UserSession.ended_at.is_(None)).values(ended_at=utcnow()))
        db.session.commit()
    logout_user()
    session.clear()


def end_all_sessions(user: User) -> None:
    """End every session of ``user`` (after a password reset, or "sign out everywhere")."""
    db.session.execute(sa.update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
                       .values(ended_at=utcnow()))
    db.session.commit()


def _session_is_open() -> bool:
    sid = session.get(SID_KEY)
    if not isinstance(sid, str):
        return False
    row = db.session.scalar(sa.select(UserSession).where(UserSession.token_hash == _digest(sid)))
    return row is not None and row.ended_at is None and row.user_id == current_user.id


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
    """End the session if it was signed out, or idle or alive for too long; else note this use."""
    # Stylesheets and scripts neither need the user nor count as activity.
    if request.endpoint == "static" or not current_user.is_authenticated:
        return
    if not _session_is_open():
        # Signed out (perhaps elsewhere, with a copy of this cookie), or from before server-side sessions.
        logout_user()
        session.clear()
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
        end_session()
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
