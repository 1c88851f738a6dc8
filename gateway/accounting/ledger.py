"""Accounts and their ledger: every movement of money.

This module is the only writer of ``ledger_entries`` and of an account's balance:
``post_entry`` for credits, debits, refunds and adjustments, ``debit_usage`` for the
batch writer's usage charges. Each moves the balance in the same transaction as the
entry that explains it, so ``accounts.balance_micro_p`` equals the sum of the
account's entries at every commit, and records any balance threshold the move crossed
(``events.balance_moved``) in that transaction too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..db import Database, accounts, ledger_entries, utcnow
from .events import balance_moved

ENTRY_KINDS = ("credit", "debit", "refund", "adjustment", "usage")
# Kinds the internal API accepts; "usage" entries are written only by the batch writer.
POSTABLE_KINDS = ("credit", "debit", "refund", "adjustment")


class LedgerError(Exception):
    """Base of the ledger's domain errors."""


class AccountNotFound(LedgerError):
    """No account has this id."""


class IdempotencyConflict(LedgerError):
    """The idempotency key was already used for a different entry."""


def signed_amount(kind: str, amount_micro_p: int) -> int:
    """The signed ledger amount for an amount as the API states it.

    ``credit`` adds a positive amount; ``debit`` and ``refund`` subtract a positive
    amount; ``adjustment`` is signed and non-zero. Raises ``ValueError`` otherwise.
    """
    if kind not in POSTABLE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(POSTABLE_KINDS)}")
    if kind == "adjustment":
        if amount_micro_p == 0:
            raise ValueError("an adjustment must not be zero")
        return amount_micro_p
    if amount_micro_p <= 0:
        raise ValueError(f"a {kind} amount must be a positive integer of micro-P")
    return amount_micro_p if kind == "credit" else -amount_micro_p


def entry_dict(row: Any) -> dict:
    """A ledger row as the internal API shows it."""
    return {
        "id": row.id,
        "kind": row.kind,
        "amount_micro_p": row.amount_micro_p,
        "balance_after_micro_p": row.balance_after_micro_p,
        "idempotency_key": row.idempotency_key,
        "description": row.description,
        "created_at": row.created_at,
    }


def account_dict(row: Any) -> dict:
    """An account row as the internal API shows it."""
    return {
        "id": row.id,
        "email": row.email,
        "external_id": row.external_id,
        "status": row.status,
        "balance_micro_p": row.balance_micro_p,
        "reserved_micro_p": row.leased_micro_p,
        "credited_micro_p": row.credited_micro_p,
        "spent_micro_p": row.spent_micro_p,
        "requests": row.requests,
        "usage_tz": row.usage_tz,
        "rpm_limit": row.rpm_limit,
        "tpm_limit": row.tpm_limit,
        "created_at": row.created_at,
    }


def create_account(conn: Connection, email: str | None, external_id: str | None) -> tuple[Any, bool]:
    """Create an account, or return the one with this ``external_id``; (row, created)."""
    if external_id is not None:
        row = conn.execute(sa.select(accounts).where(accounts.c.external_id == external_id)).first()
        if row is not None:
            return row, False
    now = utcnow()
    account_id = str(uuid.uuid4())
    conn.execute(
        accounts.insert().values(
            id=account_id, email=email, external_id=external_id, status="active",
            balance_micro_p=0, leased_micro_p=0, credited_micro_p=0, spent_micro_p=0,
            requests=0, created_at=now, updated_at=now,
        )
    )
    return get_account(conn, account_id), True


