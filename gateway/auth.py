"""API keys: generation, hashing, display forms, and the in-memory key cache.

Keys are ``sama_`` + a UUID4 and are stored only as their SHA-256. ``KeyCache`` answers
the hot path from memory: it loads every key and every team member's budget at start,
polls for keys, accounts and member budgets changed since its last poll (so a revocation,
expiry change, suspension or new budget reaches every process within two poll
intervals), and sends an unknown hash to the database once, remembering a miss for a
short time so a flood of bad keys cannot hammer the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .background import repeat_every, stop_task
from .db import Database, accounts, api_keys, member_budgets, utcnow
from .key_controls import IpNetwork, parse_ip_entry, period_bounds

log = logging.getLogger("samalink.gateway.auth")

KEY_PATTERN = re.compile(r"^sama_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# Rows changed this long before the previous poll are read again: covers transactions
# that committed late and modest clock differences between gateway machines.
POLL_OVERLAP = timedelta(seconds=5)


def generate_key() -> str:
    """A new API key: ``sama_`` + a random UUID4."""
    return f"sama_{uuid.uuid4()}"


def hash_key(presented: str) -> str:
    """The SHA-256 hex digest under which a key is stored."""
    return hashlib.sha256(presented.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str:
    """The visible prefix: ``sama_`` and the first four hex digits."""
    return key[:9]


def key_suffix(key: str) -> str:
    """The visible suffix: the last four characters."""
    return key[-4:]


def masked_key(prefix: str, suffix: str) -> str:
    """The display form ``sama_1234…abcd``."""
    return f"{prefix}\u2026{suffix}"


@dataclass(frozen=True)
class KeyInfo:
    """What the public API needs to know about a presented key."""

    key_id: str
    account_id: str
    name: str
    spend_limit_micro_p: int | None
    spent_micro_p: int
    expires_at: datetime | None
    revoked: bool
    account_active: bool
    budget_micro_p: int | None = None
    budget_period: str | None = None
    budget_spent_micro_p: int = 0
    budget_resets_at: datetime | None = None
    allowed_models: frozenset[str] = frozenset()  # canonical ids; empty: every model
    allowed_ips: tuple[IpNetwork, ...] = ()  # empty: any address
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    account_rpm_limit: int | None = None
    account_tpm_limit: int | None = None
    member_id: str | None = None  # the team member who owns the key

    def refusal(self, now: datetime | None = None) -> str | None:
        """Why this key may not be used now (``revoked``, ``expired``, ``suspended``,
        ``spend_limit``, ``budget``), or None when it may."""
        now = now or utcnow()
        if self.revoked:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if not self.account_active:
            return "suspended"
        if self.spend_limit_micro_p is not None and self.spent_micro_p >= self.spend_limit_micro_p:
            return "spend_limit"
        if self.budget_exhausted(now):
            return "budget"
        return None

    def budget_exhausted(self, now: datetime) -> bool:
        """Whether this period's budget is spent (a period that has ended is not)."""
        return (
            self.budget_micro_p is not None
            and self.budget_resets_at is not None
            and self.budget_resets_at > now
            and self.budget_spent_micro_p >= self.budget_micro_p
        )

    @property
    def has_budget(self) -> bool:
        """Whether the key has a budget per period."""
        return self.budget_micro_p is not None and self.budget_resets_at is not None

    @property
    def rate_limited(self) -> bool:
        """Whether any requests- or tokens-per-minute limit applies to the key."""
        return any(limit is not None for limit in
                   (self.rpm_limit, self.tpm_limit, self.account_rpm_limit, self.account_tpm_limit))


@dataclass(frozen=True)
class MemberBudgetInfo:
    """A team member's budget for the period, as the hot path sees it."""

    budget_id: str
    account_id: str
    member_id: str
    budget_micro_p: int
    budget_period: str
    spent_micro_p: int
    resets_at: datetime | None

    def exhausted(self, now: datetime) -> bool:
        """Whether this period's budget is spent (a period that has ended is not)."""
        return self.resets_at is not None and self.resets_at > now and self.spent_micro_p >= self.budget_micro_p


def _member_budget_info(row: Any) -> MemberBudgetInfo | None:
    if row.budget_micro_p is None or row.budget_period is None:
        return None
    return MemberBudgetInfo(row.id, row.account_id, row.member_id, row.budget_micro_p, row.budget_period,
                            row.spent_micro_p, row.resets_at)


