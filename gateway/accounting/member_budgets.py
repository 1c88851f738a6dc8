"""Team members' spend caps per day, week or month: the only writer of ``member_budgets``
(all but ``leased_micro_p``, which belongs to the lease code in ``leases.py``).

A member's budget is shared by every key of that member in the account and kept as a
key budget is (``budgets.py``): the period on the row as [``period_start``,
``resets_at``), started again by whoever touches it first after the reset instant with a
conditional UPDATE, so it resets once however many processes race to it; a charge counts
towards the period its request began in. Every write moves ``updated_at``, which is how
the key caches of all gateway processes learn of it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..db import accounts, api_keys, in_list, member_budgets, request_log
from ..key_controls import period_bounds
from .events import budget_spent


def _row(conn: Connection, budget_id: str) -> Any:
    return conn.execute(
        sa.select(member_budgets, accounts.c.usage_tz)
        .join(accounts, accounts.c.id == member_budgets.c.account_id)
        .where(member_budgets.c.id == budget_id)
    ).first()


def member_budget_row(conn: Connection, account_id: str, member_id: str) -> Any:
    """The member's budget row with its account's ``usage_tz``, or None."""
    return conn.execute(
        sa.select(member_budgets, accounts.c.usage_tz)
        .join(accounts, accounts.c.id == member_budgets.c.account_id)
        .where(member_budgets.c.account_id == account_id, member_budgets.c.member_id == member_id)
    ).first()


def roll_member_period(conn: Connection, budget_id: str, now: datetime) -> None:
    """Start the member's current budget period when the one on its row has ended."""
    row = _row(conn, budget_id)
    if row is None or row.budget_period is None:
        return
    if row.resets_at is not None and row.resets_at > now:
        return
    start, resets = period_bounds(row.budget_period, row.usage_tz, now)
    previous = member_budgets.c.resets_at
    conn.execute(
        member_budgets.update()
        .where(member_budgets.c.id == budget_id)
        # Only the first to see the old period ended resets it (on PostgreSQL a racing
        # UPDATE re-reads the row and finds the new period).
        .where(sa.or_(previous.is_(None), previous <= now))
        .values(spent_micro_p=0, period_start=start, resets_at=resets, updated_at=now)
    )


def _ensure_row(conn: Connection, account_id: str, member_id: str, now: datetime) -> str:
    """The id of the member's row, inserted (once, however many callers race) when missing."""
    found = conn.execute(
        sa.select(member_budgets.c.id)
        .where(member_budgets.c.account_id == account_id, member_budgets.c.member_id == member_id)
    ).scalar()
    if found is not None:
        return found
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(
        insert(member_budgets)
        .values(id=str(uuid.uuid4()), account_id=account_id, member_id=member_id, spent_micro_p=0,
                leased_micro_p=0, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["account_id", "member_id"])
    )
    return conn.execute(
        sa.select(member_budgets.c.id)
        .where(member_budgets.c.account_id == account_id, member_budgets.c.member_id == member_id)
    ).scalar_one()


def set_member_budget(
    conn: Connection, account_id: str, member_id: str, budget_micro_p: int | None, period: str | None, now: datetime,
) -> Any:
    """Set the member's budget and period (both None removes it); the row afterwards.

    A new period counts its spend from the request log of the member's keys, so changing
    day to month keeps what the member spent this month; the same period keeps its spend.
    """
    budget_id = _ensure_row(conn, account_id, member_id, now)
    before = _row(conn, budget_id)
    if period is None:
        values: dict[str, Any] = {"budget_micro_p": None, "budget_period": None, "period_start": None,
                                  "resets_at": None, "spent_micro_p": 0}
    elif period == before.budget_period and before.resets_at is not None and before.resets_at > now:
        values = {"budget_micro_p": budget_micro_p}
    else:
        start, resets = period_bounds(period, before.usage_tz, now)
        spent = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(request_log.c.cost_micro_p), 0))
            .select_from(request_log.join(api_keys, api_keys.c.id == request_log.c.key_id))
            .where(api_keys.c.account_id == account_id, api_keys.c.member_id == member_id,
                   request_log.c.created_at >= start)
        ).scalar_one()
        values = {"budget_micro_p": budget_micro_p, "budget_period": period, "period_start": start,
                  "resets_at": resets, "spent_micro_p": int(spent)}
    conn.execute(member_budgets.update().where(member_budgets.c.id == budget_id).values(**values, updated_at=now))
    return member_budget_row(conn, account_id, member_id)


# Built once: every flush of the batch writer runs it.
_MEMBER_BUDGETS_OF_KEYS = (
    sa.select(api_keys.c.id, member_budgets.c.id.label("budget_id"))
    .join(member_budgets, sa.and_(member_budgets.c.account_id == api_keys.c.account_id,
                                  member_budgets.c.member_id == api_keys.c.member_id))
    .where(api_keys.c.id.in_(sa.bindparam("b_ids", expanding=True)), member_budgets.c.budget_period.is_not(None))
)


def add_member_spend(conn: Connection, charges: dict[str, list[tuple[datetime, int]]], now: datetime) -> None:
    """Add each key's charges (request start, cost) to its member's budget, where the key
    has a member with a budget and the charge falls in that budget's current period."""
    rows = conn.execute(_MEMBER_BUDGETS_OF_KEYS, {"b_ids": in_list(charges)})
    by_budget: dict[str, list[tuple[datetime, int]]] = {}
    for key_id, budget_id in rows:
        by_budget.setdefault(budget_id, []).extend(charges[key_id])
    # Sorted, so two processes flushing at once lock rows in the same order.
    for budget_id in sorted(by_budget):
        roll_member_period(conn, budget_id, now)
        row = _row(conn, budget_id)
        if row is None or row.period_start is None:
            continue
        amount = sum(cost for started, cost in by_budget[budget_id] if started >= row.period_start)
        if amount:
            # The spend as this update left it (another writer may have added to it since ``row`` was read).
            spent = conn.execute(
                member_budgets.update().where(member_budgets.c.id == budget_id)
                .values(spent_micro_p=member_budgets.c.spent_micro_p + amount, updated_at=now)
                .returning(member_budgets.c.spent_micro_p)
            ).scalar_one()
            if row.budget_micro_p is not None:
                budget_spent(conn, row.account_id, "member", row.member_id, row.budget_micro_p,
                             spent - amount, spent, row.period_start, row.resets_at)


def member_budget_dict(row: Any, member_id: str, now: datetime) -> dict:
    """A member's budget as the internal API shows it; a period that ended reads as a new one."""
    if row is None or row.budget_period is None:
        return {"member_id": member_id, "budget_micro_p": None, "budget_period": None, "spent_micro_p": 0,
                "resets_at": None}
    if row.resets_at is None or row.resets_at <= now:
        spent, resets = 0, period_bounds(row.budget_period, row.usage_tz, now)[1]
    else:
        spent, resets = row.spent_micro_p, row.resets_at
    return {"member_id": member_id, "budget_micro_p": row.budget_micro_p, "budget_period": row.budget_period,
            "spent_micro_p": spent, "resets_at": resets}


def list_member_budgets(conn: Connection, account_id: str) -> list[Any]:
    """The account's members with a budget, by member id, each with ``usage_tz``."""
    return list(conn.execute(
        sa.select(member_budgets, accounts.c.usage_tz)
        .join(accounts, accounts.c.id == member_budgets.c.account_id)
        .where(member_budgets.c.account_id == account_id, member_budgets.c.budget_period.is_not(None))
        .order_by(member_budgets.c.member_id)
    ))
