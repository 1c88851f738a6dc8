"""Usage roll-up queries in the customer's time zone.

Roll-ups are kept in 15-minute UTC buckets. Every real UTC offset is a multiple of
15 minutes, so each bucket lies inside exactly one local day. A date range is cut into
segments of constant UTC offset (DST changes start a new segment); within a segment the
local day of a bucket is ``(bucket_start + offset) // 86400``, grouped in SQL with integer
arithmetic, and the segments' rows are merged per (day, model) here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .auth import masked_key
from .db import api_keys, usage_rollups, utcnow

DAY = 86400
EPOCH = date(1970, 1, 1)
SUMS = ("requests", "input_tokens", "output_tokens", "cost_micro_p")


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


def _sums() -> list:
    return [sa.func.coalesce(sa.func.sum(usage_rollups.c[c]), 0).label(c) for c in SUMS]


def _row_sums(row: Any) -> dict:
    return {c: int(getattr(row, c)) for c in SUMS}


def daily_by_model(conn: Connection, account_id: str, start: date, end: date, tz: ZoneInfo) -> list[dict]:
    """Rows ``{date, model, requests, input_tokens, output_tokens, cost_micro_p}`` by local day."""
    lo, hi = range_bounds(start, end, tz)
    merged: dict[tuple[int, str], dict] = defaultdict(lambda: dict.fromkeys(SUMS, 0))
    for seg in offset_segments(lo, hi, tz):
        day = ((usage_rollups.c.bucket_start + sa.cast(sa.literal(seg.offset), sa.BigInteger)) // DAY).label("day")
        query = (
            sa.select(day, usage_rollups.c.model, *_sums())
            .where(
                usage_rollups.c.account_id == account_id,
                usage_rollups.c.bucket_start >= seg.start,
                usage_rollups.c.bucket_start < seg.end,
            )
            .group_by(day, usage_rollups.c.model)
        )
        for row in conn.execute(query):
            target = merged[(int(row.day), row.model)]
            for c in SUMS:
                target[c] += int(getattr(row, c))
    return [
        {"date": (EPOCH + timedelta(days=d)).isoformat(), "model": model, **sums}
        for (d, model), sums in sorted(merged.items())
    ]


def by_model(conn: Connection, account_id: str, start: date, end: date, tz: ZoneInfo) -> list[dict]:
    """Totals per model over the range, costliest first."""
    lo, hi = range_bounds(start, end, tz)
    query = (
        sa.select(usage_rollups.c.model, *_sums())
        .where(usage_rollups.c.account_id == account_id, usage_rollups.c.bucket_start >= lo, usage_rollups.c.bucket_start < hi)
        .group_by(usage_rollups.c.model)
    )
    rows = [{"model": row.model, **_row_sums(row)} for row in conn.execute(query)]
    return sorted(rows, key=lambda r: (-r["cost_micro_p"], r["model"]))


def by_key(conn: Connection, account_id: str, start: date, end: date, tz: ZoneInfo) -> list[dict]:
    """Totals per API key over the range, with the key's name and masked form."""
    lo, hi = range_bounds(start, end, tz)
    query = (
        sa.select(usage_rollups.c.key_id, *_sums())
        .where(usage_rollups.c.account_id == account_id, usage_rollups.c.bucket_start >= lo, usage_rollups.c.bucket_start < hi)
        .group_by(usage_rollups.c.key_id)
    )
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


def totals(conn: Connection, account_id: str, lo: int, hi: int) -> dict:
    """Sums over the UTC epoch range [lo, hi)."""
    row = conn.execute(
        sa.select(*_sums()).where(
            usage_rollups.c.account_id == account_id, usage_rollups.c.bucket_start >= lo, usage_rollups.c.bucket_start < hi
        )
    ).one()
    return _row_sums(row)


def usage_report(conn: Connection, account_id: str, start: date, end: date, tz: ZoneInfo) -> dict:
    """Everything ``GET /internal/accounts/{id}/usage`` answers."""
    lo, hi = range_bounds(start, end, tz)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "tz": tz.key,
        "totals": totals(conn, account_id, lo, hi),
        "daily": daily_by_model(conn, account_id, start, end, tz),
        "by_model": by_model(conn, account_id, start, end, tz),
        "by_key": by_key(conn, account_id, start, end, tz),
    }


def summary(conn: Connection, account_id: str, tz: ZoneInfo, now: datetime | None = None) -> dict:
    """Cost and requests today and this month, in ``tz``."""
    now = now or utcnow()
    today = now.astimezone(tz).date()
    day_lo, day_hi = range_bounds(today, today, tz)
    month_lo, _ = range_bounds(today.replace(day=1), today, tz)
    t_day = totals(conn, account_id, day_lo, day_hi)
    t_month = totals(conn, account_id, month_lo, day_hi)
    return {
        "today": {"cost_micro_p": t_day["cost_micro_p"], "requests": t_day["requests"]},
        "month": {"cost_micro_p": t_month["cost_micro_p"], "requests": t_month["requests"]},
    }
