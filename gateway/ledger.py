"""Accounts, ledger entries and the balance leases behind every reservation.

A balance changes only here (``post_entry``) or in the batch writer's usage debits
(``gateway.metering``), always in the same transaction as the ledger entry that explains
it, so ``accounts.balance_micro_p`` equals the sum of the account's entries at every
commit. ``Reserver`` hands out reservations from per-process leases of balance; see
docs/architecture.md for the overdraw bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .background import stop_task
from .db import Database, accounts, leases, ledger_entries, utcnow

log = logging.getLogger("samalink.gateway.ledger")

ENTRY_KINDS = ("credit", "debit", "refund", "adjustment", "usage")
# Kinds the internal API accepts; "usage" entries are written only by the batch writer.
POSTABLE_KINDS = ("credit", "debit", "refund", "adjustment")


class LedgerError(Exception):
    """Base of the ledger's domain errors."""


class AccountNotFound(LedgerError):
    """No account has this id."""


class IdempotencyConflict(LedgerError):
    """The idempotency key was already used for a different entry."""


class InsufficientBalance(LedgerError):
    """The account's available balance cannot cover the reservation."""


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


def get_account(conn: Connection, account_id: str) -> Any:
    """The account row; raises ``AccountNotFound``."""
    row = conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).first()
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


@dataclass(eq=False)
class Reservation:
    """Balance set aside in memory for one request until it is settled or released."""

    account_id: str
    amount_micro_p: int
    holder_id: str
    done: bool = False


