"""Balance leases: the only writer of ``accounts.leased_micro_p`` and ``leases``.

``Reserver`` hands out reservations from per-process leases of balance, one database
write per lease rather than per request; ``shrink_lease`` is how a settled
reservation leaves its lease, in the batch writer's transaction. See
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

from ..background import stop_task
from ..db import Database, accounts, leases, utcnow
from .ledger import LedgerError

log = logging.getLogger("samalink.gateway.leases")


class InsufficientBalance(LedgerError):
    """The account's available balance cannot cover the reservation."""


def shrink_lease(conn: Connection, account_id: str, holder_id: str, amount: int) -> bool:
    """Take ``amount`` out of a holder's lease and the account's leased total.

    False, with nothing changed, when the row is gone or holds less (it was reclaimed
    after expiring, and its amount already went back to the account).
    """
    result = conn.execute(
        leases.update()
        .where(leases.c.account_id == account_id, leases.c.holder_id == holder_id, leases.c.amount_micro_p >= amount)
        .values(amount_micro_p=leases.c.amount_micro_p - amount)
    )
    if result.rowcount == 0:
        return False
    conn.execute(
        accounts.update().where(accounts.c.id == account_id).values(leased_micro_p=accounts.c.leased_micro_p - amount)
    )
    return True


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
        if not shrink_lease(conn, account_id, self.holder_id, amount):
            return False
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
