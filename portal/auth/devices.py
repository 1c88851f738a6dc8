"""Trusted devices: a signed cookie set after a complete sign-in.

The per-account ceiling on failed sign-ins (see ``throttle``) could otherwise be used by
someone spraying wrong passwords from many addresses to keep the owner out for up to an
hour. A browser that has signed in to the account before carries this cookie and is
held only to the per-address limits, so the owner's usual devices keep working.
"""

from __future__ import annotations

from flask import Response, current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..models import User

MAX_AGE_SECONDS = 90 * 24 * 3600


def cookie_name() -> str:
    """``__Host-device`` behind HTTPS (bound to this host, Secure, Path=/), ``device`` otherwise."""
    return "__Host-device" if current_app.config.get("SESSION_COOKIE_SECURE") else "device"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="samalink-trusted-device")


def remember_device(response: Response, user: User) -> Response:
    """Mark this browser as one that completed a sign-in to ``user``'s account."""
    token = _serializer().dumps({"u": user.id})
    response.set_cookie(cookie_name(), token, max_age=MAX_AGE_SECONDS, httponly=True, samesite="Lax",
                        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")), path="/")
    return response


def is_trusted(user: User | None) -> bool:
    """True when the request comes from a browser that signed in to ``user`` before."""
    raw = request.cookies.get(cookie_name())
    if user is None or not raw:
        return False
    try:
        data = _serializer().loads(raw, max_age=MAX_AGE_SECONDS)
    except BadSignature:
        return False
    return isinstance(data, dict) and data.get("u") == user.id
