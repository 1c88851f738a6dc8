"""The link between a portal user and the gateway account that holds their money."""

from __future__ import annotations

import logging

from flask import g
from flask_login import current_user

from .demo import grant_demo_credit, is_demo
from .extensions import db
from .gateway_client import GatewayError, GatewayUnavailable, gateway
from .gateway_views import calling_gateway
from .models import User

log = logging.getLogger(__name__)


def ensure_account(user: User) -> str:
    """Return the user's gateway account id, creating the account if it is missing.

    Creation is idempotent on the user's id, so a signup interrupted by a gateway
    outage is completed on a later visit. Raises ``GatewayUnavailable``.
    """
    if user.account_id:
        return user.account_id
    account = gateway().create_account(external_id=str(user.id), email=user.email)
    if is_demo():
        # Before the id is kept: a failed credit is retried with the account on the next visit.
        grant_demo_credit(account["id"], user)
    user.account_id = account["id"]
    db.session.commit()
    return user.account_id


def current_account() -> dict | None:
    """The selected gateway account (the user's own, or a team's: cached for the request), or None.

    None when nobody is signed in, or when the gateway cannot give the account: the top
    bar of every page (and the billing pages) call this, so an outage must not fail the
    page. It renders without the balance, and the request is marked so the page shows
    the gateway notice. A refusal is logged and treated the same way: the user cannot
    correct a stale link between their sign-in and their account.
    """
    if "account" in g:
        return g.account
    g.account = None
    if not current_user.is_authenticated:
        return None
    # A team named in the URL was resolved (and the membership checked) before the view ran.
    selection = g.get("team_selection")
    with calling_gateway():
        team_selected = selection is not None and selection.team is not None
        g.account = gateway().get_account(selection.account_id if team_selected else ensure_account(current_user))
    return g.account


def sync_usage_zone(user: User, kept_in: str | None = None) -> None:
    """Have the gateway keep the user's daily usage sums in the user's zone.

    Reports in that zone then read one row per day; until this lands they are still
    right, summed from 15-minute buckets, so a failure is logged and retried on the
    next dashboard visit (which passes the gateway's ``kept_in``).
    """
    if not user.account_id or kept_in == user.tz:
        return
    try:
        gateway().update_account(user.account_id, usage_tz=user.tz)
    except (GatewayUnavailable, GatewayError) as exc:
        log.warning("could not move the daily usage sums of user %s to %s: %s", user.id, user.tz, exc)
