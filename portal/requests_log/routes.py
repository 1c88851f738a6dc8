"""Routes: /requests (page, filtered table, further rows) and /requests.csv (streamed export)."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Response, request, stream_with_context
from flask_login import current_user, login_required

from ..teams.selection import selected_account
from ..catalog_view import load_catalog
from ..gateway_client import gateway
from ..gateway_views import calling_gateway
from ..htmx import is_htmx, render
from .filters import STATUS_CHOICES, key_choices, parse_filters

bp = Blueprint("requests_log", __name__)
PAGE_SIZE = 50


def _gateway_filters(filters) -> dict:
    """The typed filters and the zone; in a team, a developer's own keys only, or the member picked."""
    return dict(filters.params(), tz=current_user.tz, member_id=selected_account().usage_member)


@bp.route("/requests")
@login_required
def request_log():
    """Newest first; htmx gets only the table (filters) or only further rows (cursor)."""
    filters = parse_filters(request.args)
    cursor = (request.args.get("cursor") or "").strip()[:500] or None
    page = None
    # The gateway has the last word on a filter: its refusal is shown with the others.
    with calling_gateway(show_refusal=True) as call:
        page = gateway().requests_page(selected_account().account_id, _gateway_filters(filters),
                                       cursor=cursor, limit=PAGE_SIZE)
    if call.refusal:
        filters = filters.refused(call.message)
    context = {**_member_context(), "filters": filters, "page": page, "refused": call.refusal,
               "rows": (page or {}).get("data") or [], "next_cursor": (page or {}).get("next_cursor"), "cursor": cursor,
               "status_choices": STATUS_CHOICES}
    if is_htmx():
        return render("requests_log/requests.html", block="rows" if cursor else "log_table", **context)
    keys: list[dict] = []
    with calling_gateway():
        keys = gateway().list_keys(selected_account().account_id, member_id=selected_account().member_filter)
    catalog = load_catalog()
    models = [m["id"] for m in catalog.models] if catalog else []
    return render("requests_log/requests.html", key_choices=key_choices(keys), models=models, **context)


def _member_context() -> dict:
    """The member filter of an owner or admin in a team: choices, the one shown, and its query part."""
    selection = selected_account()
    member = selection.usage_member if selection.member_choices() else None
    return {"member_choices": selection.member_choices(), "member_shown": member or "",
            "member_amp": f"&member={member}" if member else ""}


@bp.route("/requests.csv")
@login_required
def export_csv():
    """The filtered log as CSV, streamed from the gateway without holding it in memory."""
    filters = parse_filters(request.args)
    with calling_gateway() as call:
        chunks = gateway().requests_csv(selected_account().account_id, _gateway_filters(filters))
    if call.failed:
        return render("errors/error.html", status=503, title="Export unavailable",
                      message="The request log cannot be exported while the usage service is unavailable.")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    response = Response(stream_with_context(chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="samalink-requests-{stamp}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response
