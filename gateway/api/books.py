"""The books on the internal API: an account's monthly statement and the ledger check.

``GET /internal/accounts/{id}/statement?month=YYYY-MM&tz=Zone`` and
``GET /internal/admin/verify-ledger`` (see accounting/books.py).
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.engine import Connection

from ..accounting.books import parse_month, statement, verify_books
from ..accounting.ledger import get_account
from .http import HttpError, account_id_param, database, json_response, query_tz


async def get_statement(request: web.Request) -> web.Response:
    """One calendar month of the account's books in ``tz``."""
    account_id = account_id_param(request)
    try:
        year, month = parse_month(request.query.get("month", ""))
    except ValueError:
        raise HttpError(400, "month must be a month like 2026-11.", "invalid_query") from None
    tz = query_tz(request)

    def work(conn: Connection) -> dict:
        get_account(conn, account_id)
        return statement(conn, account_id, year, month, tz)

    return json_response(await database(request).read(work))


async def verify_ledger(request: web.Request) -> web.Response:
    """Every stored balance, credit total, spend and request count recomputed; the differences."""
    return json_response(await database(request).read(verify_books))


def add_account_routes(app: web.Application) -> None:
    """Register the statement route on the internal sub-application."""
    app.router.add_get("/accounts/{account_id}/statement", get_statement)


def add_admin_routes(app: web.Application) -> None:
    """Register the ledger check on the admin sub-application."""
    app.router.add_get("/verify-ledger", verify_ledger)