def _key_query() -> sa.Select:
    return sa.select(
        api_keys.c.id, api_keys.c.account_id, api_keys.c.name, api_keys.c.key_hash,
        api_keys.c.spend_limit_micro_p, api_keys.c.spent_micro_p, api_keys.c.expires_at,
        api_keys.c.revoked_at, accounts.c.status,
        api_keys.c.budget_micro_p, api_keys.c.budget_period, api_keys.c.budget_spent_micro_p,
        api_keys.c.budget_resets_at, api_keys.c.allowed_models, api_keys.c.allowed_ips,
        api_keys.c.rpm_limit, api_keys.c.tpm_limit, api_keys.c.member_id,
        accounts.c.rpm_limit.label("account_rpm_limit"), accounts.c.tpm_limit.label("account_tpm_limit"),
    ).join(accounts, accounts.c.id == api_keys.c.account_id)


def json_list(text: str | None) -> list[str]:
    """A stored JSON list of strings (anything else reads as empty)."""
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _networks(text: str | None) -> tuple[IpNetwork, ...]:
    networks = []
    for entry in json_list(text):
        try:
            networks.append(parse_ip_entry(entry))
        except ValueError:
            # Entries are checked on the way in; one that is not is skipped, never widened.
            log.warning("skipping an unreadable IP allow-list entry")
    if json_list(text) and not networks:
        # Nothing readable left: allow nothing rather than everything.
        return (parse_ip_entry("0.0.0.0/32"),)
    return tuple(networks)


def _info(row: Any) -> KeyInfo:
    has_budget = row.budget_micro_p is not None and row.budget_period is not None
    return KeyInfo(
        key_id=row.id, account_id=row.account_id, name=row.name,
        spend_limit_micro_p=row.spend_limit_micro_p, spent_micro_p=row.spent_micro_p,
        expires_at=row.expires_at, revoked=row.revoked_at is not None,
        account_active=row.status == "active",
        budget_micro_p=row.budget_micro_p if has_budget else None,
        budget_period=row.budget_period if has_budget else None,
        budget_spent_micro_p=row.budget_spent_micro_p,
        budget_resets_at=row.budget_resets_at if has_budget else None,
        allowed_models=frozenset(json_list(row.allowed_models)),
        allowed_ips=_networks(row.allowed_ips),
        rpm_limit=row.rpm_limit, tpm_limit=row.tpm_limit,
        account_rpm_limit=row.account_rpm_limit, account_tpm_limit=row.account_tpm_limit,
        member_id=row.member_id,
    )


