"""Routes: /usage (full page, or only the chart panel when htmx switches the range)."""

from __future__ import annotations

from flask import Blueprint, request
from flask_login import current_user, login_required

from ..teams.selection import selected_account
from ..gateway_client import gateway
from ..gateway_views import calling_gateway
from ..htmx import render
from .charts import cost_by_model, daily_totals, daily_usage
from .ranges import PRESETS, RangeError, resolve_range

bp = Blueprint("usage", __name__)


@bp.route("/usage")
@login_required
def usage():
    """Charts and tables over 7/30/90 days or a custom range, in the user's zone."""
    tz = current_user.tz
    args = request.args
    error = None
    status = 200
    try:
        date_range = resolve_range(args.get("range"), args.get("start"), args.get("end"), tz)
    except RangeError as exc:
        error, status = str(exc), 422
        date_range = resolve_range("7d", None, None, tz)
    data = None
    if error is None:
        with calling_gateway():
            selection = selected_account()
            data = gateway().usage(selection.account_id, date_range.start.isoformat(),
                                   date_range.end.isoformat(), tz, member_id=selection.usage_member)
    selection = selected_account()
    member = selection.usage_member if selection.member_choices() else None
    context = {"member_choices": selection.member_choices(), "member_shown": member or "",
               "member_amp": f"&member={member}" if member else "",
               "range": date_range, "presets": PRESETS, "error": error, "data": data, "tz": tz,
               "custom_start": args.get("start", ""), "custom_end": args.get("end", "")}
    if data is not None:
        context.update(
            cost_chart=cost_by_model(data.get("by_model") or []),
            daily_chart=daily_usage(data.get("daily") or [], date_range),
            daily_rows=daily_totals(data.get("daily") or [], date_range),
        )
    return render("usage/usage.html", block="usage_panel", status=status, **context)
