"""Usage roll-up queries in the customer's time zone.

Roll-ups are kept in 15-minute UTC buckets. Every real UTC offset is a multiple of
15 minutes, so each bucket lies inside exactly one local day. A date range is cut into
segments of constant UTC offset (DST changes start a new segment); within a segment the
local day of a bucket is ``(bucket_start + offset) // 86400``, grouped in SQL with integer
arithmetic, and the segments' rows are merged per (day, model) here.

Each account also has its buckets summed per local day in one zone of its choosing
(``accounts.usage_tz``, the portal keeps it at the customer's): reports in that zone read
those day rows, reports in any other zone fall back to the buckets. A report of some keys
only (a team member's) reads the buckets by model, and the day rows by key.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..auth import masked_key
from ..db import accounts, api_keys, usage_days, usage_key_days, usage_rollups, utcnow

DAY = 86400
BUCKET_SECONDS = 15 * 60
EPOCH = date(1970, 1, 1)
# cache_write_tokens sums both cache-write lifetimes; saved_micro_p is what caching saved.
SUMS = ("requests", "input_tokens", "output_tokens", "cost_micro_p",
        "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "saved_micro_p")
# The day tables and the column each sums by besides the day.
DAY_TABLES = ((usage_days, "model"), (usage_key_days, "key_id"))


@dataclass(frozen=True)
class Segment:
    """UTC epoch seconds [start, end) during which ``tz`` keeps one offset."""

    start: int
    end: int
    offset: int


def local_midnight_utc(day: date, tz: ZoneInfo) -> int:
    """Epoch seconds of the first instant of ``day`` in ``tz``.

    Where a DST jump skips midnight, the naive midnight read with the earlier offset
    (PEP 495, fold=0) is exactly the instant of the jump, i.e. the day's first instant.
    """
    return int(datetime.combine(day, time()).replace(tzinfo=tz).timestamp())


def range_bounds(start: date, end: date, tz: ZoneInfo) -> tuple[int, int]:
    """UTC epoch seconds [first instant of ``start``, first instant after ``end``) in ``tz``."""
    return local_midnight_utc(start, tz), local_midnight_utc(end + timedelta(days=1), tz)


def _offset(epoch: int, tz: ZoneInfo) -> int:
    return int(datetime.fromtimestamp(epoch, timezone.utc).astimezone(tz).utcoffset().total_seconds())


def offset_segments(start: int, end: int, tz: ZoneInfo) -> list[Segment]:
    """Split [start, end) where the UTC offset of ``tz`` changes (15-minute resolution)."""
    segments: list[Segment] = []
    seg_start, cursor = start, start
    current = _offset(start, tz)
    while cursor < end:
        day_end = min(end, cursor + DAY)
        if _offset(day_end - 1, tz) == current:
            cursor = day_end
            continue
        # The offset changes before day_end: find the 15-minute step where it does.
        step = cursor
        while _offset(step, tz) == current:
            step += 900
        segments.append(Segment(seg_start, step, current))
        seg_start, cursor, current = step, step, _offset(step, tz)
    segments.append(Segment(seg_start, end, current))
    return segments


@dataclass(frozen=True)
class Span:
    """Where the sums of a local date range are read from, and the rows that hold them."""

    table: sa.Table
    where: Any


def day_number(day: date) -> int:
    """Days from 1970-01-01 to ``day``: how day rows name their day."""
    return (day - EPOCH).days


def local_day(epoch: int, tz: ZoneInfo) -> int:
    """The day number, in ``tz``, of the instant ``epoch``."""
    return day_number(datetime.fromtimestamp(epoch, tz).date())


def span(conn: Connection, account_id: str, start: date, end: date, tz: ZoneInfo, by: str = "model") -> Span:
    """Rows summing the range per ``by`` (model or key_id): the account's day rows when they
    are kept in ``tz``, else its 15-minute buckets."""
    kept_in = conn.execute(sa.select(accounts.c.usage_tz).where(accounts.c.id == account_id)).scalar()
    if kept_in == tz.key:
        table = next(table for table, column in DAY_TABLES if column == by)
        return Span(table, sa.and_(
            table.c.account_id == account_id,
            table.c.day >= day_number(start),
            table.c.day <= day_number(end),
        ))
    lo, hi = range_bounds(start, end, tz)
    return Span(usage_rollups, sa.and_(
        usage_rollups.c.account_id == account_id,
        usage_rollups.c.bucket_start >= lo,
        usage_rollups.c.bucket_start < hi,
    ))


def _sums(table: sa.Table) -> list:
    return [sa.func.coalesce(sa.func.sum(table.c[c]), 0).label(c) for c in SUMS]


def _row_sums(row: Any) -> dict:
    return {c: int(getattr(row, c)) for c in SUMS}


def _buckets_by_local_day(conn: Connection, account_id: str, lo: int, hi: int, tz: ZoneInfo, *columns: str,
                          key_ids: list[str] | None = None) -> dict:
    """Sums of the buckets in [lo, hi) per (local day, *columns), one query per offset
    segment; only those of ``key_ids`` when given."""
    merged: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(SUMS, 0))
    groups = [usage_rollups.c[c] for c in columns]
    for seg in offset_segments(lo, hi, tz):
        day = ((usage_rollups.c.bucket_start + sa.cast(sa.literal(seg.offset), sa.BigInteger)) // DAY).label("day")
        query = (
            sa.select(day, *groups, *_sums(usage_rollups))
            .where(
                usage_rollups.c.account_id == account_id,
                usage_rollups.c.bucket_start >= seg.start,
                usage_rollups.c.bucket_start < seg.end,
            )
            .group_by(day, *groups)
        )
        if key_ids is not None:
            query = query.where(usage_rollups.c.key_id.in_(key_ids))
        for row in conn.execute(query):
            target = merged[(int(row.day), *(getattr(row, c) for c in columns))]
            for c in SUMS:
                target[c] += int(getattr(row, c))
    return merged


def daily_by_model(conn: Connection, account_id: str, start: date, end: date, tz: ZoneInfo,
                   key_ids: list[str] | None = None) -> list[dict]:
    """Rows ``{date, model, <SUMS>}`` by local day (of ``key_ids`` only, when given)."""
    source = span(conn, account_id, start, end, tz)
    if source.table is usage_days and key_ids is None:
        # One row per (day, model) already, in key order.
        query = (
            sa.select(usage_days.c.day, usage_days.c.model, *(usage_days.c[c] for c in SUMS))
            .where(source.where)
            .order_by(usage_days.c.day, usage_days.c.model)
        )
        rows = [(row.day, row.model, _row_sums(row)) for row in conn.execute(query)]
    else:
        lo, hi = range_bounds(start, end, tz)
        merged = _buckets_by_local_day(conn, account_id, lo, hi, tz, "model", key_ids=key_ids)
        rows = [(d, model, sums) for (d, model), sums in sorted(merged.items())]
    dates = {d: (EPOCH + timedelta(days=d)).isoformat() for d in {row[0] for row in rows}}
    return [{"date": dates[d], "model": model, **sums} for d, model, sums in rows]


def daily_for_key(conn: Connection, account_id: str, key_id: str, start: date, end: date, tz: ZoneInfo) -> list[dict]:
    """Rows ``{date, <SUMS>}`` by local day for one key (days without use left out)."""
    source = span(conn, account_id, start, end, tz, by="key_id")
    if source.table is usage_key_days:
        query = (
            sa.select(usage_key_days.c.day, *(usage_key_days.c[c] for c in SUMS))
            .where(source.where, usage_key_days.c.key_id == key_id)
            .order_by(usage_key_days.c.day)
        )
        rows = [(row.day, _row_sums(row)) for row in conn.execute(query)]
    else:
        lo, hi = range_bounds(start, end, tz)
        merged = _buckets_by_local_day(conn, account_id, lo, hi, tz, "key_id")
        rows = [(d, sums) for (d, key), sums in sorted(merged.items()) if key == key_id]
    return [{"date": (EPOCH + timedelta(days=d)).isoformat(), **sums} for d, sums in rows]


def by_model(daily: list[dict]) -> list[dict]:
    """Totals per model of ``daily_by_model`` rows, costliest first."""
    merged: dict[str, dict] = defaultdict(lambda: dict.fromkeys(SUMS, 0))
    for row in daily:
        target = merged[row["model"]]
        for c in SUMS:
            target[c] += row[c]
    rows = [{"model": model, **sums} for model, sums in merged.items()]
    return sorted(rows, key=lambda r: (-r["cost_micro_p"], r["model"]))


def by_key(conn: Connection, account_id: str, start: date, end: date, tz: ZoneInfo,
           key_ids: list[str] | None = None) -> list[dict]:
    """Totals per API key over the range (of ``key_ids`` only, when given), with the key's
    name and masked form."""
    source = span(conn, account_id, start, end, tz, by="key_id")
    query = sa.select(source.table.c.key_id, *_sums(source.table)).where(source.where).group_by(source.table.c.key_id)
    if key_ids is not None:
        query = query.where(source.table.c.key_id.in_(key_ids))
    rows = list(conn.execute(query))
    ids = [row.key_id for row in rows if row.key_id]
    names = {
        k.id: k
        for k in conn.execute(sa.select(api_keys.c.id, api_keys.c.name, api_keys.c.prefix, api_keys.c.suffix).where(api_keys.c.id.in_(ids)))
    } if ids else {}
    out = []
    for row in rows:
        key = names.get(row.key_id)
        out.append({
            "key_id": row.key_id or None,
            "name": key.name if key else None,
            "masked": masked_key(key.prefix, key.suffix) if key else None,
            **_row_sums(row),
        })
    return sorted(out, key=lambda r: (-r["cost_micro_p"], r["key_id"] or ""))


def totals(conn: Connection, account_id: str, start: date, end: date, tz: ZoneInfo) -> dict:
    """Sums over the local days ``start`` to ``end`` inclusive."""
    source = span(conn, account_id, start, end, tz)
    return _row_sums(conn.execute(sa.select(*_sums(source.table)).where(source.where)).one())


def set_usage_zone(conn: Connection, account_id: str, tz: ZoneInfo) -> None:
    """Keep the account's day rows in ``tz`` from now on (a no-op when they already are)."""
    changed = conn.execute(
        accounts.update().where(accounts.c.id == account_id, accounts.c.usage_tz != tz.key).values(usage_tz=tz.key)
    ).rowcount
    if changed:
        rebuild_days(conn, account_id, tz)


