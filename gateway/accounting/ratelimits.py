"""Requests- and tokens-per-minute limits shared by every gateway process: the only
writer of ``rate_windows``.

Each limited scope (a key, ``key:<id>``, or an account, ``account:<id>``) has one row
per minute counting what was admitted in it. A request is admitted when the sliding
estimate — this minute's count plus the previous minute's weighted by the part of it
still inside the last 60 seconds — stays within the limit after adding it. The count
goes up with ``INSERT … ON CONFLICT DO UPDATE … WHERE <within the limit> RETURNING``:
the row lock makes the check and the increment one step on PostgreSQL, and SQLite's
write lock serialises them, so however many processes admit at once, a limit holds.
All scopes of one request are admitted in one transaction: a refusal by the account's
limit undoes the key's count.

Tokens are admitted from the estimate (prompt plus the output bound sent upstream) and
corrected to the real usage when the request settles; corrections are written in
batches off the request path. The database is the shared store: bench/README.md has
the figures behind that choice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..background import repeat_every, stop_task
from ..db import Database, rate_windows

log = logging.getLogger("samalink.gateway.ratelimits")

WINDOW_SECONDS = 60
# Minute rows older than this are deleted: only the current and previous are read.
KEEP_SECONDS = 3 * WINDOW_SECONDS
# The longest a refusal is answered from memory without asking the database again.
REFUSAL_MEMORY = 1.0


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The limits of one scope (None: that dimension is not limited)."""

    scope: str
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True, slots=True)
class WindowState:
    """One limit's standing after a check: what the rate-limit headers tell the client."""

    limit: int
    remaining: int
    reset_seconds: float


class RateLimited(Exception):
    """A limit refused the request; ``dimension`` is ``requests`` or ``tokens``, and
    ``retry_after`` the seconds until the sliding estimate has room for it."""

    def __init__(self, scope: str, dimension: str, retry_after: float,
                 requests: WindowState | None, tokens: WindowState | None, too_large: bool = False) -> None:
        super().__init__(f"{scope} over its {dimension} per minute")
        self.scope = scope
        self.dimension = dimension
        self.retry_after = retry_after
        self.requests = requests
        self.tokens = tokens
        self.too_large = too_large
        self.at = 0.0  # when ``retry_after`` was computed (the limiter's clock)


@dataclass(slots=True)
class Admission:
    """What one admitted request counted, so its tokens can be corrected at settlement."""

    windows: tuple[tuple[str, int], ...]  # (scope, window_start) of each tokens-limited scope
    tokens: int


def seconds_until_room(current: int, previous: int, elapsed: float, limit: int, need: int) -> float:
    """How long until ``need`` more fits under ``limit`` in the sliding estimate.

    ``elapsed`` is how far into the current minute we are; the previous minute's count
    fades linearly over the current one, and the current count over the next.
    """
    if need > limit:
        return float(WINDOW_SECONDS)
    room = limit - need - current
    if room >= 0:
        if previous <= room:
            return 0.0
        # previous * (1 - t/60) <= room  ⇔  t >= 60 * (1 - room/previous)
        return max(0.0, WINDOW_SECONDS * (1 - room / previous) - elapsed)
    # Not before the next minute: then the current count is the fading one.
    fade = WINDOW_SECONDS * (1 - (limit - need) / current)
    return (WINDOW_SECONDS - elapsed) + max(0.0, fade)


def _state(limit: int, current: int, previous: int, elapsed: float) -> WindowState:
    """The limit, what is left of it now, and how long until all of it is back."""
    used = current + previous * (1 - elapsed / WINDOW_SECONDS)
    remaining = max(0, math.floor(limit - used))
    if current:
        reset = 2 * WINDOW_SECONDS - elapsed  # this minute's count fades over the next one
    elif previous:
        reset = WINDOW_SECONDS - elapsed
    else:
        reset = 0.0
    return WindowState(limit, remaining, reset)


# Built once: composing these with SQLAlchemy's expression language on every request cost
# more than running them (bench/README.md). The same text runs on SQLite ≥ 3.35 and PostgreSQL.
_COUNTS = sa.text(
    "SELECT requests, tokens FROM rate_windows WHERE scope = :scope AND window_start = :window"
)
_COUNT_IN = sa.text(
    "INSERT INTO rate_windows (scope, window_start, requests, tokens) VALUES (:scope, :window, 1, :tokens) "
    "ON CONFLICT (scope, window_start) DO UPDATE "
    "SET requests = rate_windows.requests + 1, tokens = rate_windows.tokens + :tokens "
    "WHERE rate_windows.requests + 1 + :prev_requests <= :rpm "
    "AND rate_windows.tokens + :tokens + :prev_tokens <= :tpm "
    "RETURNING requests, tokens"
)
# Stands in for "no limit" in the comparison above.
UNLIMITED = 2**62


def _counts(conn: Connection, scope: str, window: int) -> tuple[int, int]:
    row = conn.execute(_COUNTS, {"scope": scope, "window": window}).first()
    return (row.requests, row.tokens) if row else (0, 0)


