"""Revenue, upstream cost and margin per local day, model and channel, from the request log.

Revenue is what customers were charged (the ledger's usage debits, one per charged
request); upstream cost is what the serving channel's ``cost`` prices make of the same
usage, recorded with each request. A request whose channel has no cost counts as cost
unknown: its revenue is summed, its margin is not claimed.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..db import request_log
from .requestlog import csv_rows
from .usage import range_bounds

CSV_COLUMNS = ["day", "model", "channel", "requests", "revenue_micro_p", "upstream_cost_micro_p", "margin_micro_p",
               "requests_without_cost"]


def margin_rows(conn: Connection, start: date, end: date, tz: ZoneInfo) -> list[dict]:
    """Per local day in ``tz``, model and channel with charged requests: the sums, oldest day first."""
    lo, hi = range_bounds(start, end, tz)
    since, until = datetime.fromtimestamp(lo, timezone.utc), datetime.fromtimestamp(hi, timezone.utc)
    log = request_log.c
    rows = conn.execute(
        sa.select(log.created_at, log.model, log.channel, log.cost_micro_p, log.upstream_cost_micro_p)
        .where(log.created_at >= since, log.created_at < until, log.cost_micro_p > 0)
        .execution_options(yield_per=5000)
    )
    sums: dict[tuple[str, str, str], dict] = {}
    for row in rows:
        day = row.created_at.astimezone(tz).date().isoformat()
        entry = sums.setdefault((day, row.model, row.channel or ""), {
            "requests": 0, "revenue_micro_p": 0, "upstream_cost_micro_p": 0, "costed_revenue_micro_p": 0,
            "requests_without_cost": 0,
        })
        entry["requests"] += 1
        entry["revenue_micro_p"] += int(row.cost_micro_p)
        if row.upstream_cost_micro_p is None:
            entry["requests_without_cost"] += 1
        else:
            entry["upstream_cost_micro_p"] += int(row.upstream_cost_micro_p)
            entry["costed_revenue_micro_p"] += int(row.cost_micro_p)
    result = []
    for (day, model, channel), entry in sorted(sums.items()):
        costed = entry.pop("costed_revenue_micro_p")
        result.append({"day": day, "model": model, "channel": channel, **entry,
                       "margin_micro_p": costed - entry["upstream_cost_micro_p"]})
    return result


def margin_csv(rows: list[dict]) -> str:
    """The margin rows as CSV, header first."""
    return csv_rows([CSV_COLUMNS, *([row[name] for name in CSV_COLUMNS] for row in rows)])
