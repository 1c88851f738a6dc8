"""Daily usage in the customer's time zone: half- and quarter-hour offsets and DST days.

Each report is checked three ways: summed from the 15-minute buckets (the account's day
rows are kept in another zone), from day rows the batch writer kept in the report's zone,
and from day rows rebuilt in that zone after the requests were written.
"""

from __future__ import annotations

import threading
import uuid
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine

import sqlalchemy as sa

from gateway.accounting import usage
from gateway.auth import create_key
from gateway.db import accounts, upgrade, usage_days, usage_key_days, usage_rollups
from gateway.accounting.ledger import create_account, post_entry
from gateway.accounting.metering import RequestRecord, write_batch

# A zone none of the reports below asks for, so "buckets" accounts never read day rows.
ELSEWHERE = ZoneInfo("Pacific/Chatham")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def records(account_id: str, key_id: str, calls: list[tuple[datetime, str, int]]) -> list[tuple[RequestRecord, None]]:
    return [
        (RequestRecord(
            request_id=f"req-{uuid.uuid4()}", account_id=account_id, key_id=key_id, model=model,
            provider="p", endpoint="/v1/chat/completions", stream=False, input_tokens=10, output_tokens=1,
            cost_micro_p=cost, latency_ms=5, ttft_ms=None, status=200, error_class=None, estimated=False,
            created_at=when,
            # Of the 10 input tokens 4 read from the cache and 3 written to it; the output was reasoning.
            cache_read_tokens=4, cache_write_tokens=2, cache_write_1h_tokens=1, reasoning_tokens=1,
            saved_micro_p=cost - 10,
        ), None)
        for when, model, cost in calls
    ]


@pytest.fixture(params=["buckets", "days written", "days rebuilt"])
def kept(request) -> str:
    return request.param


def seed(db, calls: list[tuple[datetime, str, int]], zone: str = "UTC", kept: str = "buckets") -> tuple[str, str]:
    """An account whose key made one call per (time, model, cost), day rows ``kept`` in ``zone``."""

    def work(conn):
        account, _ = create_account(conn, None, None)
        post_entry(conn, account.id, "credit", 10**9, f"seed-{uuid.uuid4()}")
        _, key = create_key(conn, account.id, "usage test")
        usage.set_usage_zone(conn, account.id, ZoneInfo(zone) if kept == "days written" else ELSEWHERE)
        write_batch(conn, records(account.id, key.id, calls))
        if kept == "days rebuilt":
            usage.set_usage_zone(conn, account.id, ZoneInfo(zone))
        day, tz = date(2026, 1, 1), ZoneInfo(zone)
        tables = {usage.span(conn, account.id, day, day, tz, by).table for by in ("model", "key_id")}
        assert tables == ({usage_days, usage_key_days} if kept != "buckets" else {usage_rollups})
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
def test_day_boundaries_in_fractional_offset_zones(gateway_db, kept, tz, last_minute_before, first_minute_of_day):
    account_id, _ = seed(
        gateway_db,
        [
            (last_minute_before.replace(minute=last_minute_before.minute + 14, second=59), "glm-5", 1),
            (first_minute_of_day, "glm-5", 10),
            (first_minute_of_day.replace(second=1), "deepseek-v3.2", 100),
        ],
        tz, kept,
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


def test_dst_days_in_new_york_have_23_and_25_hours(gateway_db, kept):
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
        "America/New_York", kept,
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


def test_report_by_model_by_key_and_totals(gateway_db, kept):
    account_id, key_id = seed(
        gateway_db,
        [(utc(2026, 5, 1, 12), "a", 5), (utc(2026, 5, 2, 12), "a", 7), (utc(2026, 5, 2, 13), "b", 50)],
        "Europe/Berlin", kept,
    )
    report = gateway_db.read_sync(usage.usage_report, account_id, date(2026, 5, 1), date(2026, 5, 31), ZoneInfo("Europe/Berlin"))
    assert report["totals"] == {"requests": 3, "input_tokens": 30, "output_tokens": 3, "cost_micro_p": 62,
                                "cache_read_tokens": 12, "cache_write_tokens": 9, "reasoning_tokens": 3,
                                "saved_micro_p": 62 - 30}
    assert [(r["model"], r["cost_micro_p"], r["requests"]) for r in report["by_model"]] == [("b", 50, 1), ("a", 12, 2)]
    assert [(r["key_id"], r["cost_micro_p"], r["name"]) for r in report["by_key"]] == [(key_id, 62, "usage test")]
    # Cached and reasoning parts, and what caching saved (negative when writes cost more), per row too.
    parts = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "saved_micro_p")
    assert [tuple(r[p] for p in parts) for r in report["by_model"]] == [(4, 3, 1, 40), (8, 6, 2, -8)]
    assert [tuple(r[p] for p in parts) for r in report["by_key"]] == [(12, 9, 3, 32)]
    assert sorted((r["date"], r["model"], *(r[p] for p in parts)) for r in report["daily"]) == [
        ("2026-05-01", "a", 4, 3, 1, -5), ("2026-05-02", "a", 4, 3, 1, -3), ("2026-05-02", "b", 4, 3, 1, 40)]
    assert [(r["date"], r["model"]) for r in report["daily"]] == [("2026-05-01", "a"), ("2026-05-02", "a"), ("2026-05-02", "b")]


