"""Monthly statements: which months a customer has, and a statement as CSV rows.

The figures are the gateway's (``GET /internal/accounts/{id}/statement``), computed from
the ledger in the customer's time zone; this module only chooses months and lays rows out.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Iterable, Iterator
from zoneinfo import ZoneInfo

from portal.money import p_amount

SIX_PLACES = Decimal("0.000001")
MONTH_RE = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")

USAGE_COLUMNS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                 "cache_write_1h_tokens", "reasoning_tokens")
CSV_COLUMNS = ("kind", "date", "description", "model", "key", "member", *USAGE_COLUMNS,
               "amount_micro_p", "amount_p", "balance_micro_p")
# Each breakdown of the month's usage: CSV kind, description, and the column naming the line.
BREAKDOWNS = (("usage_model", "usage_by_model", "Usage by model"), ("usage_key", "usage_by_key", "Usage by key"),
              ("usage_member", "usage_by_member", "Usage by member"))


def parse_month(text: str) -> tuple[int, int] | None:
    """``YYYY-MM`` as (year, month), or None."""
    match = MONTH_RE.fullmatch(text or "")
    return (int(match[1]), int(match[2])) if match else None


def current_month(tz: str, now: datetime | None = None) -> tuple[int, int]:
    """This month in ``tz``."""
    local = (now or datetime.now(timezone.utc)).astimezone(ZoneInfo(tz))
    return local.year, local.month


def months_since(first: datetime, tz: str, now: datetime | None = None) -> list[str]:
    """Every month from the one holding ``first`` (naive UTC) to this one in ``tz``, newest first."""
    start = first.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(tz))
    year, month = current_month(tz, now)
    months = []
    while (year, month) >= (start.year, start.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def _cell(value):
    # A text cell starting with a formula character would run as a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _p(micro_p: int) -> Decimal:
    # A number, not text, so a negative amount is not taken for a formula.
    return p_amount(micro_p).quantize(SIX_PLACES)


def _row(**values) -> list:
    return [values.get(column, "") for column in CSV_COLUMNS]


def csv_rows(statement: dict) -> Iterator[list]:
    """One row per movement and per usage line, with the opening and closing balances as rows.

    The opening row's ``balance_micro_p`` plus the ``amount_micro_p`` of every ``credit``,
    ``debit``, ``refund``, ``adjustment`` and ``usage`` row equals the closing row's
    ``balance_micro_p``; the ``usage_model``, ``usage_key`` and (for a team) ``usage_member``
    rows each break the ``usage`` row down (by model, again by key, and again by member).
    """
    yield _row(kind="opening", date=statement["start"], description="Opening balance",
               balance_micro_p=statement["opening_balance_micro_p"])
    for m in statement["movements"]:
        yield _row(kind=m["kind"], date=m["created_at"], description=m["description"],
                   amount_micro_p=m["amount_micro_p"], amount_p=_p(m["amount_micro_p"]))
    usage = -statement["usage_micro_p"]
    yield _row(kind="usage", date=statement["end"], description="Usage this month", amount_micro_p=usage,
               amount_p=_p(usage))
    for kind, field, description in BREAKDOWNS:
        for line in statement.get(field) or []:
            if kind == "usage_model":
                where = {"model": line.get("model") or ""}
            elif kind == "usage_key":
                where = {"key": line.get("key_name") or line.get("key_id") or "(no key)"}
            else:
                where = {"member": line.get("member_email") or "(no member)"}
            yield _row(kind=kind, description=description, **where, **{name: line[name] for name in USAGE_COLUMNS},
                       amount_micro_p=-line["cost_micro_p"], amount_p=_p(-line["cost_micro_p"]))
    yield _row(kind="closing", date=statement["end"],
               description="Closing balance" + (" (in progress)" if statement["in_progress"] else ""),
               balance_micro_p=statement["closing_balance_micro_p"])


def csv_text(rows: Iterable[list]) -> str:
    """The header and ``rows`` as CSV text (RFC 4180 quoting, CRLF line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return buffer.getvalue()


def name_members(lines: list[dict], emails: dict[str, str]) -> list[dict]:
    """The usage-by-member lines with each member's address (``member_email``; None for keys without a member)."""
    return [dict(line, member_email=emails.get(line.get("member_id") or "")) for line in lines]
