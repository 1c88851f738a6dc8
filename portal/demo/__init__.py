"""Demo mode (``SAMALINK_DEMO=1`` or ``python app.py --demo``): the whole product on one machine,
offline, with nothing to configure.

The gateway serves every model with its simulated provider; here, every new account gets
demo credit (an ``adjustment`` in the gateway's ledger, through the internal API), the
first user to sign up becomes an operator, and every message the portal queues is kept
for the local mailbox page (``routes``). ``is_demo`` is the one question asked.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..gateway_client import gateway
from ..models import User

__all__ = ["DEMO_CREDIT_DESCRIPTION", "grant_demo_credit", "is_demo", "make_first_user_operator"]

DEMO_CREDIT_DESCRIPTION = "Demo credit: {amount:,} P to try SAMALink in demo mode (not real money)"


def is_demo() -> bool:
    """True when the portal runs in demo mode."""
    return bool(current_app.config.get("DEMO"))


def grant_demo_credit(account_id: str, user: User) -> None:
    """Credit a new account with the demo credit, once (the idempotency key is the user's).

    Raises the gateway client's errors; the caller retries on a later visit, and the
    same key then returns the same entry instead of a second credit.
    """
    amount = int(current_app.config["DEMO_CREDIT_MICRO_P"])
    gateway().post_ledger_entry(
        account_id, "adjustment", amount, idempotency_key=f"demo-credit-user-{user.id}",
        description=DEMO_CREDIT_DESCRIPTION.format(amount=amount // 1_000_000))


def make_first_user_operator(user: User) -> bool:
    """Make ``user`` an operator when it is the first user of this demo portal; True if it was."""
    if not is_demo() or user.is_operator:
        return False
    first_id = db.session.scalar(sa.select(sa.func.min(User.id)))
    if first_id != user.id:
        return False
    user.is_operator = True
    db.session.commit()
    from ..operator.service import record_audit

    record_audit(None, "user.make_operator", "user", str(user.id), {"is_operator": False},
                 {"is_operator": True}, "demo mode: the first user to sign up")
    return True