def test_summary_today_and_month_follow_the_zone_with_frozen_time(gateway_db, kept):
    account_id, _ = seed(
        gateway_db,
        [
            (utc(2026, 2, 28, 18, 29), "m", 1),  # Kolkata: 2026-02-28 23:59 — February
            (utc(2026, 2, 28, 18, 30), "m", 10),  # Kolkata: 2026-03-01 00:00 — March
            (utc(2026, 3, 14, 18, 29), "m", 100),  # Kolkata: 2026-03-14 23:59
            (utc(2026, 3, 14, 18, 30), "m", 1000),  # Kolkata: 2026-03-15 00:00 — "today"
        ],
        "Asia/Kolkata", kept,
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


def day_rows(db, account_id: str) -> dict[tuple[int, str], int]:
    def work(conn):
        query = sa.select(usage_days.c.day, usage_days.c.model, usage_days.c.cost_micro_p).where(usage_days.c.account_id == account_id)
        return {(row.day, row.model): row.cost_micro_p for row in conn.execute(query)}

    return db.read_sync(work)


def test_a_zone_change_moves_every_day_row_and_later_requests_follow(gateway_db):
    kolkata, new_york = ZoneInfo("Asia/Kolkata"), ZoneInfo("America/New_York")
    # 2026-03-09 18:29 UTC is the 9th in both zones, 18:30 the 10th in Kolkata only;
    # New York (EDT, UTC-4) starts the 10th at 04:00 UTC.
    account_id, key_id = seed(gateway_db, [(utc(2026, 3, 9, 18, 29), "m", 1), (utc(2026, 3, 9, 18, 30), "m", 10)], "Asia/Kolkata", "days written")
    march_9 = usage.day_number(date(2026, 3, 9))
    assert day_rows(gateway_db, account_id) == {(march_9, "m"): 1, (march_9 + 1, "m"): 10}

    gateway_db.transaction_sync(usage.set_usage_zone, account_id, new_york)
    assert day_rows(gateway_db, account_id) == {(march_9, "m"): 11}
    gateway_db.transaction_sync(write_batch, records(account_id, key_id, [(utc(2026, 3, 10, 3, 59), "m", 100)]))
    assert day_rows(gateway_db, account_id) == {(march_9, "m"): 111}
    gateway_db.transaction_sync(write_batch, records(account_id, key_id, [(utc(2026, 3, 10, 4, 0), "m", 1000)]))
    assert day_rows(gateway_db, account_id) == {(march_9, "m"): 111, (march_9 + 1, "m"): 1000}

    # Back in Kolkata, the report from day rows is the one the buckets give.
    gateway_db.transaction_sync(usage.set_usage_zone, account_id, kolkata)
    from_days = daily(gateway_db, account_id, date(2026, 3, 9), date(2026, 3, 10), "Asia/Kolkata")
    assert from_days == {("2026-03-09", "m"): 1, ("2026-03-10", "m"): 1110}
    gateway_db.transaction_sync(usage.set_usage_zone, account_id, ELSEWHERE)
    assert daily(gateway_db, account_id, date(2026, 3, 9), date(2026, 3, 10), "Asia/Kolkata") == from_days


def test_zone_changes_racing_flushes_leave_day_rows_equal_to_the_buckets(gateway_db):
    account_id, key_id = seed(gateway_db, [], "Asia/Kolkata", "days written")
    zones = [ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata"), ZoneInfo("Australia/Adelaide")]
    # Every call lands within an hour of some zone's midnight, where the zones disagree on the day.
    calls = [(utc(2026, 3, 9, 13 + i % 6, (i * 7) % 60), f"m{i % 3}", i + 1) for i in range(60)]
    errors: list[BaseException] = []

    def flush_all():
        try:
            for i in range(0, len(calls), 3):
                gateway_db.transaction_sync(write_batch, records(account_id, key_id, calls[i : i + 3]))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def flip_zones():
        try:
            for i in range(12):
                gateway_db.transaction_sync(usage.set_usage_zone, account_id, zones[i % 3])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=flush_all), threading.Thread(target=flip_zones)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors

    final = gateway_db.read_sync(lambda conn: conn.execute(sa.select(accounts.c.usage_tz).where(accounts.c.id == account_id)).scalar())

    def reports() -> tuple[dict, list[dict]]:
        days, tz = (date(2026, 3, 8), date(2026, 3, 11)), ZoneInfo(final)
        return daily(gateway_db, account_id, *days, final), gateway_db.read_sync(usage.by_key, account_id, *days, tz)

    from_days = reports()
    gateway_db.transaction_sync(usage.set_usage_zone, account_id, ELSEWHERE)
    assert from_days == reports()
    assert sum(from_days[0].values()) == sum(cost for _, _, cost in calls)


def test_upgrading_sums_the_existing_buckets_into_utc_days(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'before.db'}")
    upgrade(engine, "0002_catalog_versions")
    account_id = str(uuid.uuid4())
    march_9 = int(utc(2026, 3, 9).timestamp())
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO accounts (id, created_at, updated_at) VALUES (:id, :now, :now)"),
                     {"id": account_id, "now": datetime(2026, 3, 1)})
        conn.execute(sa.text(
            "INSERT INTO usage_rollups (account_id, key_id, model, bucket_start, requests, input_tokens, "
            "output_tokens, cost_micro_p) VALUES (:a, :k, :m, :b, 1, 10, 1, :c)"), [
            {"a": account_id, "k": "k1", "m": "m", "b": march_9, "c": 1},
            {"a": account_id, "k": "k2", "m": "m", "b": march_9 + 86400 - 900, "c": 10},
            {"a": account_id, "k": "k1", "m": "m", "b": march_9 + 86400, "c": 100},
        ])
    upgrade(engine)
    day = usage.day_number(date(2026, 3, 9))
    with engine.connect() as conn:
        assert conn.execute(sa.select(accounts.c.usage_tz).where(accounts.c.id == account_id)).scalar() == "UTC"
        by_model = {(r.day, r.model): r.cost_micro_p for r in conn.execute(sa.select(usage_days))}
        by_key = {(r.day, r.key_id): r.cost_micro_p for r in conn.execute(sa.select(usage_key_days))}
    engine.dispose()
    assert by_model == {(day, "m"): 11, (day + 1, "m"): 100}
    assert by_key == {(day, "k1"): 1, (day, "k2"): 10, (day + 1, "k1"): 100}


