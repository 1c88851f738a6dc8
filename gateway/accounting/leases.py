"""Leases of spendable amounts: the only writer of ``leases``, ``key_leases``,
``key_budget_leases``, ``member_budget_leases`` and the ``leased_micro_p`` columns of
accounts, keys and member budgets.

Every limit a request must fit in is a ``Pool``: the account's balance, a key's
lifetime spending limit, a key's budget for the current day, week or month, and the
budget of the key's team member for its period. ``Reserver`` hands out reservations from per-process leases of
each pool, one database write per lease rather than per request, so a limit is a hard
bound however many requests and gateway processes run at once. ``settle_reservations``
is how settled reservations leave their leases, in the batch writer's transaction. See
docs/architecture.md for the overdraw bound.

Lock order, so that on PostgreSQL no two of these transactions deadlock: an owner row
before any of its lease rows, and owners pool by pool in ``POOLS`` order, each pool's by
id. Extending, returning, settling and reclaiming all take it; renewing takes only this
process's lease rows, in the same order, and in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..background import stop_task
from ..db import (
    Database, accounts, api_keys, key_budget_leases, key_leases, leases, member_budget_leases, member_budgets, utcnow,
)
from .budgets import roll_budget_period
from .member_budgets import roll_member_period
from .ledger import LedgerError

log = logging.getLogger("samalink.gateway.leases")


class LimitReached(LedgerError):
    """A limit cannot cover the reservation; ``pool`` names which."""

    pool = ""


class InsufficientBalance(LimitReached):
    """The account's available balance cannot cover the reservation."""

    pool = "balance"


class KeyLimitReached(LimitReached):
    """What is left of the key's spending limit cannot cover the reservation."""

    pool = "key_limit"


class KeyBudgetExceeded(LimitReached):
    """What is left of the key's budget for this period cannot cover the reservation."""

    pool = "key_budget"


class MemberBudgetExceeded(LimitReached):
    """What is left of the team member's budget for this period cannot cover the reservation."""

    pool = "member_budget"


@dataclass(frozen=True, eq=False)
class Pool:
    """One kind of limit: the rows that hold it, the table of their leases, and how much
    each row may spend (``capacity``). ``prepare`` brings an owner row up to date
    before its capacity is read (a budget whose period ended starts a new one)."""

    name: str
    owners: sa.Table
    lease_rows: sa.Table
    owner_column: str
    capacity: Callable[[], Any]
    refusal: type[LimitReached]
    leased_column: str = "leased_micro_p"
    prepare: Callable[[Connection, str], None] | None = None

    def owner_key(self) -> sa.Column:
        """The lease table's column naming the owner row."""
        return self.lease_rows.c[self.owner_column]

    def leased(self) -> sa.Column:
        """The owner's column summing its lease rows."""
        return self.owners.c[self.leased_column]


BALANCE = Pool("balance", accounts, leases, "account_id", lambda: accounts.c.balance_micro_p, InsufficientBalance)
KEY_LIMIT = Pool(
    "key_limit", api_keys, key_leases, "key_id",
    lambda: api_keys.c.spend_limit_micro_p - api_keys.c.spent_micro_p, KeyLimitReached,
)
KEY_BUDGET = Pool(
    "key_budget", api_keys, key_budget_leases, "key_id",
    lambda: api_keys.c.budget_micro_p - api_keys.c.budget_spent_micro_p, KeyBudgetExceeded,
    leased_column="budget_leased_micro_p", prepare=lambda conn, key_id: roll_budget_period(conn, key_id, utcnow()),
)
MEMBER_BUDGET = Pool(
    "member_budget", member_budgets, member_budget_leases, "member_budget_id",
    lambda: member_budgets.c.budget_micro_p - member_budgets.c.spent_micro_p, MemberBudgetExceeded,
    prepare=lambda conn, budget_id: roll_member_period(conn, budget_id, utcnow()),
)
# In lock order (see the module's docstring).
POOLS = (BALANCE, KEY_BUDGET, KEY_LIMIT, MEMBER_BUDGET)


def _lock_owner(conn: Connection, pool: Pool, owner_id: str) -> None:
    """Lock the owner row before its lease rows are touched (SQLite locks the whole database anyway)."""
    conn.execute(sa.select(pool.owners.c.id).where(pool.owners.c.id == owner_id).with_for_update())


def shrink_lease(conn: Connection, pool: Pool, owner_id: str, holder_id: str, amount: int) -> bool:
    """Take ``amount`` out of a holder's lease and its owner's leased total.

    False, with nothing changed, when the row is gone or holds less (it was reclaimed
    after expiring, and its amount already went back to the owner).
    """
    _lock_owner(conn, pool, owner_id)
    rows = pool.lease_rows
    result = conn.execute(
        rows.update()
        .where(pool.owner_key() == owner_id, rows.c.holder_id == holder_id, rows.c.amount_micro_p >= amount)
        .values(amount_micro_p=rows.c.amount_micro_p - amount)
    )
    if result.rowcount == 0:
        return False
    owners = pool.owners
    conn.execute(
        owners.update().where(owners.c.id == owner_id).values({pool.leased(): pool.leased() - amount})
    )
    return True


