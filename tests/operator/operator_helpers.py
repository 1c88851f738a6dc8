"""Helpers shared by the operator console tests."""

from __future__ import annotations

import re

import sqlalchemy as sa


def audit_rows(app, action: str | None = None, target_id: str | None = None) -> list:
    """Audit entries (newest first), optionally of one action or object."""
    from portal.extensions import db
    from portal.operator.models import AuditLog

    with app.app_context():
        query = sa.select(AuditLog).order_by(AuditLog.id.desc())
        if action:
            query = query.where(AuditLog.action == action)
        if target_id:
            query = query.where(AuditLog.target_id == target_id)
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