class KeyCache:
    """Presented key → ``KeyInfo``, from memory, kept fresh by a short poll."""

    def __init__(
        self,
        db: Database,
        refresh_interval: float = 0.5,
        negative_ttl: float = 5.0,
        negative_max: int = 100_000,
        miss_concurrency: int = 4,
    ) -> None:
        self.db = db
        self.refresh_interval = refresh_interval
        self.negative_ttl = negative_ttl
        self.negative_max = negative_max
        self.db_misses = 0  # how many lookups reached the database (for tests and health)
        self._by_hash: dict[str, KeyInfo] = {}
        self._hash_by_id: dict[str, str] = {}
        self._hashes_by_account: dict[str, set[str]] = {}
        self._member_budgets: dict[tuple[str, str], MemberBudgetInfo] = {}
        self._negative: OrderedDict[str, float] = OrderedDict()
        self._inflight: dict[str, asyncio.Future] = {}
        self._miss_gate = asyncio.Semaphore(miss_concurrency)
        # Reads run on a thread pool and may finish out of order: a poll that read before a
        # change committed can end after the refresh that change asked for. Each read gets
        # a number when it is sent, and an entry is only replaced by a read sent later.
        self._reads = 0
        self._read_of: dict[Any, int] = {}
        self._last_poll: datetime | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Load every key, then poll for changes in the background."""
        started = utcnow()
        read = self._next_read()
        rows = await self.db.run(self._read, _key_query())
        for row in rows:
            self._store(row.key_hash, _info(row), read)
        for row in await self.db.run(self._read, sa.select(member_budgets)):
            self._store_member_budget(row, read)
        self._last_poll = started
        self._task = repeat_every(self.refresh_interval, self.refresh, "key refresh")

    async def close(self) -> None:
        """Stop polling."""
        await stop_task(self._task)
        self._task = None

    async def lookup(self, presented: str) -> KeyInfo | None:
        """The key's info (revoked or expired keys included), or None for an unknown key."""
        if not isinstance(presented, str) or not KEY_PATTERN.match(presented):
            return None
        digest = hash_key(presented)
        info = self._by_hash.get(digest)
        if info is not None:
            return info
        until = self._negative.get(digest)
        if until is not None:
            if until > time.monotonic():
                return None
            self._negative.pop(digest, None)
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            async with self._miss_gate:
                self.db_misses += 1
                read = self._next_read()
                rows = await self.db.run(self._read, _key_query().where(api_keys.c.key_hash == digest))
            info = _info(rows[0]) if rows else None
            if info is None:
                self._remember_miss(digest)
            else:
                self._store(digest, info, read)
                info = self._by_hash.get(digest, info)
            future.set_result(info)
            return info
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # consumed here, so a lone waiter-less failure is not reported twice
            raise
        finally:
            self._inflight.pop(digest, None)

    def member_budget(self, key: KeyInfo) -> MemberBudgetInfo | None:
        """The budget of the key's team member, or None (no member, or no budget)."""
        if key.member_id is None:
            return None
        return self._member_budgets.get((key.account_id, key.member_id))

    def note_spent(self, key_id: str, amount_micro_p: int) -> None:
        """Add a committed charge to the cached spend of the key and of its member's
        budget (the next poll confirms it)."""
        digest = self._hash_by_id.get(key_id)
        info = self._by_hash.get(digest) if digest else None
        if info is not None:
            self._by_hash[digest] = replace(info, spent_micro_p=info.spent_micro_p + amount_micro_p,
                                            budget_spent_micro_p=info.budget_spent_micro_p + amount_micro_p)
            member = self.member_budget(info)
            if member is not None:
                self._member_budgets[(member.account_id, member.member_id)] = replace(
                    member, spent_micro_p=member.spent_micro_p + amount_micro_p)

    async def refresh(self) -> None:
        """Read keys, accounts and member budgets changed since the previous poll."""
        started = utcnow()
        since = (self._last_poll or started) - POLL_OVERLAP
        read = self._next_read()
        keys, changed_accounts, budgets = await self.db.run(self._read_changes, since)
        for row in keys:
            self._store(row.key_hash, _info(row), read)
        for row in budgets:
            self._store_member_budget(row, read)
        for account_id, status, rpm, tpm in changed_accounts:
            if not self._fresher(("account", account_id), read):
                continue
            active = status == "active"
            for digest in self._hashes_by_account.get(account_id, ()):
                info = self._by_hash.get(digest)
                if info is not None and (info.account_active, info.account_rpm_limit, info.account_tpm_limit) != (active, rpm, tpm):
                    self._by_hash[digest] = replace(info, account_active=active, account_rpm_limit=rpm,
                                                    account_tpm_limit=tpm)
        self._last_poll = max(started, self._last_poll or started)

    def _next_read(self) -> int:
        self._reads += 1
        return self._reads

    def _fresher(self, entry: Any, read: int) -> bool:
        """Whether ``read`` was sent after the one that last set ``entry``; if so it is now the last."""
        if self._read_of.get(entry, 0) > read:
            return False
        self._read_of[entry] = read
        return True

    def _store(self, digest: str, info: KeyInfo, read: int) -> None:
        if not self._fresher(digest, read):
            return
        self._by_hash[digest] = info
        self._hash_by_id[info.key_id] = digest
        self._hashes_by_account.setdefault(info.account_id, set()).add(digest)
        self._negative.pop(digest, None)

    def _store_member_budget(self, row: Any, read: int) -> None:
        if not self._fresher(("member", row.account_id, row.member_id), read):
            return
        info = _member_budget_info(row)
        if info is None:
            self._member_budgets.pop((row.account_id, row.member_id), None)
        else:
            self._member_budgets[(row.account_id, row.member_id)] = info

    def _remember_miss(self, digest: str) -> None:
        self._negative[digest] = time.monotonic() + self.negative_ttl
        self._negative.move_to_end(digest)
        while len(self._negative) > self.negative_max:
            self._negative.popitem(last=False)

    def _read(self, query: sa.Select) -> list[Any]:
        return self.db.read_sync(lambda conn: list(conn.execute(query)))

    def _read_changes(self, since: datetime) -> tuple[list[Any], list[tuple], list[Any]]:
        def read(conn: Connection) -> tuple[list[Any], list[tuple], list[Any]]:
            keys = list(conn.execute(_key_query().where(api_keys.c.updated_at >= since)))
            changed = [
                (row.id, row.status, row.rpm_limit, row.tpm_limit)
                for row in conn.execute(
                    sa.select(accounts.c.id, accounts.c.status, accounts.c.rpm_limit, accounts.c.tpm_limit)
                    .where(accounts.c.updated_at >= since)
                )
            ]
            budgets = list(conn.execute(sa.select(member_budgets).where(member_budgets.c.updated_at >= since)))
            return keys, changed, budgets

        return self.db.read_sync(read)


