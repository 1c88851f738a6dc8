"""Routes: / and /dashboard."""

from __future__ import annotations

from flask import Blueprint, current_app
from flask_login import current_user, login_required

from ..accounts import current_account, sync_usage_zone
from ..teams.selection import selected_account
from ..catalog_view import load_catalog
from ..gateway_client import gateway
from ..gateway_views import calling_gateway
from ..htmx import redirect_to, render

bp = Blueprint("dashboard", __name__)


@bp.route("/")
def index():
    """Signed-in users land on the dashboard, visitors on pricing."""
    return redirect_to("/dashboard" if current_user.is_authenticated else "/pricing")


@bp.route("/dashboard")
@login_required
def dashboard():
    """Figures for today and this month in the user's zone, and where to start."""
    summary = None
    keys: list[dict] = []
    with calling_gateway():
        selection = selected_account()
        summary = gateway().account_summary(selection.account_id, current_user.tz)
        keys = gateway().list_keys(selection.account_id, member_id=selection.member_filter)
        if selection.member_filter is not None:
            keys = [k for k in keys if k.get("member_id") == selection.member_filter]
        if selection.team is None:
            sync_usage_zone(current_user, summary["usage_tz"])
    active_keys = [k for k in keys if k.get("status") == "active"]
    return render("dashboard/dashboard.html", summary=summary, active_keys=active_keys, low_balance=low_balance_alert(),
                  catalog=load_catalog(), base_url=current_app.config["GATEWAY_PUBLIC_URL"])


def low_balance_alert() -> dict | None:
    """The low-balance threshold the balance is below (not yet topped up past it), or None."""
    account = current_account() or {}
    alert = (account.get("thresholds") or {}).get("low_balance") or {}
    return alert if alert.get("below") and alert.get("threshold_micro_p") else None