def admit_sync(conn: Connection, limits: list[RateLimit], tokens: int, now: float) -> dict[str, tuple[WindowState | None, WindowState | None]]:
    """Count one request of ``tokens`` in each scope, or raise ``RateLimited`` (and the
    caller's transaction is rolled back). Returns each scope's (requests, tokens) state."""
    window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    elapsed = now - window
    weight = 1 - elapsed / WINDOW_SECONDS
    states: dict[str, tuple[WindowState | None, WindowState | None]] = {}
    for limit in limits:
        if limit.tpm is not None and tokens > limit.tpm:
            raise RateLimited(limit.scope, "tokens", WINDOW_SECONDS, None, WindowState(limit.tpm, 0, 0), too_large=True)
        prev_requests, prev_tokens = _counts(conn, limit.scope, window - WINDOW_SECONDS)
        rpm = UNLIMITED if limit.rpm is None else limit.rpm
        tpm = UNLIMITED if limit.tpm is None else limit.tpm
        row = None
        # When even an empty minute would not take this request, no count would either
        # (and the insert of a first row is not conditional).
        if 1 + prev_requests * weight <= rpm and tokens + prev_tokens * weight <= tpm:
            row = conn.execute(_COUNT_IN, {
                "scope": limit.scope, "window": window, "tokens": tokens, "rpm": rpm, "tpm": tpm,
                "prev_requests": prev_requests * weight, "prev_tokens": prev_tokens * weight,
            }).first()
        if row is None:
            cur_requests, cur_tokens = _counts(conn, limit.scope, window)
            requests_wait = tokens_wait = 0.0
            if limit.rpm is not None:
                requests_wait = seconds_until_room(cur_requests, prev_requests, elapsed, limit.rpm, 1)
            if limit.tpm is not None:
                tokens_wait = seconds_until_room(cur_tokens, prev_tokens, elapsed, limit.tpm, tokens)
            dimension = "requests" if requests_wait >= tokens_wait and limit.rpm is not None else "tokens"
            raise RateLimited(
                limit.scope, dimension, max(requests_wait, tokens_wait),
                _state(limit.rpm, cur_requests, prev_requests, elapsed) if limit.rpm is not None else None,
                _state(limit.tpm, cur_tokens, prev_tokens, elapsed) if limit.tpm is not None else None,
            )
        states[limit.scope] = (
            _state(limit.rpm, row.requests, prev_requests, elapsed) if limit.rpm is not None else None,
            _state(limit.tpm, row.tokens, prev_tokens, elapsed) if limit.tpm is not None else None,
        )
    return states


def _apply_corrections(conn: Connection, corrections: dict[tuple[str, int], int], expire_before: int | None) -> None:
    for (scope, window), delta in sorted(corrections.items()):
        if delta:
            conn.execute(
                rate_windows.update()
                .where(rate_windows.c.scope == scope, rate_windows.c.window_start == window)
                .values(tokens=sa.case((rate_windows.c.tokens + delta < 0, 0), else_=rate_windows.c.tokens + delta))
            )
    if expire_before is not None:
        conn.execute(rate_windows.delete().where(rate_windows.c.window_start < expire_before))


class RateLimiter:
    """Admits requests under the shared per-minute counters; corrects tokens in batches."""

    def __init__(self, db: Database, flush_interval: float = 0.5, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.flush_interval = flush_interval
        self.clock = clock
        self._corrections: dict[tuple[str, int], int] = {}
        self._task: asyncio.Task | None = None
        self._last_expiry = 0.0
        # scope → (until when, the refusal): a scope found full answers from memory until
        # the estimate has room again (at most REFUSAL_MEMORY seconds, as corrections of
        # other processes may free tokens sooner), so a flood of retries costs no queries.
        self._refused: dict[str, tuple[float, RateLimited]] = {}

    async def start(self) -> None:
        """Start the task that writes token corrections and drops old minutes."""
        self._task = repeat_every(self.flush_interval, self.flush, "rate-limit corrections")

    async def admit(self, limits: list[RateLimit], tokens: int) -> tuple[Admission, dict]:
        """Count one request of ``tokens`` estimated tokens under ``limits``; raises ``RateLimited``."""
        now = self.clock()
        for limit in limits:
            remembered = self._refused.get(limit.scope)
            if remembered is not None:
                until, refusal = remembered
                if now < until:
                    refusal.retry_after = max(refusal.retry_after - (now - refusal.at), 0.0)
                    refusal.at = now
                    raise refusal
                del self._refused[limit.scope]
        try:
            states = await self.db.transaction(admit_sync, limits, tokens, now)
        except RateLimited as refusal:
            # Only a full count of requests: a smaller request may still fit the tokens.
            if refusal.dimension == "requests":
                refusal.at = now
                if len(self._refused) > 10_000:
                    self._refused = {scope: kept for scope, kept in self._refused.items() if kept[0] > now}
                self._refused[refusal.scope] = (now + min(refusal.retry_after, REFUSAL_MEMORY), refusal)
            raise
        window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
        windows = tuple((limit.scope, window) for limit in limits if limit.tpm is not None)
        return Admission(windows, tokens), states

    def settle(self, admission: Admission, used_tokens: int) -> None:
        """Replace the admitted estimate by the tokens the request really used."""
        delta = used_tokens - admission.tokens
        if not delta:
            return
        for window in admission.windows:
            self._corrections[window] = self._corrections.get(window, 0) + delta

    async def flush(self) -> None:
        """Write the pending corrections (and, once a minute, drop minutes no longer read)."""
        corrections, self._corrections = self._corrections, {}
        now = self.clock()
        expire = None
        if now - self._last_expiry >= WINDOW_SECONDS:
            expire = int(now) - KEEP_SECONDS
        if not corrections and expire is None:
            return
        try:
            await self.db.transaction(_apply_corrections, corrections, expire)
        except Exception:
            # Kept for the next flush: a correction lost would leave a minute over-counted.
            for window, delta in corrections.items():
                self._corrections[window] = self._corrections.get(window, 0) + delta
            raise
        if expire is not None:
            self._last_expiry = now

    async def close(self) -> None:
        """Stop the task and write what is pending."""
        await stop_task(self._task)
        self._task = None
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - the minute ends soon; only its token count stays high
            log.warning("could not write rate-limit corrections at shutdown", exc_info=True)