def create_key(
    conn: Connection,
    account_id: str,
    name: str,
    spend_limit_micro_p: int | None = None,
    expires_at: datetime | None = None,
    **controls: Any,
) -> tuple[str, Any]:
    """Create a key for ``account_id``; (the full key, its row). The full key is not stored.

    ``controls`` are further columns already checked by the caller (``budget_micro_p``,
    ``allowed_models`` as a list, ``rpm_limit`` …); a budget period is started by the
    caller (``accounting.budgets.set_budget``).
    """
    key = generate_key()
    now = utcnow()
    key_id = str(uuid.uuid4())
    values = {name: json.dumps(value) if isinstance(value, list) else value for name, value in controls.items()}
    conn.execute(
        api_keys.insert().values(
            id=key_id, account_id=account_id, name=name, key_hash=hash_key(key),
            prefix=key_prefix(key), suffix=key_suffix(key), spend_limit_micro_p=spend_limit_micro_p,
            spent_micro_p=0, expires_at=expires_at, created_at=now, updated_at=now, **values,
        )
    )
    return key, conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one()


def revoke_member_keys(conn: Connection, account_id: str, member_id: str, now: datetime) -> int:
    """Revoke every key of ``member_id`` in the account not revoked yet; how many.

    Expired keys are revoked too, so a later change of their expiry cannot bring them
    back. ``updated_at`` moves, so every process's key cache sees the change on its poll.
    """
    result = conn.execute(
        api_keys.update()
        .where(api_keys.c.account_id == account_id, api_keys.c.member_id == member_id,
               api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now, updated_at=now)
    )
    return result.rowcount


def key_status(row: Any, now: datetime | None = None) -> str:
    """``revoked``, ``expired`` or ``active``."""
    now = now or utcnow()
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def budget_now(row: Any, usage_tz: str, now: datetime) -> tuple[int, datetime | None]:
    """(spent this period, when it resets) for a key row; a period that ended reads as a new one."""
    if row.budget_period is None:
        return 0, None
    if row.budget_resets_at is None or row.budget_resets_at <= now:
        return 0, period_bounds(row.budget_period, usage_tz, now)[1]
    return row.budget_spent_micro_p, row.budget_resets_at


def key_dict(row: Any, usage_tz: str = "UTC") -> dict:
    """A key row as the internal API shows it (never the hash)."""
    budget_spent, resets_at = budget_now(row, usage_tz, utcnow())
    return {
        "id": row.id,
        "name": row.name,
        "masked": masked_key(row.prefix, row.suffix),
        "prefix": row.prefix,
        "suffix": row.suffix,
        "spend_limit_micro_p": row.spend_limit_micro_p,
        "spent_micro_p": row.spent_micro_p,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "last_used_at": row.last_used_at,
        "created_at": row.created_at,
        "status": key_status(row),
        "budget_micro_p": row.budget_micro_p,
        "budget_period": row.budget_period,
        "budget_spent_micro_p": budget_spent,
        "budget_resets_at": resets_at,
        "allowed_models": json_list(row.allowed_models),
        "allowed_ips": json_list(row.allowed_ips),
        "rpm_limit": row.rpm_limit,
        "tpm_limit": row.tpm_limit,
        "member_id": row.member_id,
    }
