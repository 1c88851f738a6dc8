"""Balance thresholds, budget crossings and the event outbox the portal reads.

An account may watch its balance against thresholds (``low_balance`` for the alert
e-mail, ``auto_top_up`` for a card refill). ``balance_moved`` runs inside every
transaction that moves a balance (``ledger.post_entry`` and ``ledger.debit_usage``),
after the account row is locked by that move, so concurrent moves see each other's
result: a threshold is crossed, and its event written, exactly once per fall below
it. Climbing back to the threshold or above re-arms it. This module never touches a
balance or the ledger.

A budget (a key's, or later a team member's) records ``budget_80`` and ``budget_100``
at most once each per budget period: ``budget_spent`` runs in the batch writer's
transaction right after it added to the spend, so it sees the spend before and after
its own charge, and a unique index on (kind, subject, period start) turns any second
recording of the same crossing into nothing (``ON CONFLICT DO NOTHING``), whichever
process or writer gets there.

The portal reads the events in id order with ``events_after`` and remembers the last
id it handled. On PostgreSQL two transactions may commit their events out of id
order, so an event is handed out only once it is ``SETTLE`` old: by then every
transaction that took a lower id (a flush or a ledger post, both short) has ended.
SQLite has one writer at a time, so its ids commit in order.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..db import account_events, accounts, api_keys, balance_thresholds, in_list, member_budgets, utcnow

THRESHOLD_NAMES = ("low_balance", "auto_top_up")
SETTLE = timedelta(seconds=1)
# The budget events, by the share of the budget (in percent) that records them.
BUDGET_EVENTS = {80: "budget_80", 100: "budget_100"}
BUDGET_SCOPES = ("key", "member")
# A budget that refuses a call with this share spent counts as used up (``budget_used_up``).
USED_UP_PERCENT = 90


# Built once: every flush of the batch writer runs it.
_THRESHOLDS_OF_ACCOUNTS = (
    sa.select(balance_thresholds, accounts.c.balance_micro_p)
    .join(accounts, accounts.c.id == balance_thresholds.c.account_id)
    .where(balance_thresholds.c.account_id.in_(sa.bindparam("b_ids", expanding=True)))
)


def balance_moved(conn: Connection, account_ids: Iterable[str]) -> None:
    """Disarm and record every threshold the accounts' balances just fell below; re-arm
    those they climbed back to. Call after the balances moved, in the same transaction."""
    ids = sorted(set(account_ids))
    if not ids:
        return
    rows = conn.execute(_THRESHOLDS_OF_ACCOUNTS, {"b_ids": in_list(ids)}).all()
    now = utcnow()
    for row in rows:
        below = row.balance_micro_p < row.threshold_micro_p
        if row.armed == (not below):
            continue
        conn.execute(
            balance_thresholds.update()
            .where(balance_thresholds.c.account_id == row.account_id, balance_thresholds.c.name == row.name)
            .values(armed=not below)
        )
        if below:
            conn.execute(account_events.insert().values(
                account_id=row.account_id, kind=row.name, balance_micro_p=row.balance_micro_p,
                threshold_micro_p=row.threshold_micro_p, created_at=now,
            ))


def set_threshold(conn: Connection, account_id: str, name: str, threshold_micro_p: int | None) -> None:
    """Watch ``name`` at ``threshold_micro_p`` (None: stop watching).

    A new or changed threshold starts armed, so a balance already below it is recorded
    as a crossing at once: the customer hears about it (or is refilled) without waiting
    for the next request.
    """
    where = (balance_thresholds.c.account_id == account_id, balance_thresholds.c.name == name)
    # Lock the account first, as every balance move does, so the check below sees a settled balance.
    conn.execute(accounts.update().where(accounts.c.id == account_id).values(updated_at=utcnow()))
    current = conn.execute(sa.select(balance_thresholds.c.threshold_micro_p).where(*where)).scalar_one_or_none()
    if threshold_micro_p is None:
        conn.execute(balance_thresholds.delete().where(*where))
        return
    if current == threshold_micro_p:
        return
    if current is None:
        conn.execute(balance_thresholds.insert().values(
            account_id=account_id, name=name, threshold_micro_p=threshold_micro_p, armed=True))
    else:
        conn.execute(balance_thresholds.update().where(*where).values(threshold_micro_p=threshold_micro_p, armed=True))
    balance_moved(conn, [account_id])


def thresholds(conn: Connection, account_id: str) -> dict[str, dict]:
    """The account's thresholds by name: ``threshold_micro_p`` and ``below`` (crossed, not yet re-armed)."""
    rows = conn.execute(sa.select(balance_thresholds).where(balance_thresholds.c.account_id == account_id))
    found = {row.name: {"threshold_micro_p": row.threshold_micro_p, "below": not row.armed} for row in rows}
    return {name: found.get(name, {"threshold_micro_p": None, "below": False}) for name in THRESHOLD_NAMES}


