"""Helpers shared by the operator console tests."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pyotp

import sqlalchemy as sa


def audit_rows(app, action: str | None = None, target_id: str | None = None, target_type: str | None = None) -> list:
    """Audit entries (newest first), optionally of one action or object."""
    from portal.extensions import db
    from portal.operator.models import AuditLog

    with app.app_context():
        query = sa.select(AuditLog).order_by(AuditLog.id.desc())
        if action:
            query = query.where(AuditLog.action == action)
        if target_id:
            query = query.where(AuditLog.target_id == target_id)
        if target_type:
            query = query.where(AuditLog.target_type == target_type)
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        return rows


def form_key_in(html: str) -> str:
    """The adjustment form's idempotency key in a customer page."""
    match = re.search(r'name="form_key" type="hidden" value="([^"]+)"|id="form_key" name="form_key" type="hidden" value="([^"]+)"', html)
    if match is None:
        match = re.search(r'<input[^>]*name="form_key"[^>]*value="([^"]+)"', html)
    assert match, "no form_key in the page"
    return next(g for g in match.groups() if g)


def enable_two_factor(app, user_id: int) -> str:
    """Turn two-factor sign-in on for a user, as finished enrolment leaves it; the TOTP secret."""
    from portal.auth.twofactor import TwoFactor
    from portal.extensions import db

    secret = pyotp.random_base32()
    with app.app_context():
        db.session.add(TwoFactor(user_id=user_id, secret=secret,
                                 enabled_at=datetime.now(timezone.utc).replace(tzinfo=None)))
        db.session.commit()
    return secret


def sign_in_with_code(client, email: str, password: str, secret: str) -> None:
    """Sign in through the password form and, when asked, the authenticator code step."""
    from fixtures.portal import login

    response = login(client, email, password)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    if response.headers["Location"].endswith("/login/2fa"):
        step = client.post("/login/2fa", data={"code": pyotp.TOTP(secret).now()})
        assert step.status_code == 303, step.get_data(as_text=True)[:500]
