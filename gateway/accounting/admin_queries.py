"""Read models for the operator console: every account at once.

Account search, the request log across customers (with customer and provider filters),
money in and out per local day, and upstream health per provider. The customer-facing
queries in ``requestlog`` and ``usage`` are scoped to one account; these are not.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..db import accounts, api_keys, ledger_entries, request_attempts, request_log, usage_rollups
from .requestlog import RequestFilter, filtered, request_dict
from .usage import DAY, EPOCH, offset_segments, range_bounds

# Ledger kinds that are money from customers (top-ups) or given back to them.
TOPUP_KINDS = ("credit",)
REFUND_KINDS = ("debit", "refund")


def search_accounts(conn: Connection, query: str, limit: int) -> list[Any]:
    """Accounts whose id equals ``query`` or whose e-mail contains it (case-insensitive), newest first."""
    text = query.strip().lower()
    select = sa.select(accounts)
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        select = select.where(sa.or_(
            accounts.c.id == text,
            accounts.c.external_id == query.strip(),
            sa.func.lower(accounts.c.email).like(f"%{escaped}%", escape="\\"),
        ))
    return list(conn.execute(select.order_by(accounts.c.created_at.desc(), accounts.c.id).limit(limit)))


def query_all_requests(conn: Connection, filters: RequestFilter, limit: int, before_id: int | None) -> list[Any]:
    """Up to ``limit`` log rows of any account, newest first, ids below ``before_id``, each with its attempts."""
    query = (
        sa.select(
            request_log,
            api_keys.c.name.label("key_name"),
            api_keys.c.prefix.label("key_prefix"),
            api_keys.c.suffix.label("key_suffix"),
            accounts.c.email.label("account_email"),
        )
        .select_from(
            request_log.outerjoin(api_keys, api_keys.c.id == request_log.c.key_id)
            .join(accounts, accounts.c.id == request_log.c.account_id)
        )
    )
    rows = list(conn.execute(filtered(query, filters, before_id).limit(limit)))
    tries = attempts_of(conn, [row.request_id for row in rows])
    return [_WithAttempts(row, tries.get(row.request_id, [])) for row in rows]


class _WithAttempts:
    """A log row that also carries its attempts (attribute access passes to the row)."""

    def __init__(self, row: Any, attempts: list[dict]) -> None:
        self._row = row
        self.attempts = attempts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


def attempts_of(conn: Connection, request_ids: list[str]) -> dict[str, list[dict]]:
    """Each request's tries, in order: channel, status, latency and error class."""
    found: dict[str, list[dict]] = {}
    for start in range(0, len(request_ids), 500):
        chunk = request_ids[start:start + 500]
        rows = conn.execute(sa.select(request_attempts).where(request_attempts.c.request_id.in_(chunk))
                            .order_by(request_attempts.c.request_id, request_attempts.c.attempt))
        for row in rows:
            found.setdefault(row.request_id, []).append({
                "channel": row.channel, "status": row.status, "latency_ms": row.latency_ms,
                "error_class": row.error_class,
            })
    return found


def all_request_dict(row: Any) -> dict:
    """A log row with its customer, provider, the channel that served, what it cost, and every try."""
    return {**request_dict(row), "account_id": row.account_id, "account_email": row.account_email,
            "provider": row.provider, "channel": row.channel, "upstream_cost_micro_p": row.upstream_cost_micro_p,
            "attempts": getattr(row, "attempts", [])}


