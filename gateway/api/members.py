"""Team members on the internal API: revoking every key of a member at once, and each
member's spend cap per period.

A member is the portal's name for a person in a team account (``member_id`` on a key);
the gateway knows a member only through the keys that name one and the budget set for it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.engine import Connection

from ..accounting.ledger import get_account
from ..accounting.member_budgets import list_member_budgets, member_budget_dict, set_member_budget
from ..auth import revoke_member_keys
from ..db import utcnow
from ..key_controls import BUDGET_PERIODS
from .http import (
    HttpError, account_id_param, database, int_field, json_body, json_response, member_id_param, refresh_keys,
)

MAX_BUDGET = 10**15  # as any amount the internal API takes
BUDGET_FIELDS = ("budget_micro_p", "budget_period")


async def revoke_keys(request: web.Request) -> web.Response:
    """Revoke every key of the member in the account (idempotent): ``{"revoked": n}``.

    As with one key, this process refuses them at once and every other within 2 s.
    """
    account_id = account_id_param(request)
    member_id = member_id_param(request)

    def work(conn: Connection) -> int:
        get_account(conn, account_id)
        return revoke_member_keys(conn, account_id, member_id, utcnow())

    revoked = await database(request).transaction(work)
    await refresh_keys(request)
    return json_response({"revoked": revoked})


def _budget_body(data: dict) -> tuple[int | None, str | None]:
    """The budget and its period, both given; set together or both null (422 otherwise)."""
    for name in BUDGET_FIELDS:
        if name not in data:
            raise HttpError(422, f"{name} is required (null with the other null removes the budget).",
                            "missing_field")
    budget = int_field(data, "budget_micro_p", 0, MAX_BUDGET)
    period = data["budget_period"]
    if period is not None and period not in BUDGET_PERIODS:
        raise HttpError(422, "budget_period must be day, week, month or null.", "invalid_field")
    if (budget is None) != (period is None):
        raise HttpError(422, "budget_micro_p and budget_period are set (or cleared) together.", "invalid_field")
    return budget, period


async def put_budget(request: web.Request) -> web.Response:
    """Set, change or (null and null) remove the member's budget per period.

    Every key of the member then reserves from it too; this process applies the change at
    once, every other within 2 s.
    """
    account_id = account_id_param(request)
    member_id = member_id_param(request)
    budget, period = _budget_body(await json_body(request, set(BUDGET_FIELDS)))

    def work(conn: Connection) -> dict:
        get_account(conn, account_id)
        now = utcnow()
        row = set_member_budget(conn, account_id, member_id, budget, period, now)
        return member_budget_dict(row, member_id, now)

    answer = await database(request).transaction(work)
    await refresh_keys(request)
    return json_response(answer)


async def list_members(request: web.Request) -> web.Response:
    """Every member of the account with a budget: its budget, this period's spend and reset."""
    account_id = account_id_param(request)

    def work(conn: Connection) -> list[Any]:
        get_account(conn, account_id)
        return list_member_budgets(conn, account_id)

    rows = await database(request).read(work)
    now = utcnow()
    return json_response({"data": [member_budget_dict(row, row.member_id, now) for row in rows]})


def add_routes(app: web.Application) -> None:
    """Register the member routes on the internal sub-application."""
    app.router.add_get("/accounts/{account_id}/members", list_members)
    app.router.add_post("/accounts/{account_id}/members/{member_id}/revoke-keys", revoke_keys)
    app.router.add_put("/accounts/{account_id}/members/{member_id}/budget", put_budget)