def get_account(conn: Connection, account_id: str, lock: bool = False) -> Any:
    """The account row, locked until the transaction ends when ``lock``; raises ``AccountNotFound``."""
    query = sa.select(accounts).where(accounts.c.id == account_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise AccountNotFound(account_id)
    return row


def set_account_status(conn: Connection, account_id: str, status: str) -> Any:
    """Suspend or reactivate an account; key caches see the change on their next poll."""
    result = conn.execute(
        accounts.update().where(accounts.c.id == account_id).values(status=status, updated_at=utcnow())
    )
    if result.rowcount == 0:
        raise AccountNotFound(account_id)
    return get_account(conn, account_id)


def post_entry(
    conn: Connection,
    account_id: str,
    kind: str,
    amount_micro_p: int,
    idempotency_key: str,
    description: str = "",
    request_id: str | None = None,
) -> tuple[dict, bool]:
    """Post one signed entry and move the balance with it; (entry, replayed).

    The same key with the same account, kind, amount and description returns the first
    entry unchanged; the same key with anything else raises ``IdempotencyConflict``.
    A concurrent duplicate on PostgreSQL surfaces as ``IntegrityError`` from the unique
    key: ``post_entry_async`` retries it, and the retry finds the committed entry.
    """
    existing = conn.execute(
        sa.select(ledger_entries).where(ledger_entries.c.idempotency_key == idempotency_key)
    ).first()
    if existing is not None:
        same = (
            existing.account_id == account_id
            and existing.kind == kind
            and existing.amount_micro_p == amount_micro_p
            and existing.description == description
        )
        if not same:
            raise IdempotencyConflict(idempotency_key)
        return entry_dict(existing), True
    credited = amount_micro_p if kind == "credit" else 0
    # The UPDATE takes the row lock on PostgreSQL, so the balance read back below is
    # exactly the one this entry produced.
    result = conn.execute(
        accounts.update()
        .where(accounts.c.id == account_id)
        .values(
            balance_micro_p=accounts.c.balance_micro_p + amount_micro_p,
            credited_micro_p=accounts.c.credited_micro_p + credited,
        )
    )
    if result.rowcount == 0:
        raise AccountNotFound(account_id)
    balance = conn.execute(
        sa.select(accounts.c.balance_micro_p).where(accounts.c.id == account_id)
    ).scalar_one()
    balance_moved(conn, [account_id])
    inserted = conn.execute(
        ledger_entries.insert()
        .values(
            account_id=account_id, kind=kind, amount_micro_p=amount_micro_p,
            balance_after_micro_p=balance, idempotency_key=idempotency_key,
            request_id=request_id, description=description, created_at=utcnow(),
        )
        .returning(*ledger_entries.c)
    ).first()
    return entry_dict(inserted), False


async def post_entry_async(db: Database, *args: Any, **kwargs: Any) -> tuple[dict, bool]:
    """``post_entry`` in its own transaction, retried once after a duplicate-key race."""

    def work(conn: Connection) -> tuple[dict, bool]:
        return post_entry(conn, *args, **kwargs)

    try:
        return await db.transaction(work)
    except sa.exc.IntegrityError:
        return await db.transaction(work)


def list_entries(conn: Connection, account_id: str, limit: int, before_id: int | None) -> list[Any]:
    """Entries newest first, ``limit`` of them, with ids below ``before_id`` when given."""
    query = sa.select(ledger_entries).where(ledger_entries.c.account_id == account_id)
    if before_id is not None:
        query = query.where(ledger_entries.c.id < before_id)
    return list(conn.execute(query.order_by(ledger_entries.c.id.desc()).limit(limit)))


def ledger_sum(conn: Connection, account_id: str) -> int:
    """The sum of an account's entries (equals its balance at every commit)."""
    return int(
        conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(ledger_entries.c.amount_micro_p), 0)).where(
                ledger_entries.c.account_id == account_id
            )
        ).scalar_one()
    )


@dataclass(frozen=True, slots=True)
class UsageCharge:
    """One request's charge, as the batch writer hands it to ``debit_usage``."""

    account_id: str
    request_id: str
    amount_micro_p: int
    description: str


# Built once: the batch writer runs it for every account in every flush.
_CHARGE = (
    accounts.update()
    .where(accounts.c.id == sa.bindparam("b_id"))
    .values(
        balance_micro_p=accounts.c.balance_micro_p - sa.bindparam("b_total"),
        spent_micro_p=accounts.c.spent_micro_p + sa.bindparam("b_total"),
        requests=accounts.c.requests + sa.bindparam("b_count"),
    )
    .returning(accounts.c.balance_micro_p)
)


def debit_usage(conn: Connection, charges: Iterable[UsageCharge]) -> None:
    """Charge settled requests: per account, one balance update and one ``usage`` entry
    per charged request (idempotency key ``usage:<request_id>``), all in ``conn``'s
    transaction. Every account also counts its requests and spend, free ones included.
    """
    by_account: dict[str, list[UsageCharge]] = {}
    for charge in charges:
        by_account.setdefault(charge.account_id, []).append(charge)
    now = utcnow()
    entries = []
    # Sorted, so two processes flushing at once lock accounts in the same order.
    for account_id in sorted(by_account):
        charges_here = by_account[account_id]
        total = sum(c.amount_micro_p for c in charges_here)
        # The UPDATE holds the row lock, so the balance it returns makes the running balance exact.
        running = conn.execute(_CHARGE, {"b_id": account_id, "b_total": total, "b_count": len(charges_here)}).scalar()
        if total == 0:
            continue
        if running is None:
            raise LookupError(f"no account {account_id} to charge")
        running += total
        for c in charges_here:
            if c.amount_micro_p == 0:
                continue
            running -= c.amount_micro_p
            entries.append({
                "account_id": account_id, "kind": "usage", "amount_micro_p": -c.amount_micro_p,
                "balance_after_micro_p": running, "idempotency_key": f"usage:{c.request_id}",
                "request_id": c.request_id, "description": c.description, "created_at": now,
            })
    if entries:
        conn.execute(ledger_entries.insert(), entries)
    balance_moved(conn, by_account)