@dataclass(eq=False)
class Reservation:
    """An amount set aside in memory for one request until it is settled or released.

    It comes out of the account's balance lease and, when ``key_id`` is set, out of that
    key's spending-limit lease too; when ``budget_key_id`` is set, out of that key's
    budget lease as well, and when ``member_budget_id`` is set, out of that team member's
    budget lease.
    """

    account_id: str
    amount_micro_p: int
    holder_id: str
    done: bool = False
    key_id: str | None = None
    budget_key_id: str | None = None
    member_budget_id: str | None = None

    def owners(self) -> list[tuple[Pool, str]]:
        """Each pool this reservation holds a part of, with its owner row."""
        held = [(BALANCE, self.account_id)]
        if self.key_id is not None:
            held.append((KEY_LIMIT, self.key_id))
        if self.budget_key_id is not None:
            held.append((KEY_BUDGET, self.budget_key_id))
        if self.member_budget_id is not None:
            held.append((MEMBER_BUDGET, self.member_budget_id))
        return held


@dataclass(frozen=True, slots=True)
class Settled:
    """A reservation whose request the batch writer committed, and which lease rows shrank."""

    reservation: Reservation
    shrunk: tuple[bool, ...]  # in ``reservation.owners()`` order


def settle_reservations(conn: Connection, reservations: list[Reservation | None]) -> list[Settled]:
    """Shrink each holder's leases by what its settled reservations held."""
    live = [r for r in reservations if r is not None and not r.done]
    consumption: dict[tuple[Pool, str, str], int] = {}
    for reservation in live:
        for pool, owner_id in reservation.owners():
            key = (pool, owner_id, reservation.holder_id)
            consumption[key] = consumption.get(key, 0) + reservation.amount_micro_p
    # In lock order, so two processes flushing at once (or a flush and a lease extension) cannot deadlock.
    shrunk = {
        key: shrink_lease(conn, key[0], key[1], key[2], amount)
        for key, amount in sorted(consumption.items(),
                                  key=lambda item: (POOLS.index(item[0][0]), item[0][1], item[0][2]))
    }
    return [
        Settled(r, tuple(shrunk[(pool, owner_id, r.holder_id)] for pool, owner_id in r.owners()))
        for r in live
    ]