def budget_share_at(budget_micro_p: int, percent: int) -> int:
    """The spend that reaches ``percent`` of the budget (rounded up: 80 % of 1 micro-P is 1)."""
    return -(-budget_micro_p * percent // 100)


def budget_spent(
    conn: Connection,
    account_id: str,
    scope: str,
    subject_id: str,
    budget_micro_p: int,
    spent_before: int,
    spent_after: int,
    period_start: datetime,
    resets_at: datetime | None = None,
) -> str | None:
    """Record the budget share the spend just reached, once per period; the kind recorded
    (None when nothing was reached or it was recorded already).

    Call in the transaction that moved the spend from ``spent_before`` to
    ``spent_after`` (with the subject's row locked by that move). When one move passes
    both 80 % and 100 %, only ``budget_100`` is recorded: one mail saying the budget is
    used up, not two at once.
    """
    if scope not in BUDGET_SCOPES:
        raise ValueError(f"unknown budget scope {scope!r}")
    if budget_micro_p <= 0 or spent_after <= spent_before:
        return None
    reached = [percent for percent in BUDGET_EVENTS
               if spent_before < budget_share_at(budget_micro_p, percent) <= spent_after]
    if not reached:
        return None
    return _record_budget_event(conn, account_id, max(reached), scope, subject_id, budget_micro_p, spent_after,
                                period_start, resets_at)


def _record_budget_event(conn: Connection, account_id: str, percent: int, scope: str, subject_id: str,
                         budget_micro_p: int, spent_micro_p: int, period_start: datetime,
                         resets_at: datetime | None) -> str | None:
    # The unique index makes a second recording of the same share and period a no-op.
    balance = conn.execute(sa.select(accounts.c.balance_micro_p).where(accounts.c.id == account_id)).scalar_one()
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    recorded = conn.execute(insert(account_events).values(
        account_id=account_id, kind=BUDGET_EVENTS[percent], balance_micro_p=balance,
        threshold_micro_p=budget_share_at(budget_micro_p, percent), created_at=utcnow(),
        subject_kind=scope, subject_id=subject_id, period_start=period_start, resets_at=resets_at,
        budget_micro_p=budget_micro_p, spent_micro_p=spent_micro_p,
    ).on_conflict_do_nothing(index_elements=["kind", "account_id", "subject_kind", "subject_id", "period_start"])
        .returning(account_events.c.id)).first()
    return BUDGET_EVENTS[percent] if recorded is not None else None


def budget_used_up(conn: Connection, scope: str, subject_id: str, needed_micro_p: int) -> str | None:
    """Record ``budget_100`` for a budget that just refused a call it could not fit, when
    it is used up in all but name; the kind recorded, or None.

    Calls lower their output bound to what a budget has left, so spend creeps up to the
    budget without reaching it, and the budget ends by refusing calls instead. It counts
    as used up when what is left (after spend, not counting other calls' reservations)
    is less than the refused call's least cost and at least ``USED_UP_PERCENT`` of it is
    spent; a big prompt refused early is told so by its 402 and mails nobody. Once per
    period, like the crossing the batch writer records.
    """
    if scope == "key":
        row = conn.execute(
            sa.select(api_keys.c.account_id, api_keys.c.budget_micro_p, api_keys.c.budget_spent_micro_p.label("spent"),
                      api_keys.c.budget_period_start.label("period_start"), api_keys.c.budget_resets_at.label("resets_at"))
            .where(api_keys.c.id == subject_id)).first()
    elif scope == "member":
        row = conn.execute(
            sa.select(member_budgets.c.account_id, member_budgets.c.member_id, member_budgets.c.budget_micro_p,
                      member_budgets.c.spent_micro_p.label("spent"), member_budgets.c.period_start,
                      member_budgets.c.resets_at)
            .where(member_budgets.c.id == subject_id)).first()
    else:
        raise ValueError(f"unknown budget scope {scope!r}")
    if row is None or not row.budget_micro_p or row.period_start is None:
        return None
    if row.resets_at is not None and row.resets_at <= utcnow():
        return None
    left = row.budget_micro_p - row.spent
    if left >= needed_micro_p or row.spent < budget_share_at(row.budget_micro_p, USED_UP_PERCENT):
        return None
    subject = subject_id if scope == "key" else row.member_id
    return _record_budget_event(conn, row.account_id, 100, scope, subject, row.budget_micro_p, row.spent,
                                row.period_start, row.resets_at)


def key_budget_spent(conn: Connection, key_id: str, added_micro_p: int) -> str | None:
    """``budget_spent`` for a key whose period spend just grew by ``added_micro_p``
    (read back from its row, which that update has locked)."""
    row = conn.execute(
        sa.select(api_keys.c.account_id, api_keys.c.budget_micro_p, api_keys.c.budget_spent_micro_p,
                  api_keys.c.budget_period_start, api_keys.c.budget_resets_at)
        .where(api_keys.c.id == key_id)
    ).first()
    if row is None or row.budget_micro_p is None or row.budget_period_start is None:
        return None
    return budget_spent(conn, row.account_id, "key", key_id, row.budget_micro_p,
                        row.budget_spent_micro_p - added_micro_p, row.budget_spent_micro_p,
                        row.budget_period_start, row.budget_resets_at)


def event_dict(row: Any) -> dict:
    """An event as the internal API shows it (the budget fields are null on balance events)."""
    return {
        "id": row.id,
        "account_id": row.account_id,
        "kind": row.kind,
        "balance_micro_p": row.balance_micro_p,
        "threshold_micro_p": row.threshold_micro_p,
        "created_at": row.created_at,
        "subject_kind": row.subject_kind,
        "subject_id": row.subject_id,
        "budget_micro_p": row.budget_micro_p,
        "spent_micro_p": row.spent_micro_p,
        "period_start": row.period_start,
        "resets_at": row.resets_at,
    }


def events_after(conn: Connection, after: int, limit: int) -> list[Any]:
    """Up to ``limit`` events with ids above ``after``, oldest first, settled ones only on PostgreSQL."""
    query = sa.select(account_events).where(account_events.c.id > after)
    if conn.dialect.name == "postgresql":
        query = query.where(account_events.c.created_at <= utcnow() - SETTLE)
    return list(conn.execute(query.order_by(account_events.c.id).limit(limit)))
