"""Key budgets that reset each period: the only writer of ``budget_spent_micro_p``,
``budget_period_start`` and ``budget_resets_at``.

A key's budget period is kept on its row as [``budget_period_start``,
``budget_resets_at``). Whoever touches the budget first after the reset instant (a
gateway process leasing from it, the batch writer charging it) starts the new period
with a conditional UPDATE, so the reset happens once however many processes race to it.
A charge counts towards the period its request began in: a request that began before
the reset and settles after it is not charged to the new period.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..db import accounts, api_keys, in_list, request_log
from ..key_controls import period_bounds
from .events import key_budget_spent
from .member_budgets import add_member_spend


def _budget_row(conn: Connection, key_id: str) -> Any:
    return conn.execute(
        sa.select(api_keys.c.budget_period, api_keys.c.budget_resets_at, api_keys.c.budget_period_start,
                  accounts.c.usage_tz)
        .join(accounts, accounts.c.id == api_keys.c.account_id)
        .where(api_keys.c.id == key_id)
    ).first()


def roll_budget_period(conn: Connection, key_id: str, now: datetime) -> None:
    """Start the key's current budget period when the one on its row has ended."""
    row = _budget_row(conn, key_id)
    if row is None or row.budget_period is None:
        return
    if row.budget_resets_at is not None and row.budget_resets_at > now:
        return
    start, resets = period_bounds(row.budget_period, row.usage_tz, now)
    previous = api_keys.c.budget_resets_at
    conn.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id)
        # Only the first to see the old period ended resets it (on PostgreSQL a racing
        # UPDATE re-reads the row and finds the new period).
        .where(sa.or_(previous.is_(None), previous <= now))
        .values(budget_spent_micro_p=0, budget_period_start=start, budget_resets_at=resets, updated_at=now)
    )


def set_budget(conn: Connection, key_id: str, period: str | None, now: datetime) -> None:
    """Give the key a budget period (or none); the spend of the new period is counted
    from the request log, so changing day to month keeps what was spent this month."""
    if period is None:
        conn.execute(
            api_keys.update().where(api_keys.c.id == key_id)
            .values(budget_period=None, budget_period_start=None, budget_resets_at=None, budget_spent_micro_p=0)
        )
        return
    row = _budget_row(conn, key_id)
    start, resets = period_bounds(period, row.usage_tz, now)
    spent = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(request_log.c.cost_micro_p), 0))
        .where(request_log.c.key_id == key_id, request_log.c.created_at >= start)
    ).scalar_one()
    conn.execute(
        api_keys.update().where(api_keys.c.id == key_id)
        .values(budget_period=period, budget_period_start=start, budget_resets_at=resets,
                budget_spent_micro_p=int(spent))
    )


# Built once: every flush of the batch writer runs it.
_WITH_BUDGET = sa.select(api_keys.c.id).where(
    api_keys.c.id.in_(sa.bindparam("b_ids", expanding=True)), api_keys.c.budget_period.is_not(None)
)


def add_budget_spend(conn: Connection, charges: dict[str, list[tuple[datetime, int]]], now: datetime) -> None:
    """Add each key's charges (request start, cost) that fall in its current period, to the
    key's budget and to its team member's."""
    add_member_spend(conn, charges, now)
    with_budget = sorted(conn.execute(_WITH_BUDGET, {"b_ids": in_list(charges)}).scalars())
    for key_id in with_budget:
        roll_budget_period(conn, key_id, now)
        row = _budget_row(conn, key_id)
        if row is None or row.budget_period_start is None:
            continue
        amount = sum(cost for started, cost in charges[key_id] if started >= row.budget_period_start)
        if amount:
            conn.execute(
                api_keys.update().where(api_keys.c.id == key_id)
                .values(budget_spent_micro_p=api_keys.c.budget_spent_micro_p + amount)
            )
            key_budget_spent(conn, key_id, amount)
