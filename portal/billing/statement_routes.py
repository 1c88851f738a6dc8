"""Routes: /billing/statements, /billing/statements/<YYYY-MM> and its .csv download."""

from __future__ import annotations

from flask import Response, abort
from flask_login import current_user, login_required

from ..teams.selection import selected_account
from ..teams.service import member_emails
from ..gateway_client import gateway
from ..htmx import render
from . import statements
from .routes import bp


def _statement_or_404(month: str) -> dict:
    parsed = statements.parse_month(month)
    current = statements.current_month(current_user.tz)
    if parsed is None or parsed > current:
        abort(404)
    selection = selected_account()
    statement = gateway().statement(selection.account_id, month, current_user.tz)
    # The month is live until it ends where the customer is (the page's clock decides).
    statement["in_progress"] = parsed == current
    by_member = (statement.get("usage_by_member") or []) if selection.team is not None else []
    ids = [line["member_id"] for line in by_member if line.get("member_id")]
    statement["usage_by_member"] = statements.name_members(by_member, member_emails(ids))
    return statement


@bp.get("/billing/statements")
@login_required
def statement_list():
    """Every month since sign-up, newest first; the current one is in progress."""
    team = selected_account().team
    months = statements.months_since(team.created_at if team else current_user.created_at, current_user.tz)
    return render("billing/statements.html", months=months, tz=current_user.tz)


@bp.get("/billing/statements/<month>.csv")
@login_required
def statement_csv(month: str):
    """The month's statement as CSV: one row per movement and usage line, balances as rows."""
    statement = _statement_or_404(month)
    return Response(statements.csv_text(statements.csv_rows(statement)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="samalink-statement-{month}.csv"',
                             "Cache-Control": "no-store"})


@bp.get("/billing/statements/<month>")
@login_required
def statement_page(month: str):
    """The month's statement as a printable page."""
    return render("billing/statement.html", block=None, statement=_statement_or_404(month), tz=current_user.tz)
