"""Channel health in the database: the breaker rows every gateway process shares, and
the attempts' success rate and latency per channel.

A row of ``channel_health`` says until when a channel is open (skipped), whether the
operator switched it off, and its last failure; ``changed_at`` orders the writes, so a
process adopts a row it has not seen yet (see ``proxy/breaker.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..db import channel_health, request_attempts, upsert, utcnow


@dataclass(frozen=True)
class HealthRow:
    """One channel's shared breaker state."""

    channel: str
    open_until: datetime | None
    disabled: bool
    last_error: str | None
    last_error_at: datetime | None
    changed_at: datetime


@dataclass(frozen=True)
class BreakerWrite:
    """A process's own change to a channel's breaker (opened, closed, or a failure seen)."""

    channel: str
    open_until: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    changed_at: datetime


def write_breakers(conn: Connection, writes: list[BreakerWrite]) -> None:
    """Store each write; the operator's on/off switch is left as it is."""
    upsert(
        conn, channel_health,
        [{"channel": w.channel, "open_until": w.open_until, "last_error": w.last_error,
          "last_error_at": w.last_error_at, "changed_at": w.changed_at} for w in writes],
        keys=["channel"], replace=["open_until", "last_error", "last_error_at", "changed_at"],
    )


def set_disabled(conn: Connection, channel: str, disabled: bool) -> HealthRow:
    """Switch ``channel`` off or on for every process; switching on also closes its breaker."""
    now = utcnow()
    row = {"channel": channel, "disabled": disabled, "changed_at": now}
    replace = ["disabled", "changed_at"]
    if not disabled:
        row["open_until"] = None
        replace.append("open_until")
    upsert(conn, channel_health, [row], keys=["channel"], replace=replace)
    return read_rows(conn, [channel])[0]


def read_rows(conn: Connection, channels: list[str] | None = None) -> list[HealthRow]:
    """The stored rows (of ``channels``, when given)."""
    query = sa.select(channel_health)
    if channels is not None:
        query = query.where(channel_health.c.channel.in_(channels))
    return [HealthRow(r.channel, r.open_until, bool(r.disabled), r.last_error, r.last_error_at, r.changed_at)
            for r in conn.execute(query)]


@dataclass(frozen=True)
class AttemptStats:
    """A channel's attempts over a recent window: how many, how many succeeded, latency percentiles."""

    channel: str
    attempts: int
    succeeded: int
    p50_ms: int | None
    p95_ms: int | None

    @property
    def success_rate(self) -> float | None:
        return None if not self.attempts else self.succeeded / self.attempts


# The newest attempts per channel read for the percentiles; enough for a steady p95.
MAX_LATENCY_SAMPLES = 2000


def _percentile(sorted_values: list[int], fraction: float) -> int | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def attempt_stats(conn: Connection, channels: list[str], window: timedelta) -> dict[str, AttemptStats]:
    """Each channel's attempts since ``window`` ago: success rate and p50/p95 latency of its successes."""
    since = utcnow() - window
    stats = {}
    for channel in channels:
        base = sa.select(request_attempts.c.status, request_attempts.c.latency_ms).where(
            request_attempts.c.channel == channel, request_attempts.c.created_at >= since)
        rows = list(conn.execute(base.order_by(request_attempts.c.created_at.desc()).limit(MAX_LATENCY_SAMPLES)))
        ok = sorted(r.latency_ms for r in rows if 200 <= r.status < 300)
        stats[channel] = AttemptStats(channel, len(rows), len(ok), _percentile(ok, 0.5), _percentile(ok, 0.95))
    return stats
