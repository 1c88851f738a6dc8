"""Balance thresholds and the event outbox the portal reads.

An account may watch its balance against thresholds (``low_balance`` for the alert
e-mail, ``auto_top_up`` for a card refill). ``balance_moved`` runs inside every
transaction that moves a balance (``ledger.post_entry`` and ``ledger.debit_usage``),
after the account row is locked by that move, so concurrent moves see each other's
result: a threshold is crossed, and its event written, exactly once per fall below
it. Climbing back to the threshold or above re-arms it. This module never touches a
balance or the ledger.

The portal reads the events in id order with ``events_after`` and remembers the last
id it handled. On PostgreSQL two transactions may commit their events out of id
order, so an event is handed out only once it is ``SETTLE`` old: by then every
transaction that took a lower id (a flush or a ledger post, both short) has ended.
SQLite has one writer at a time, so its ids commit in order.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..db import account_events, accounts, balance_thresholds, utcnow

THRESHOLD_NAMES = ("low_balance", "auto_top_up")
SETTLE = timedelta(seconds=1)


def balance_moved(conn: Connection, account_ids: Iterable[str]) -> None:
    """Disarm and record every threshold the accounts' balances just fell below; re-arm
    those they climbed back to. Call after the balances moved, in the same transaction."""
    ids = sorted(set(account_ids))
    if not ids:
        return
    rows = conn.execute(
        sa.select(balance_thresholds, accounts.c.balance_micro_p)
        .join(accounts, accounts.c.id == balance_thresholds.c.account_id)
        .where(balance_thresholds.c.account_id.in_(ids))
    ).all()
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


def event_dict(row: Any) -> dict:
    """An event as the internal API shows it."""
    return {
        "id": row.id,
        "account_id": row.account_id,
        "kind": row.kind,
        "balance_micro_p": row.balance_micro_p,
        "threshold_micro_p": row.threshold_micro_p,
        "created_at": row.created_at,
    }


def events_after(conn: Connection, after: int, limit: int) -> list[Any]:
    """Up to ``limit`` events with ids above ``after``, oldest first, settled ones only on PostgreSQL."""
    query = sa.select(account_events).where(account_events.c.id > after)
    if conn.dialect.name == "postgresql":
        query = query.where(account_events.c.created_at <= utcnow() - SETTLE)
    return list(conn.execute(query.order_by(account_events.c.id).limit(limit)))