def test_upgrading_keeps_older_rows_right_with_no_cached_parts(tmp_path):
    """Rows written before cached parts were kept read as zero parts; reports and new writes go on."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'before.db'}")
    upgrade(engine, "0005_limits_and_flags")
    account_id = str(uuid.uuid4())
    march_9 = int(utc(2026, 3, 9).timestamp())
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO accounts (id, created_at, updated_at) VALUES (:id, :now, :now)"),
                     {"id": account_id, "now": datetime(2026, 3, 1)})
        conn.execute(sa.text(
            "INSERT INTO request_log (request_id, account_id, model, provider, endpoint, stream, input_tokens, "
            "output_tokens, cost_micro_p, latency_ms, status, estimated, created_at) "
            "VALUES ('old', :a, 'm', 'p', '/v1/chat/completions', 0, 10, 1, 7, 5, 200, 0, :when)"),
            {"a": account_id, "when": datetime(2026, 3, 9, 12)})
        conn.execute(sa.text(
            "INSERT INTO usage_rollups (account_id, key_id, model, bucket_start, requests, input_tokens, "
            "output_tokens, cost_micro_p) VALUES (:a, '', 'm', :b, 1, 10, 1, 7)"), {"a": account_id, "b": march_9})
        conn.execute(sa.text(
            "INSERT INTO catalog_overrides (model_id, input_price, output_price, enabled, effective_from, created_at) "
            "VALUES ('m', 1, 2, 1, :now, :now)"), {"now": datetime(2026, 3, 1)})
    upgrade(engine)
    with engine.begin() as conn:
        old = conn.execute(sa.text("SELECT * FROM request_log WHERE request_id = 'old'")).one()
        assert (old.cache_read_tokens, old.cache_write_tokens, old.cache_write_1h_tokens) == (0, 0, 0)
        assert (old.reasoning_tokens, old.price_tier, old.saved_micro_p) == (0, None, 0)
        change = conn.execute(sa.text("SELECT * FROM catalog_overrides")).one()
        assert (change.cache_read_price, bool(change.cache_prices_set)) == (None, False)
        write_batch(conn, records(account_id, "", [(utc(2026, 3, 9, 12, 5), "m", 5)]))
        # London keeps UTC's offset in early March; the day rows are kept in UTC, so this reads the buckets.
        report = usage.usage_report(conn, account_id, date(2026, 3, 9), date(2026, 3, 9), ZoneInfo("Europe/London"))
    engine.dispose()
    assert report["totals"] == {"requests": 2, "input_tokens": 20, "output_tokens": 2, "cost_micro_p": 12,
                                "cache_read_tokens": 4, "cache_write_tokens": 3, "reasoning_tokens": 1,
                                "saved_micro_p": -5}