def daily_money(conn: Connection, start: date, end: date, tz: ZoneInfo) -> list[dict]:
    """Per local day: top-ups, refunds, adjustments (ledger) and spend, requests (roll-ups)."""
    lo, hi = range_bounds(start, end, tz)
    days: dict[int, dict] = {}
    first = (start - EPOCH).days
    for offset in range((end - start).days + 1):
        days[first + offset] = {"topups_micro_p": 0, "refunds_micro_p": 0, "adjustments_micro_p": 0,
                                "spend_micro_p": 0, "requests": 0}
    for seg in offset_segments(lo, hi, tz):
        day = ((usage_rollups.c.bucket_start + sa.cast(sa.literal(seg.offset), sa.BigInteger)) // DAY).label("day")
        query = (
            sa.select(day, sa.func.coalesce(sa.func.sum(usage_rollups.c.cost_micro_p), 0).label("cost"),
                      sa.func.coalesce(sa.func.sum(usage_rollups.c.requests), 0).label("requests"))
            .where(usage_rollups.c.bucket_start >= seg.start, usage_rollups.c.bucket_start < seg.end)
            .group_by(day)
        )
        for row in conn.execute(query):
            target = days.get(int(row.day))
            if target is not None:
                target["spend_micro_p"] += int(row.cost)
                target["requests"] += int(row.requests)
    since = datetime.fromtimestamp(lo, timezone.utc)
    until = datetime.fromtimestamp(hi, timezone.utc)
    # Non-usage entries are few (top-ups, refunds, adjustments): grouped here in Python.
    entries = conn.execute(
        sa.select(ledger_entries.c.kind, ledger_entries.c.amount_micro_p, ledger_entries.c.created_at)
        .where(ledger_entries.c.kind != "usage", ledger_entries.c.created_at >= since,
               ledger_entries.c.created_at < until)
    )
    for row in entries:
        local = row.created_at.astimezone(tz).date()
        target = days.get((local - EPOCH).days)
        if target is None:
            continue
        if row.kind in TOPUP_KINDS:
            target["topups_micro_p"] += row.amount_micro_p
        elif row.kind in REFUND_KINDS:
            target["refunds_micro_p"] += -row.amount_micro_p
        elif row.kind == "adjustment":
            target["adjustments_micro_p"] += row.amount_micro_p
    return [{"date": (EPOCH + timedelta(days=d)).isoformat(), **values} for d, values in sorted(days.items())]


def _p95_latency(conn: Connection, provider: str, since: datetime, total: int) -> int | None:
    if not total:
        return None
    # Nearest rank: the smallest latency at or above 95% of the requests.
    offset = max(0, math.ceil(0.95 * total) - 1)
    return conn.execute(
        sa.select(request_log.c.latency_ms)
        .where(request_log.c.created_at >= since, request_log.c.provider == provider)
        .order_by(request_log.c.latency_ms).limit(1).offset(offset)
    ).scalar()


def provider_health(conn: Connection, now: datetime) -> list[dict]:
    """Per window (last hour, last day) and provider: requests, upstream errors, latency.

    An upstream error is a logged request whose error class starts with ``upstream_``
    (the provider answered an error, timed out, hung up or sent garbage). Requests refused
    before a model was resolved have no provider and are left out. Counts and averages are
    computed by the database; the 95th percentile is one indexed, offset read per provider.
    """
    upstream_error = sa.case((request_log.c.error_class.like("upstream\\_%", escape="\\"), 1), else_=0)
    windows = []
    for name, span in (("hour", timedelta(hours=1)), ("day", timedelta(days=1))):
        since = now - span
        rows = conn.execute(
            sa.select(request_log.c.provider, sa.func.count().label("requests"),
                      sa.func.coalesce(sa.func.sum(upstream_error), 0).label("errors"),
                      sa.func.avg(request_log.c.latency_ms).label("avg_latency"))
            .where(request_log.c.created_at >= since, request_log.c.provider != "")
            .group_by(request_log.c.provider).order_by(request_log.c.provider)
        )
        providers = []
        for row in rows:
            total, errors = int(row.requests), int(row.errors)
            providers.append({
                "provider": row.provider,
                "requests": total,
                "errors": errors,
                "error_rate": round(errors / total, 4) if total else 0.0,
                "avg_latency_ms": round(float(row.avg_latency)) if row.avg_latency is not None else None,
                "p95_latency_ms": _p95_latency(conn, row.provider, since, total),
            })
        windows.append({"window": name, "since": since, "providers": providers})
    return windows
