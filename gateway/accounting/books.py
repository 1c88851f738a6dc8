"""The books: monthly statements read from the ledger, and a check that the books add up.

A statement covers one calendar month in a time zone: the opening balance (the sum of
every entry before the month), each top-up, refund, dispute and adjustment in it, the
usage charged in it (its ``usage`` entries, broken down by model and by key through the
request each entry charged), and the closing balance. Every figure comes from the
ledger entries of the month, so opening + credits − debits = closing exactly.

``verify_books`` recomputes every account's balance from its ledger entries and its
spend and request count from the request log, and lists each difference. It only reads.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..auth import masked_key
from ..db import accounts, api_keys, ledger_entries, request_log, utcnow

# The token kinds a usage line carries, as the request log names them.
TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
               "cache_write_1h_tokens", "reasoning_tokens")


def month_bounds(year: int, month: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The first instant of the month and of the next one in ``tz``, as aware UTC."""
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def _sum_before(conn: Connection, account_id: str, when: datetime) -> int:
    return int(conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(ledger_entries.c.amount_micro_p), 0))
        .where(ledger_entries.c.account_id == account_id, ledger_entries.c.created_at < when)
    ).scalar_one())


def _movement(row: Any) -> dict:
    return {"id": row.id, "kind": row.kind, "amount_micro_p": row.amount_micro_p,
            "description": row.description, "created_at": row.created_at}


def _usage_lines(conn: Connection, account_id: str, start: datetime, end: datetime, column: sa.Column) -> list[dict]:
    """The month's usage entries grouped by ``column`` of the request each one charged (or of its key)."""
    charged = (ledger_entries.c.account_id == account_id, ledger_entries.c.kind == "usage",
               ledger_entries.c.created_at >= start, ledger_entries.c.created_at < end)
    rows = conn.execute(
        sa.select(
            column.label("name"),
            sa.func.count().label("requests"),
            *[sa.func.coalesce(sa.func.sum(request_log.c[k]), 0).label(k) for k in TOKEN_KINDS],
            sa.func.sum(-ledger_entries.c.amount_micro_p).label("cost_micro_p"),
        )
        .select_from(ledger_entries.outerjoin(request_log, request_log.c.request_id == ledger_entries.c.request_id)
                     .outerjoin(api_keys, api_keys.c.id == request_log.c.key_id))
        .where(*charged)
        .group_by(column)
        .order_by(sa.func.sum(-ledger_entries.c.amount_micro_p).desc(), column)
    )
    return [{"name": r.name, "requests": int(r.requests), **{k: int(r._mapping[k]) for k in TOKEN_KINDS},
             "cost_micro_p": int(r.cost_micro_p)} for r in rows]


def statement(conn: Connection, account_id: str, year: int, month: int, tz: ZoneInfo,
              now: datetime | None = None) -> dict:
    """The statement of one month in ``tz`` (``in_progress`` while the month is not over)."""
    start, end = month_bounds(year, month, tz)
    now = now or utcnow()
    opening = _sum_before(conn, account_id, start)
    rows = list(conn.execute(
        sa.select(ledger_entries)
        .where(ledger_entries.c.account_id == account_id, ledger_entries.c.created_at >= start,
               ledger_entries.c.created_at < end)
        .order_by(ledger_entries.c.id)
    ))
    credits = sum(r.amount_micro_p for r in rows if r.amount_micro_p > 0)
    debits = -sum(r.amount_micro_p for r in rows if r.amount_micro_p < 0)
    usage_total = -sum(r.amount_micro_p for r in rows if r.kind == "usage")
    by_key = _usage_lines(conn, account_id, start, end, request_log.c.key_id)
    names = {}
    ids = [line["name"] for line in by_key if line["name"]]
    if ids:
        names = {k.id: (k.name, masked_key(k.prefix, k.suffix)) for k in conn.execute(
            sa.select(api_keys.c.id, api_keys.c.name, api_keys.c.prefix, api_keys.c.suffix)
            .where(api_keys.c.id.in_(ids)))}
    for line in by_key:
        line["key_id"] = line.pop("name")
        line["key_name"], line["key_masked"] = names.get(line["key_id"], (None, None))
    by_model = _usage_lines(conn, account_id, start, end, request_log.c.model)
    for line in by_model:
        line["model"] = line.pop("name")
    # A team's usage by member (the portal user who owns each key); null for keys without one.
    by_member = _usage_lines(conn, account_id, start, end, api_keys.c.member_id)
    for line in by_member:
        line["member_id"] = line.pop("name")
    return {
        "month": f"{year:04d}-{month:02d}",
        "tz": tz.key,
        "start": start,
        "end": end,
        "in_progress": now < end,
        "opening_balance_micro_p": opening,
        "credits_micro_p": credits,
        "debits_micro_p": debits,
        "closing_balance_micro_p": opening + credits - debits,
        "movements": [_movement(r) for r in rows if r.kind != "usage"],
        "usage_micro_p": usage_total,
        "usage_by_model": by_model,
        "usage_by_key": by_key,
        "usage_by_member": by_member if any(line["member_id"] for line in by_member) else [],
    }