def rebuild_days(conn: Connection, account_id: str, tz: ZoneInfo) -> None:
    """Replace the account's day rows with its buckets summed by local day in ``tz``.

    Runs in the transaction that changes ``usage_tz``, after that row's update: flushes
    lock the account row before they read the zone, so none can interleave.
    """
    for table, _ in DAY_TABLES:
        conn.execute(table.delete().where(table.c.account_id == account_id))
    first, last = conn.execute(
        sa.select(sa.func.min(usage_rollups.c.bucket_start), sa.func.max(usage_rollups.c.bucket_start))
        .where(usage_rollups.c.account_id == account_id)
    ).one()
    if first is None:
        return
    for table, column in DAY_TABLES:
        merged = _buckets_by_local_day(conn, account_id, int(first), int(last) + BUCKET_SECONDS, tz, column)
        rows = [{"account_id": account_id, "day": d, column: value, **sums} for (d, value), sums in sorted(merged.items())]
        for i in range(0, len(rows), 5000):
            conn.execute(table.insert(), rows[i : i + 5000])


def member_key_ids(conn: Connection, account_id: str, member_id: str) -> list[str]:
    """The ids of every key of the team member in the account, revoked ones included."""
    return list(conn.execute(
        sa.select(api_keys.c.id).where(api_keys.c.account_id == account_id, api_keys.c.member_id == member_id)
    ).scalars())


def usage_report(conn: Connection, account_id: str, start: date, end: date, tz: ZoneInfo,
                 member_id: str | None = None) -> dict:
    """Everything ``GET /internal/accounts/{id}/usage`` answers; with ``member_id``, only
    the use of that team member's keys."""
    key_ids = member_key_ids(conn, account_id, member_id) if member_id is not None else None
    daily = daily_by_model(conn, account_id, start, end, tz, key_ids)
    models = by_model(daily)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "tz": tz.key,
        "totals": {c: sum(row[c] for row in models) for c in SUMS},
        "daily": daily,
        "by_model": models,
        "by_key": by_key(conn, account_id, start, end, tz, key_ids),
    }


def summary(conn: Connection, account_id: str, tz: ZoneInfo, now: datetime | None = None) -> dict:
    """Cost and requests today and this month, in ``tz``."""
    now = now or utcnow()
    today = now.astimezone(tz).date()
    t_day = totals(conn, account_id, today, today, tz)
    t_month = totals(conn, account_id, today.replace(day=1), today, tz)
    return {
        "today": {"cost_micro_p": t_day["cost_micro_p"], "requests": t_day["requests"]},
        "month": {"cost_micro_p": t_month["cost_micro_p"], "requests": t_month["requests"]},
    }