@dataclass(eq=False)
class _AccountLease:
    held: int = 0  # what this process's leases row holds, as far as it knows
    reserved: int = 0  # the part of ``held`` backing reservations in flight
    last_used: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Reserver:
    """Serves reservations from leases of balance, one database write per lease.

    A lease moves balance into ``accounts.leased_micro_p`` (and this process's
    ``leases`` row) with an UPDATE conditional on ``balance - leased >= grant``; the
    sum of all processes' leases therefore never exceeds the balance. Reservations
    then come from the lease under a per-account asyncio lock, without the database.
    """

    def __init__(
        self,
        db: Database,
        holder_id: str | None = None,
        lease_ttl: float = 60.0,
        idle_after: float = 10.0,
        maintenance_interval: float = 5.0,
        chunk_fraction: int = 8,
    ) -> None:
        self.db = db
        self.holder_id = holder_id or str(uuid.uuid4())
        self.lease_ttl = lease_ttl
        self.idle_after = idle_after
        self.maintenance_interval = maintenance_interval
        self.chunk_fraction = chunk_fraction
        self._leases: dict[str, _AccountLease] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Start the task that renews, returns and reclaims leases."""
        self._task = asyncio.create_task(self._maintain(), name="samalink-lease-maintenance")

    async def reserve(self, account_id: str, amount_micro_p: int) -> Reservation:
        """Set ``amount_micro_p`` aside; raises ``InsufficientBalance`` when it does not fit."""
        amount = max(1, int(amount_micro_p))
        while True:
            lease = self._leases.get(account_id)
            if lease is None:
                lease = self._leases[account_id] = _AccountLease()
            async with lease.lock:
                # An idle lease may have been dropped while this call waited for the lock.
                if self._leases.get(account_id) is lease:
                    return await self._reserve_locked(lease, account_id, amount)

    async def _reserve_locked(self, lease: _AccountLease, account_id: str, amount: int) -> Reservation:
        lease.last_used = time.monotonic()
        if lease.held - lease.reserved < amount:
            need = amount - (lease.held - lease.reserved)
            granted, row_existed = await self.db.transaction(self._extend_lease, account_id, need)
            if not row_existed and lease.held > 0:
                # The row was reclaimed while this process still counted on it.
                log.warning("lease of account %s was reclaimed; resynchronising", account_id)
                lease.held = lease.reserved
            lease.held += granted
            if lease.held - lease.reserved < amount:
                raise InsufficientBalance(account_id)
        lease.reserved += amount
        return Reservation(account_id, amount, self.holder_id)

    def release(self, reservation: Reservation) -> None:
        """Give an unspent reservation back to the lease (idempotent)."""
        if reservation.done:
            return
        reservation.done = True
        lease = self._leases.get(reservation.account_id)
        if lease is not None:
            lease.reserved = max(0, lease.reserved - reservation.amount_micro_p)

    def consumed(self, reservation: Reservation, lease_row_updated: bool) -> None:
        """The batch writer committed this reservation's settlement.

        The commit already shrank the leases row by the reserved amount (when the row was
        still there); the in-memory lease follows.
        """
        if reservation.done:
            return
        reservation.done = True
        lease = self._leases.get(reservation.account_id)
        if lease is None:
            return
        lease.reserved = max(0, lease.reserved - reservation.amount_micro_p)
        if lease_row_updated:
            lease.held = max(0, lease.held - reservation.amount_micro_p)

    def held(self, account_id: str) -> tuple[int, int]:
        """(held, reserved) in this process for ``account_id``."""
        lease = self._leases.get(account_id)
        return (lease.held, lease.reserved) if lease else (0, 0)

    def _extend_lease(self, conn: Connection, account_id: str, need: int) -> tuple[int, bool]:
        query = sa.select(accounts.c.balance_micro_p, accounts.c.leased_micro_p).where(accounts.c.id == account_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        existing = conn.execute(
            sa.select(leases.c.amount_micro_p).where(
                leases.c.account_id == account_id, leases.c.holder_id == self.holder_id
            )
        ).first()
        if row is None or row.balance_micro_p <= 0:
            return 0, existing is not None
        available = row.balance_micro_p - row.leased_micro_p
        if available < need:
            return 0, existing is not None
        # A fraction of the balance, so several processes can each hold a lease on a
        # small account, and a burst does not need one write per request.
        grant = min(available, max(need, row.balance_micro_p // self.chunk_fraction))
        result = conn.execute(
            accounts.update()
            .where(accounts.c.id == account_id)
            .where(accounts.c.balance_micro_p - accounts.c.leased_micro_p >= grant)
            .values(leased_micro_p=accounts.c.leased_micro_p + grant)
        )
        if result.rowcount == 0:
            return 0, existing is not None
        expires = utcnow() + timedelta(seconds=self.lease_ttl)
        if existing is None:
            conn.execute(
                leases.insert().values(
                    account_id=account_id, holder_id=self.holder_id, amount_micro_p=grant, expires_at=expires
                )
            )
        else:
            conn.execute(
                leases.update()
                .where(leases.c.account_id == account_id, leases.c.holder_id == self.holder_id)
                .values(amount_micro_p=leases.c.amount_micro_p + grant, expires_at=expires)
            )
        return grant, existing is not None

    def _return_lease(self, conn: Connection, account_id: str, amount: int) -> bool:
        result = conn.execute(
            leases.update()
            .where(
                leases.c.account_id == account_id,
                leases.c.holder_id == self.holder_id,
                leases.c.amount_micro_p >= amount,
            )
            .values(amount_micro_p=leases.c.amount_micro_p - amount)
        )
        if result.rowcount == 0:
            return False
        conn.execute(
            accounts.update()
            .where(accounts.c.id == account_id)
            .values(leased_micro_p=accounts.c.leased_micro_p - amount)
        )
        conn.execute(
            leases.delete().where(
                leases.c.account_id == account_id,
                leases.c.holder_id == self.holder_id,
                leases.c.amount_micro_p == 0,
            )
        )
        return True

    def _renew_and_reclaim(self, conn: Connection) -> int:
        now = utcnow()
        conn.execute(
            leases.update()
            .where(leases.c.holder_id == self.holder_id)
            .values(expires_at=now + timedelta(seconds=self.lease_ttl))
        )
        return _drop_leases(conn, leases.c.expires_at < now)

    async def return_idle(self, idle_after: float | None = None) -> None:
        """Return the unreserved part of every lease unused for ``idle_after`` seconds."""
        idle_after = self.idle_after if idle_after is None else idle_after
        now = time.monotonic()
        for account_id, lease in list(self._leases.items()):
            if now - lease.last_used < idle_after or lease.lock.locked():
                continue
            async with lease.lock:
                free = lease.held - lease.reserved
                if free > 0:
                    if await self.db.transaction(self._return_lease, account_id, free):
                        lease.held -= free
                    else:
                        lease.held = lease.reserved
                if lease.held == 0 and lease.reserved == 0 and self._leases.get(account_id) is lease:
                    del self._leases[account_id]

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.maintenance_interval)
            try:
                reclaimed = await self.db.transaction(self._renew_and_reclaim)
                if reclaimed:
                    log.info("reclaimed %d expired lease(s)", reclaimed)
                await self.return_idle()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep maintaining after a database hiccup
                log.warning("lease maintenance failed; retrying", exc_info=True)

    async def close(self) -> None:
        """Stop maintenance and return every lease this process holds.

        Call after the batch writer's final flush, so nothing reserved is still unsettled.
        """
        await stop_task(self._task)
        self._task = None
        try:
            await self.db.transaction(lambda conn: _drop_leases(conn, leases.c.holder_id == self.holder_id))
        except Exception:  # noqa: BLE001 - the rows then expire and another process reclaims them
            log.warning("could not return leases at shutdown; they expire in %ss", self.lease_ttl, exc_info=True)
        self._leases.clear()


def _drop_leases(conn: Connection, condition: Any) -> int:
    """Delete the matching leases rows and give their amounts back to the accounts."""
    # DELETE … RETURNING locks and removes each row once: a concurrent reclaimer on
    # PostgreSQL waits on the row and then sees it gone, so nothing is returned twice.
    rows = list(conn.execute(leases.delete().where(condition).returning(leases.c.account_id, leases.c.amount_micro_p)))
    totals: dict[str, int] = {}
    for row in rows:
        totals[row.account_id] = totals.get(row.account_id, 0) + row.amount_micro_p
    for account_id in sorted(totals):
        conn.execute(
            accounts.update()
            .where(accounts.c.id == account_id)
            .values(leased_micro_p=accounts.c.leased_micro_p - totals[account_id])
        )
    return len(rows)