def verify_books(conn: Connection) -> dict:
    """Every account whose stored figures differ from what its entries and log say.

    Checked per account: ``balance_micro_p`` against the sum of its ledger entries and
    the last entry's running balance, ``credited_micro_p`` against its credit entries,
    ``spent_micro_p`` and ``requests`` against its request log, and each usage entry
    against the cost of the request it charged.
    """
    entry_sums = {r.account_id: r for r in conn.execute(
        sa.select(ledger_entries.c.account_id,
                  sa.func.sum(ledger_entries.c.amount_micro_p).label("total"),
                  sa.func.sum(sa.case((ledger_entries.c.kind == "credit", ledger_entries.c.amount_micro_p),
                                      else_=0)).label("credited"),
                  sa.func.max(ledger_entries.c.id).label("last_id"))
        .group_by(ledger_entries.c.account_id))}
    last_balances = dict(conn.execute(
        sa.select(ledger_entries.c.account_id, ledger_entries.c.balance_after_micro_p)
        .where(ledger_entries.c.id.in_([r.last_id for r in entry_sums.values()] or [0]))).all())
    log_sums = {r.account_id: r for r in conn.execute(
        sa.select(request_log.c.account_id, sa.func.count().label("requests"),
                  sa.func.sum(request_log.c.cost_micro_p).label("spent"))
        .group_by(request_log.c.account_id))}
    mischarged = dict(conn.execute(
        sa.select(ledger_entries.c.account_id, sa.func.count())
        .select_from(ledger_entries.join(request_log, request_log.c.request_id == ledger_entries.c.request_id))
        .where(ledger_entries.c.kind == "usage", ledger_entries.c.amount_micro_p != -request_log.c.cost_micro_p)
        .group_by(ledger_entries.c.account_id)).all())
    differences = []
    checked = 0
    for account in conn.execute(sa.select(accounts).order_by(accounts.c.id)):
        checked += 1
        entries = entry_sums.get(account.id)
        logged = log_sums.get(account.id)
        expected = {
            "balance_micro_p": int(entries.total) if entries else 0,
            "credited_micro_p": int(entries.credited) if entries else 0,
            "spent_micro_p": int(logged.spent or 0) if logged else 0,
            "requests": int(logged.requests) if logged else 0,
        }
        for field, value in expected.items():
            if getattr(account, field) != value:
                differences.append({"account_id": account.id, "field": field,
                                    "stored": getattr(account, field), "recomputed": value})
        if entries is not None and last_balances.get(account.id) != expected["balance_micro_p"]:
            differences.append({"account_id": account.id, "field": "balance_after_micro_p",
                                "stored": last_balances.get(account.id), "recomputed": expected["balance_micro_p"]})
        if mischarged.get(account.id):
            differences.append({"account_id": account.id, "field": "usage_entries",
                                "stored": int(mischarged[account.id]), "recomputed": 0})
    return {"accounts_checked": checked, "differences": differences, "ok": not differences}


def parse_month(text: str) -> tuple[int, int]:
    """``YYYY-MM`` as (year, month); ``ValueError`` for anything else."""
    if len(text) != 7 or text[4] != "-" or not (text[:4] + text[5:]).isdigit():
        raise ValueError("month must look like 2026-11")
    year, month = int(text[:4]), int(text[5:])
    if not 1 <= month <= 12 or not 2000 <= year <= 9998:
        raise ValueError("month must look like 2026-11")
    date(year, month, 1)
    return year, month