@dataclass(eq=False)
class _Lease:
    held: int = 0  # what this process's lease row holds, as far as it knows
    reserved: int = 0  # the part of ``held`` backing reservations in flight
    last_used: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Reserver:
    """Serves reservations from leases, one database write per lease.

    A lease moves part of a pool's capacity into its owner's ``leased_micro_p`` (and this
    process's lease row) with an UPDATE conditional on ``capacity - leased >= grant``; the
    sum of all processes' leases therefore never exceeds the capacity. Reservations then
    come from the lease under a per-owner asyncio lock, without the database.
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
        self._leases: dict[tuple[Pool, str], _Lease] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Start the task that renews, returns and reclaims leases."""
        self._task = asyncio.create_task(self._maintain(), name="samalink-lease-maintenance")

    async def reserve(
        self, account_id: str, amount_micro_p: int, key_id: str | None = None, budget_key_id: str | None = None,
        member_budget_id: str | None = None,
    ) -> Reservation:
        """Set ``amount_micro_p`` aside; raises the ``LimitReached`` of the pool that cannot cover it."""
        return await self.reserve_up_to(account_id, amount_micro_p, amount_micro_p, key_id, budget_key_id,
                                        member_budget_id)

    async def reserve_up_to(
        self, account_id: str, want_micro_p: int, at_least_micro_p: int, key_id: str | None = None,
        budget_key_id: str | None = None, member_budget_id: str | None = None,
    ) -> Reservation:
        """Set aside as much of ``want_micro_p`` as every pool allows, and at least
        ``at_least_micro_p``; raises the ``LimitReached`` of the first pool that cannot.

        The key's spending limit is a pool only when ``key_id`` is given (a key with a
        limit), its period budget only when ``budget_key_id`` is (a key with a budget),
        and its team member's budget only when ``member_budget_id`` is.
        """
        want = max(1, int(want_micro_p))
        at_least = max(1, min(int(at_least_micro_p), want))
        # The key's limits first: they are usually the smaller, and a request they refuse
        # then holds none of the balance that other keys of the account could be spending.
        pools = [(KEY_BUDGET, budget_key_id)] if budget_key_id is not None else []
        if member_budget_id is not None:
            pools.append((MEMBER_BUDGET, member_budget_id))
        if key_id is not None:
            pools.append((KEY_LIMIT, key_id))
        pools.append((BALANCE, account_id))
        taken: list[tuple[Pool, str, int]] = []
        amount = want
        try:
            for pool, owner_id in pools:
                amount = await self._take(pool, owner_id, amount, at_least)
                taken.append((pool, owner_id, amount))
        except BaseException:
            # A refusal, and as much a database error or a cancellation: what the earlier
            # pools set aside would otherwise stay reserved for as long as the process runs.
            for pool, owner_id, held in taken:
                self._give_back(pool, owner_id, held)
            raise
        for pool, owner_id, held in taken:
            self._give_back(pool, owner_id, held - amount)
        return Reservation(account_id, amount, self.holder_id, key_id=key_id, budget_key_id=budget_key_id,
                           member_budget_id=member_budget_id)

    async def _take(self, pool: Pool, owner_id: str, want: int, at_least: int) -> int:
        while True:
            lease = self._leases.get((pool, owner_id))
            if lease is None:
                lease = self._leases[(pool, owner_id)] = _Lease()
            async with lease.lock:
                # An idle lease may have been dropped while this call waited for the lock.
                if self._leases.get((pool, owner_id)) is lease:
                    return await self._take_locked(lease, pool, owner_id, want, at_least)

    async def _take_locked(self, lease: _Lease, pool: Pool, owner_id: str, want: int, at_least: int) -> int:
        lease.last_used = time.monotonic()
        free = lease.held - lease.reserved
        if free < want:
            granted, row_existed = await self.db.transaction(
                self._extend_lease, pool, owner_id, want - free, at_least - free
            )
            if not row_existed and lease.held > 0:
                # The row was reclaimed while this process still counted on it.
                log.warning("%s lease of %s was reclaimed; resynchronising", pool.name, owner_id)
                lease.held = lease.reserved
            lease.held += granted
            free = lease.held - lease.reserved
        take = min(want, free)
        if take < at_least:
            raise pool.refusal(owner_id)
        lease.reserved += take
        return take

    def _give_back(self, pool: Pool, owner_id: str, amount: int) -> None:
        lease = self._leases.get((pool, owner_id))
        if lease is not None and amount > 0:
            lease.reserved = max(0, lease.reserved - amount)

    def release(self, reservation: Reservation) -> None:
        """Give an unspent reservation back to its leases (idempotent)."""
        if reservation.done:
            return
        reservation.done = True
        for pool, owner_id in reservation.owners():
            self._give_back(pool, owner_id, reservation.amount_micro_p)

    def trim(self, reservation: Reservation, amount_micro_p: int) -> None:
        """Keep only ``amount_micro_p`` of a reservation (what its request cost) until it is committed.

        The rest goes back to the leases at once: an agent's next turn follows its last
        answer within milliseconds, and must not find the balance still held for the
        worst case of a request that has already ended.
        """
        surplus = reservation.amount_micro_p - max(0, amount_micro_p)
        if reservation.done or surplus <= 0:
            return
        for pool, owner_id in reservation.owners():
            self._give_back(pool, owner_id, surplus)
        reservation.amount_micro_p -= surplus

    def consumed(self, settled: Settled) -> None:
        """The batch writer committed this reservation's settlement.

        The commit already shrank each lease row by the reserved amount (where the row
        was still there); the in-memory leases follow.
        """
        reservation = settled.reservation
        if reservation.done:
            return
        reservation.done = True
        for (pool, owner_id), row_shrunk in zip(reservation.owners(), settled.shrunk):
            lease = self._leases.get((pool, owner_id))
            if lease is None:
                continue
            lease.reserved = max(0, lease.reserved - reservation.amount_micro_p)
            if row_shrunk:
                lease.held = max(0, lease.held - reservation.amount_micro_p)

    def held(self, account_id: str, pool: Pool = BALANCE) -> tuple[int, int]:
        """(held, reserved) in this process for ``account_id`` (or a key id, with ``pool``)."""
        lease = self._leases.get((pool, account_id))
        return (lease.held, lease.reserved) if lease else (0, 0)

    def _extend_lease(self, conn: Connection, pool: Pool, owner_id: str, need: int, minimum: int) -> tuple[int, bool]:
        """Lease at least ``minimum`` more (``need`` or a chunk when there is room); (granted, row existed)."""
        owners, rows = pool.owners, pool.lease_rows
        if pool.prepare is not None:
            pool.prepare(conn, owner_id)
        capacity = pool.capacity()
        leased = pool.leased()
        query = sa.select(capacity.label("capacity"), leased.label("leased")).where(owners.c.id == owner_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(of=owners)
        row = conn.execute(query).first()
        existing = conn.execute(
            sa.select(rows.c.amount_micro_p).where(pool.owner_key() == owner_id, rows.c.holder_id == self.holder_id)
        ).first()
        if row is None or row.capacity is None or row.capacity <= 0:
            return 0, existing is not None
        available = row.capacity - row.leased
        if available <= 0 or available < minimum:
            return 0, existing is not None
        # A fraction of the capacity, so several processes can each hold a lease on a
        # small account, and a burst does not need one write per request.
        grant = min(available, max(need, row.capacity // self.chunk_fraction))
        result = conn.execute(
            owners.update()
            .where(owners.c.id == owner_id)
            .where(capacity - leased >= grant)
            .values({leased: leased + grant})
        )
        if result.rowcount == 0:
            return 0, existing is not None
        expires = utcnow() + timedelta(seconds=self.lease_ttl)
        if existing is None:
            conn.execute(
                rows.insert().values(
                    {pool.owner_column: owner_id, "holder_id": self.holder_id,
                     "amount_micro_p": grant, "expires_at": expires}
                )
            )
        else:
            conn.execute(
                rows.update()
                .where(pool.owner_key() == owner_id, rows.c.holder_id == self.holder_id)
                .values(amount_micro_p=rows.c.amount_micro_p + grant, expires_at=expires)
            )
        return grant, existing is not None

    def _return_lease(self, conn: Connection, pool: Pool, owner_id: str, amount: int) -> bool:
        if not shrink_lease(conn, pool, owner_id, self.holder_id, amount):
            return False
        rows = pool.lease_rows
        conn.execute(
            rows.delete().where(
                pool.owner_key() == owner_id, rows.c.holder_id == self.holder_id, rows.c.amount_micro_p == 0
            )
        )
        return True

    def _renew(self, conn: Connection) -> None:
        expires = utcnow() + timedelta(seconds=self.lease_ttl)
        for pool in POOLS:
            rows = pool.lease_rows
            mine = rows.c.holder_id == self.holder_id
            conn.execute(sa.select(pool.owner_key()).where(mine).order_by(pool.owner_key()).with_for_update())
            conn.execute(rows.update().where(mine).values(expires_at=expires))

    @staticmethod
    def _reclaim(conn: Connection) -> int:
        now = utcnow()
        return sum(_drop_leases(conn, pool, pool.lease_rows.c.expires_at < now) for pool in POOLS)

    async def renew_and_reclaim(self) -> int:
        """Renew this process's leases, then reclaim every expired one; how many were reclaimed."""
        await self.db.transaction(self._renew)
        return await self.db.transaction(self._reclaim)

    async def return_idle(self, idle_after: float | None = None) -> None:
        """Return the unreserved part of every lease unused for ``idle_after`` seconds."""
        idle_after = self.idle_after if idle_after is None else idle_after
        now = time.monotonic()
        for (pool, owner_id), lease in list(self._leases.items()):
            if now - lease.last_used < idle_after or lease.lock.locked():
                continue
            async with lease.lock:
                free = lease.held - lease.reserved
                if free > 0:
                    if await self.db.transaction(self._return_lease, pool, owner_id, free):
                        lease.held -= free
                    else:
                        lease.held = lease.reserved
                if lease.held == 0 and lease.reserved == 0 and self._leases.get((pool, owner_id)) is lease:
                    del self._leases[(pool, owner_id)]

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.maintenance_interval)
            try:
                reclaimed = await self.renew_and_reclaim()
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

        def drop_mine(conn: Connection) -> None:
            for pool in POOLS:
                _drop_leases(conn, pool, pool.lease_rows.c.holder_id == self.holder_id)

        try:
            await self.db.transaction(drop_mine)
        except Exception:  # noqa: BLE001 - the rows then expire and another process reclaims them
            log.warning("could not return leases at shutdown; they expire in %ss", self.lease_ttl, exc_info=True)
        self._leases.clear()


def _drop_leases(conn: Connection, pool: Pool, condition: Any) -> int:
    """Delete the matching lease rows and give their amounts back to their owners."""
    rows, owners = pool.lease_rows, pool.owners
    dropped = 0
    for owner_id in sorted(set(conn.execute(sa.select(pool.owner_key()).where(condition)).scalars())):
        _lock_owner(conn, pool, owner_id)
        # DELETE … RETURNING removes each row once: a concurrent reclaimer on PostgreSQL
        # waits on the owner, then finds the rows gone, so nothing is returned twice.
        amounts = list(conn.execute(
            rows.delete().where(condition, pool.owner_key() == owner_id).returning(rows.c.amount_micro_p)
        ).scalars())
        if amounts:
            conn.execute(owners.update().where(owners.c.id == owner_id)
                         .values({pool.leased(): pool.leased() - sum(amounts)}))
        dropped += len(amounts)
    return dropped
