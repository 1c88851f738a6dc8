"""Daily usage in the customer's time zone: half- and quarter-hour offsets and DST days."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine

from gateway import usage
from gateway.auth import create_key
from gateway.ledger import create_account, post_entry
from gateway.metering import RequestRecord, write_batch


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def seed(db, calls: list[tuple[datetime, str, int]]) -> tuple[str, str]:
    """An account whose key made one call per (time, model, cost)."""

    def work(conn):
        account, _ = create_account(conn, None, None)
        post_entry(conn, account.id, "credit", 10**9, f"seed-{uuid.uuid4()}")
        _, key = create_key(conn, account.id, "usage test")
        records = [
            RequestRecord(
                request_id=f"req-{uuid.uuid4()}", account_id=account.id, key_id=key.id, model=model,
                provider="p", endpoint="/v1/chat/completions", stream=False, input_tokens=10, output_tokens=1,
                cost_micro_p=cost, latency_ms=5, ttft_ms=None, status=200, error_class=None, estimated=False,
                created_at=when,
            )
            for when, model, cost in calls
        ]
        write_batch(conn, [(r, None) for r in records])
        return account.id, key.id

    return db.transaction_sync(work)


def daily(db, account_id: str, start: date, end: date, tz: str) -> dict[tuple[str, str], int]:
    rows = db.read_sync(usage.daily_by_model, account_id, start, end, ZoneInfo(tz))
    return {(r["date"], r["model"]): r["cost_micro_p"] for r in rows}


@pytest.mark.parametrize(
    "tz, last_minute_before, first_minute_of_day",
    [
        # Local 2026-03-10 starts at 18:30 UTC the day before (+5:30) …
        ("Asia/Kolkata", utc(2026, 3, 9, 18, 15), utc(2026, 3, 9, 18, 30)),
        # … at 18:15 UTC (+5:45) …
        ("Asia/Kathmandu", utc(2026, 3, 9, 18, 0), utc(2026, 3, 9, 18, 15)),
        # … and at 13:30 UTC in Adelaide's summer time (+10:30).
        ("Australia/Adelaide", utc(2026, 3, 9, 13, 15), utc(2026, 3, 9, 13, 30)),
    ],
)
def test_day_boundaries_in_fractional_offset_zones(gateway_db, tz, last_minute_before, first_minute_of_day):
    account_id, _ = seed(
        gateway_db,
        [
            (last_minute_before.replace(minute=last_minute_before.minute + 14, second=59), "glm-5", 1),
            (first_minute_of_day, "glm-5", 10),
            (first_minute_of_day.replace(second=1), "deepseek-v3.2", 100),
        ],
    )
    assert daily(gateway_db, account_id, date(2026, 3, 9), date(2026, 3, 10), tz) == {
        ("2026-03-09", "glm-5"): 1,
        ("2026-03-10", "deepseek-v3.2"): 100,
        ("2026-03-10", "glm-5"): 10,
    }
    # A range that starts on the 10th leaves the 9th's last minutes out entirely.
    assert daily(gateway_db, account_id, date(2026, 3, 10), date(2026, 3, 10), tz) == {
        ("2026-03-10", "deepseek-v3.2"): 100,
        ("2026-03-10", "glm-5"): 10,
    }


def test_dst_days_in_new_york_have_23_and_25_hours(gateway_db):
    account_id, _ = seed(
        gateway_db,
        [
            (utc(2026, 3, 8, 4, 45), "m", 1),  # 2026-03-07 23:45 EST
            (utc(2026, 3, 8, 5, 0), "m", 10),  # 2026-03-08 00:00 EST
            (utc(2026, 3, 8, 7, 0), "m", 100),  # 2026-03-08 03:00 EDT, right after the jump
            (utc(2026, 3, 9, 3, 45), "m", 1000),  # 2026-03-08 23:45 EDT
            (utc(2026, 3, 9, 4, 0), "m", 10000),  # 2026-03-09 00:00 EDT
            (utc(2026, 11, 1, 3, 45), "m", 2),  # 2026-10-31 23:45 EDT
            (utc(2026, 11, 1, 4, 0), "m", 20),  # 2026-11-01 00:00 EDT
            (utc(2026, 11, 1, 5, 30), "m", 200),  # 2026-11-01 01:30 EDT (first 01:30)
            (utc(2026, 11, 1, 6, 30), "m", 2000),  # 2026-11-01 01:30 EST (second 01:30)
            (utc(2026, 11, 2, 4, 45), "m", 20000),  # 2026-11-01 23:45 EST
            (utc(2026, 11, 2, 5, 0), "m", 200000),  # 2026-11-02 00:00 EST
        ],
    )
    tz = "America/New_York"
    assert daily(gateway_db, account_id, date(2026, 3, 7), date(2026, 3, 9), tz) == {
        ("2026-03-07", "m"): 1,
        ("2026-03-08", "m"): 10 + 100 + 1000,
        ("2026-03-09", "m"): 10000,
    }
    assert daily(gateway_db, account_id, date(2026, 10, 31), date(2026, 11, 2), tz) == {
        ("2026-10-31", "m"): 2,
        ("2026-11-01", "m"): 20 + 200 + 2000 + 20000,
        ("2026-11-02", "m"): 200000,
    }
    # The same instants in UTC fall on other days: the zone, not the server, decides.
    assert daily(gateway_db, account_id, date(2026, 3, 8), date(2026, 3, 8), "UTC") == {("2026-03-08", "m"): 111}


def test_report_by_model_by_key_and_totals(gateway_db):
    account_id, key_id = seed(
        gateway_db,
        [(utc(2026, 5, 1, 12), "a", 5), (utc(2026, 5, 2, 12), "a", 7), (utc(2026, 5, 2, 13), "b", 50)],
    )
    report = gateway_db.read_sync(usage.usage_report, account_id, date(2026, 5, 1), date(2026, 5, 31), ZoneInfo("Europe/Berlin"))
    assert report["totals"] == {"requests": 3, "input_tokens": 30, "output_tokens": 3, "cost_micro_p": 62}
    assert [(r["model"], r["cost_micro_p"], r["requests"]) for r in report["by_model"]] == [("b", 50, 1), ("a", 12, 2)]
    assert [(r["key_id"], r["cost_micro_p"], r["name"]) for r in report["by_key"]] == [(key_id, 62, "usage test")]
    assert [(r["date"], r["model"]) for r in report["daily"]] == [("2026-05-01", "a"), ("2026-05-02", "a"), ("2026-05-02", "b")]


def test_summary_today_and_month_follow_the_zone_with_frozen_time(gateway_db):
    account_id, _ = seed(
        gateway_db,
        [
            (utc(2026, 2, 28, 18, 29), "m", 1),  # Kolkata: 2026-02-28 23:59 — February
            (utc(2026, 2, 28, 18, 30), "m", 10),  # Kolkata: 2026-03-01 00:00 — March
            (utc(2026, 3, 14, 18, 29), "m", 100),  # Kolkata: 2026-03-14 23:59
            (utc(2026, 3, 14, 18, 30), "m", 1000),  # Kolkata: 2026-03-15 00:00 — "today"
        ],
    )
    # 2026-03-15 12:00 in Kolkata; in UTC it is still the 15th but only 06:30.
    with time_machine.travel(utc(2026, 3, 15, 6, 30), tick=False):
        kolkata = gateway_db.read_sync(usage.summary, account_id, ZoneInfo("Asia/Kolkata"))
        in_utc = gateway_db.read_sync(usage.summary, account_id, ZoneInfo("UTC"))
    assert kolkata == {"today": {"cost_micro_p": 1000, "requests": 1}, "month": {"cost_micro_p": 1110, "requests": 3}}
    assert in_utc == {"today": {"cost_micro_p": 0, "requests": 0}, "month": {"cost_micro_p": 1100, "requests": 2}}


def test_segments_split_exactly_at_the_dst_change():
    tz = ZoneInfo("America/New_York")
    lo, hi = usage.range_bounds(date(2026, 3, 1), date(2026, 3, 31), tz)
    segments = usage.offset_segments(lo, hi, tz)
    assert [(s.offset) for s in segments] == [-5 * 3600, -4 * 3600]
    assert segments[0].end == int(utc(2026, 3, 8, 7, 0).timestamp())
    assert hi - lo == 31 * 86400 - 3600
