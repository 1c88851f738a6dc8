"""Request log reads: filters, keyset pages (newest first) and CSV rows."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..auth import masked_key
from ..db import api_keys, request_log

CSV_COLUMNS = [
    "created_at", "request_id", "key_name", "key", "model", "endpoint", "stream",
    "input_tokens", "output_tokens", "cost_micro_p", "cost_p", "latency_ms", "ttft_ms",
    "status", "error_class", "estimated",
    # Added later, so at the end: readers of the older columns keep their positions.
    "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens", "price_tier",
]


@dataclass(frozen=True)
class RequestFilter:
    """What the log is filtered by; ``status`` is ``ok``/``error`` or ``status_code`` set.

    The customer's log always names its account; the operator console may leave it out.
    """

    account_id: str | None = None
    key_id: str | None = None
    model: str | None = None
    status: str | None = None
    status_code: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    provider: str | None = None
    flagged: bool = False  # only rows whose upstream usage was not charged as reported
    member_id: str | None = None  # only requests through keys of this team member


def filtered(query: sa.Select, filters: RequestFilter, before_id: int | None) -> sa.Select:
    """``query`` narrowed to ``filters`` and to ids below ``before_id``, newest first."""
    columns = request_log.c
    for column, value in ((columns.account_id, filters.account_id), (columns.provider, filters.provider),
                          (columns.key_id, filters.key_id), (columns.model, filters.model),
                          (columns.status, filters.status_code)):
        if value is not None:
            query = query.where(column == value)
    if filters.status == "ok":
        query = query.where(columns.status.between(200, 299))
    elif filters.status == "error":
        query = query.where(sa.or_(columns.status < 200, columns.status > 299))
    if filters.flagged:
        query = query.where(columns.flags != "")
    if filters.member_id is not None:
        members_keys = sa.select(api_keys.c.id).where(api_keys.c.member_id == filters.member_id)
        if filters.account_id is not None:
            members_keys = members_keys.where(api_keys.c.account_id == filters.account_id)
        query = query.where(columns.key_id.in_(members_keys))
    if filters.since is not None:
        query = query.where(columns.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(columns.created_at < filters.until)
    if before_id is not None:
        query = query.where(columns.id < before_id)
    return query.order_by(columns.id.desc())


def query_requests(conn: Connection, filters: RequestFilter, limit: int, before_id: int | None) -> list[Any]:
    """Up to ``limit`` rows of one account, newest first, with ids below ``before_id`` when given."""
    if filters.account_id is None:
        raise ValueError("a customer's request log needs its account id")
    query = (
        sa.select(
            request_log,
            api_keys.c.name.label("key_name"),
            api_keys.c.prefix.label("key_prefix"),
            api_keys.c.suffix.label("key_suffix"),
        )
        .select_from(request_log.outerjoin(api_keys, api_keys.c.id == request_log.c.key_id))
    )
    return list(conn.execute(filtered(query, filters, before_id).limit(limit)))


def request_dict(row: Any) -> dict:
    """A log row as the internal API shows it."""
    return {
        "id": row.id,
        "request_id": row.request_id,
        "created_at": row.created_at,
        "key_id": row.key_id,
        "key_name": row.key_name,
        "key_masked": masked_key(row.key_prefix, row.key_suffix) if row.key_prefix else None,
        "model": row.model,
        "endpoint": row.endpoint,
        "stream": bool(row.stream),
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cost_micro_p": row.cost_micro_p,
        "latency_ms": row.latency_ms,
        "ttft_ms": row.ttft_ms,
        "status": row.status,
        "error_class": row.error_class,
        "estimated": bool(row.estimated),
        "flags": row.flags.split(",") if row.flags else [],
        # Parts of input_tokens (all input) and of output_tokens; the long-context tier applied.
        "cache_read_tokens": row.cache_read_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "cache_write_1h_tokens": row.cache_write_1h_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "price_tier": row.price_tier,
        "saved_micro_p": row.saved_micro_p,
    }


def _cell(value: Any) -> Any:
    # A text cell starting with a formula character would run as a formula in a
    # spreadsheet (a key named "=HYPERLINK(...)"); a leading apostrophe keeps it text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_rows(rows: Iterable[Iterable[Any]]) -> str:
    """Rows rendered as CSV text (RFC 4180 quoting, CRLF line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return buffer.getvalue()


def request_csv_values(row: Any) -> list:
    """One request log row as CSV values, in ``CSV_COLUMNS`` order."""
    data = request_dict(row)
    cost = data["cost_micro_p"]
    sign = "-" if cost < 0 else ""
    cost_p = f"{sign}{abs(cost) // 1_000_000}.{abs(cost) % 1_000_000:06d}"
    return [
        data["created_at"].strftime("%Y-%m-%dT%H:%M:%SZ"), data["request_id"], data["key_name"] or "",
        data["key_masked"] or "", data["model"], data["endpoint"], "true" if data["stream"] else "false",
        data["input_tokens"], data["output_tokens"], cost, cost_p, data["latency_ms"],
        "" if data["ttft_ms"] is None else data["ttft_ms"], data["status"], data["error_class"] or "",
        "true" if data["estimated"] else "false",
        data["cache_read_tokens"], data["cache_write_tokens"], data["cache_write_1h_tokens"],
        data["reasoning_tokens"], "" if data["price_tier"] is None else data["price_tier"],
    ]
