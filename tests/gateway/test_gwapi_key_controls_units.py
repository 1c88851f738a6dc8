"""Per-key controls in-process: budget periods across zones and daylight saving, a budget
that resets at local midnight (time travel), IP allow-list entries (Hypothesis), the
client address behind trusted proxies, and the shared per-minute counters."""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import datetime, timezone

import pytest
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.accounting.budgets import add_budget_spend, set_budget
from gateway.accounting.leases import KeyBudgetExceeded, Reserver, settle_reservations
from gateway.accounting.ledger import create_account, post_entry
from gateway.accounting.ratelimits import RateLimit, RateLimited, RateLimiter, seconds_until_room
from gateway.auth import create_key, key_dict
from gateway.db import accounts, api_keys
from gateway.key_controls import (
    InvalidIpEntry,
    client_address,
    duration_text,
    ip_allowed,
    normalise_ip_list,
    parse_ip_entry,
    period_bounds,
)
from samalink_common.config import ConfigError, trusted_proxy_hops

ONE_P = 1_000_000


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


# --- periods --------------------------------------------------------------------------


@pytest.mark.parametrize(("period", "zone", "now", "start", "reset"), [
    # Berlin's clocks go forward on 29 March 2026: that local day is 23 hours long.
    ("day", "Europe/Berlin", utc(2026, 3, 29, 12), utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
    # A Sunday evening in Berlin: the week began on Monday the 23rd and ends on Monday the 30th.
    ("week", "Europe/Berlin", utc(2026, 3, 29, 21), utc(2026, 3, 22, 23), utc(2026, 3, 29, 22)),
    # Already Monday in Tokyo while still Sunday in UTC.
    ("week", "Asia/Tokyo", utc(2026, 3, 29, 16), utc(2026, 3, 29, 15), utc(2026, 4, 5, 15)),
    ("month", "America/New_York", utc(2026, 3, 15), utc(2026, 3, 1, 5), utc(2026, 4, 1, 4)),
    ("month", "UTC", utc(2026, 12, 31, 23, 59), utc(2026, 12, 1), utc(2027, 1, 1)),
    ("day", "Asia/Kolkata", utc(2026, 6, 1, 18, 29), utc(2026, 5, 31, 18, 30), utc(2026, 6, 1, 18, 30)),
])
def test_period_bounds_follow_the_local_calendar(period, zone, now, start, reset):
    assert period_bounds(period, zone, now) == (start, reset)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(when=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(timezone.utc)),
       period=st.sampled_from(["day", "week", "month"]),
       zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]))
def test_every_instant_lies_in_its_period(when, period, zone):
    start, reset = period_bounds(period, zone, when)
    assert start <= when < reset
    assert period_bounds(period, zone, reset)[0] == reset


# --- a budget resets at local midnight -----------------------------------------------------


def _budget_key(db, zone: str, budget: int, period: str) -> tuple[str, str]:
    def work(conn):
        account, _ = create_account(conn, None, None)
        conn.execute(accounts.update().where(accounts.c.id == account.id).values(usage_tz=zone))
        post_entry(conn, account.id, "credit", 1000 * ONE_P, f"fund:{account.id}")
        _, key = create_key(conn, account.id, "budget", None, None, budget_micro_p=budget)
        set_budget(conn, key.id, period, datetime.now(timezone.utc))
        return account.id, key.id

    return db.transaction_sync(work)


def _spend(db, reserver: Reserver, reservation, key_id: str, cost: int) -> None:
    """Settle ``reservation`` as the batch writer does, charging ``cost`` to the budget."""
    def work(conn):
        settled = settle_reservations(conn, [reservation])
        add_budget_spend(conn, {key_id: [(datetime.now(timezone.utc), cost)]}, datetime.now(timezone.utc))
        return settled

    for settled in db.transaction_sync(work):
        reserver.consumed(settled)


def _key(db, key_id: str, zone: str) -> dict:
    return db.read_sync(lambda conn: key_dict(conn.execute(api_keys.select().where(api_keys.c.id == key_id)).one(), zone))


def test_a_daily_budget_resets_at_midnight_in_the_accounts_zone(gateway_db):
    # 23:30 in Berlin on 28 March 2026, half an hour before a 23-hour day.
    with time_machine.travel(utc(2026, 3, 28, 22, 30), tick=False) as clock:
        account_id, key_id = _budget_key(gateway_db, "Europe/Berlin", 10 * ONE_P, "day")
        assert _key(gateway_db, key_id, "Europe/Berlin")["budget_resets_at"] == utc(2026, 3, 28, 23)

        async def scenario():
            reserver = Reserver(gateway_db)
            try:
                first = await reserver.reserve_up_to(account_id, 10 * ONE_P, 10 * ONE_P, None, key_id)
                _spend(gateway_db, reserver, first, key_id, 10 * ONE_P)
                with pytest.raises(KeyBudgetExceeded):
                    await reserver.reserve_up_to(account_id, ONE_P, ONE_P, None, key_id)
                assert _key(gateway_db, key_id, "Europe/Berlin")["budget_spent_micro_p"] == 10 * ONE_P
                # 00:05 in Berlin: a new day, a new budget.
                clock.move_to(utc(2026, 3, 28, 23, 5))
                assert _key(gateway_db, key_id, "Europe/Berlin")["budget_spent_micro_p"] == 0
                second = await reserver.reserve_up_to(account_id, 4 * ONE_P, 4 * ONE_P, None, key_id)
                _spend(gateway_db, reserver, second, key_id, 4 * ONE_P)
                row = _key(gateway_db, key_id, "Europe/Berlin")
                assert row["budget_spent_micro_p"] == 4 * ONE_P
                # The next reset is 24 - 1 hours later: the clocks go forward that night.
                assert row["budget_resets_at"] == utc(2026, 3, 29, 22)
                assert row["spent_micro_p"] == 0  # the lifetime spend is the batch writer's, untouched here
            finally:
                await reserver.close()

        asyncio.run(scenario())


def test_a_charge_from_before_the_reset_is_not_counted_in_the_new_period(gateway_db):
    with time_machine.travel(utc(2026, 5, 31, 23, 59), tick=False) as clock:
        _, key_id = _budget_key(gateway_db, "UTC", 10 * ONE_P, "month")
        started = datetime.now(timezone.utc)
        clock.move_to(utc(2026, 6, 1, 0, 1))
        now = datetime.now(timezone.utc)
        gateway_db.transaction_sync(lambda conn: add_budget_spend(conn, {key_id: [(started, 3 * ONE_P), (now, ONE_P)]}, now))
        row = _key(gateway_db, key_id, "UTC")
        assert (row["budget_spent_micro_p"], row["budget_resets_at"]) == (ONE_P, utc(2026, 7, 1))


def test_changing_the_period_counts_this_periods_spend_afresh(gateway_db):
    with time_machine.travel(utc(2026, 8, 12, 9), tick=False):
        _, key_id = _budget_key(gateway_db, "UTC", 10 * ONE_P, "day")
        gateway_db.transaction_sync(lambda conn: set_budget(conn, key_id, "week", datetime.now(timezone.utc)))
        row = _key(gateway_db, key_id, "UTC")
        assert (row["budget_period"], row["budget_resets_at"]) == ("week", utc(2026, 8, 17))


# --- IP allow-lists ----------------------------------------------------------------------


@settings(max_examples=80, derandomize=True, deadline=None)
@given(network=st.one_of(st.ip_addresses(v=4).flatmap(lambda a: st.integers(0, 32).map(
    lambda p: ipaddress.ip_network(f"{a}/{p}", strict=False))),
    st.ip_addresses(v=6).flatmap(lambda a: st.integers(0, 128).map(lambda p: ipaddress.ip_network(f"{a}/{p}", strict=False)))))
def test_any_valid_range_is_accepted_in_canonical_form(network):
    text = str(network)
    assert normalise_ip_list([text, f" {text.upper()} "]) == [text]
    assert ip_allowed(str(network.network_address), (parse_ip_entry(text),))
    if network.num_addresses > 1:
        assert ip_allowed(str(network.broadcast_address), (parse_ip_entry(text),))


@settings(max_examples=150, derandomize=True, deadline=None)
@given(text=st.text(max_size=80))
def test_any_string_is_a_range_or_refused_with_a_message(text):
    try:
        network = parse_ip_entry(text)
    except InvalidIpEntry as exc:
        assert str(exc) and "\n" not in str(exc)[:200]
    else:
        assert network == ipaddress.ip_network(text.strip(), strict=True)


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "300.1.1.1", "10.0.0.0/33", "::1/129", "10.0.0.0/-1", "",
                                   "10.0.0.0/8/8", "fe80::1%eth0", "1.2.3", "１.２.３.４", "a" * 100])
def test_invalid_entries_are_refused(entry):
    with pytest.raises(InvalidIpEntry):
        parse_ip_entry(entry)


def test_an_ipv4_mapped_peer_matches_its_ipv4_range():
    networks = (parse_ip_entry("192.0.2.0/24"),)
    assert ip_allowed("::ffff:192.0.2.7", networks)
    assert not ip_allowed("::ffff:198.51.100.1", networks)
    assert not ip_allowed(None, networks)
    assert not ip_allowed("not an address", networks)
    assert ip_allowed("anything", ())


@pytest.mark.parametrize(("peer", "forwarded", "hops", "client"), [
    ("10.9.9.9", ["203.0.113.5"], 0, "10.9.9.9"),
    ("10.9.9.9", ["203.0.113.5"], 1, "203.0.113.5"),
    # A client's own X-Forwarded-For entry sits left of the one the proxy added.
    ("10.9.9.9", ["1.1.1.1, 203.0.113.5"], 1, "203.0.113.5"),
    ("10.9.9.9", ["1.1.1.1, 203.0.113.5", "10.0.0.2"], 2, "203.0.113.5"),
    # Fewer entries than trusted hops: not through the proxies, so the peer.
    ("10.9.9.9", [], 1, "10.9.9.9"),
    ("10.9.9.9", ["203.0.113.5"], 2, "10.9.9.9"),
])
def test_the_client_address_behind_trusted_proxies(peer, forwarded, hops, client):
    assert client_address(peer, forwarded, hops) == client


@pytest.mark.parametrize(("raw", "hops"), [("", 0), ("0", 0), ("1", 1), ("2", 2), ("true", 1), ("off", 0)])
def test_trust_proxy_is_a_number_of_hops(raw, hops):
    assert trusted_proxy_hops({"TRUST_PROXY": raw}) == hops


@pytest.mark.parametrize("raw", ["-1", "many", "11", "1.5"])
def test_a_bad_trust_proxy_names_the_variable(raw):
    with pytest.raises(ConfigError, match="TRUST_PROXY"):
        trusted_proxy_hops({"TRUST_PROXY": raw})


# --- rate limits ----------------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "text"), [(0.2, "1s"), (1, "1s"), (59.5, "1m0s"), (360, "6m0s"), (3723, "1h2m3s")])
def test_waits_are_written_as_openai_does(seconds, text):
    assert duration_text(seconds) == text


def test_the_wait_until_room_follows_the_sliding_minute():
    assert seconds_until_room(0, 0, 10, 30, 1) == 0
    # 30 of 30 in the previous minute, none now, 30 s in: half faded, 15 count; room now.
    assert seconds_until_room(0, 30, 30, 30, 1) == 0
    # 30 now: wait for the next minute (30 s) and then until 1/30 of it faded (2 s).
    assert seconds_until_room(30, 0, 30, 30, 1) == pytest.approx(32)
    # 20 now and 30 before, 15 s in: 20 + 22.5 > 29; room when 30 * (1 - t/60) <= 9, t = 42.
    assert seconds_until_room(20, 30, 15, 30, 1) == pytest.approx(27)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_concurrent_admissions_never_exceed_the_limit(gateway_db):
    clock = FakeClock(1_800_000_000.0 + 5)

    async def scenario():
        limiters = [RateLimiter(gateway_db, clock=clock) for _ in range(2)]  # two processes' worth
        limit = [RateLimit("key:concurrency-test", 30, None)]

        async def one(i: int) -> bool:
            try:
                await limiters[i % 2].admit(limit, 10)
                return True
            except RateLimited:
                return False

        admitted = await asyncio.gather(*(one(i) for i in range(64)))
        assert sum(admitted) == 30
        # 30 s into the next minute half of the previous one still counts: 15 more fit.
        clock.now += 60 + 25
        admitted = await asyncio.gather(*(one(i) for i in range(40)))
        assert sum(admitted) == 15
        for limiter in limiters:
            await limiter.close()

    asyncio.run(scenario())


def test_a_refusal_by_the_account_undoes_the_keys_count(gateway_db):
    clock = FakeClock(1_800_000_600.0 + 1)

    async def scenario():
        limiter = RateLimiter(gateway_db, clock=clock)
        key_a = RateLimit("key:undo-a", 10, None)
        account = RateLimit("account:undo", 2, None)
        await limiter.admit([key_a, account], 1)
        await limiter.admit([key_a, account], 1)
        with pytest.raises(RateLimited) as refused:
            await limiter.admit([key_a, account], 1)
        assert refused.value.scope == "account:undo"
        assert refused.value.requests.remaining == 0
        _, states = await limiter.admit([key_a], 1)
        # The refused request was not counted against the key.
        assert states["key:undo-a"][0].remaining == 7
        await limiter.close()

    asyncio.run(scenario())


def test_tokens_are_corrected_to_the_usage(gateway_db):
    clock = FakeClock(1_800_001_200.0 + 1)

    async def scenario():
        limiter = RateLimiter(gateway_db, clock=clock)
        limit = [RateLimit("key:tokens-test", None, 1000)]
        admission, _ = await limiter.admit(limit, 900)
        with pytest.raises(RateLimited) as refused:
            await limiter.admit(limit, 200)
        assert refused.value.dimension == "tokens"
        limiter.settle(admission, 100)
        await limiter.flush()
        _, states = await limiter.admit(limit, 200)
        assert states["key:tokens-test"][1].remaining == 700
        with pytest.raises(RateLimited) as too_large:
            await limiter.admit(limit, 1001)
        assert too_large.value.too_large
        await limiter.close()

    asyncio.run(scenario())


def test_a_full_minute_answers_retries_from_memory(gateway_db):
    clock = FakeClock(1_800_001_800.0 + 30)

    async def scenario():
        limiter = RateLimiter(gateway_db, clock=clock)
        asked = 0
        transaction = limiter.db.transaction

        async def counted(*args):
            nonlocal asked
            asked += 1
            return await transaction(*args)

        limiter.db = type("CountingDb", (), {"transaction": staticmethod(counted)})()
        limit = [RateLimit("key:memory-test", 1, None)]
        await limiter.admit(limit, 1)
        with pytest.raises(RateLimited) as first:
            await limiter.admit(limit, 1)
        assert asked == 2
        assert first.value.retry_after == pytest.approx(60 - 30 + 60)
        clock.now += 0.5
        for _ in range(50):
            with pytest.raises(RateLimited) as again:
                await limiter.admit(limit, 1)
        assert asked == 2
        assert again.value.retry_after == pytest.approx(89.5)
        clock.now += 0.6
        with pytest.raises(RateLimited):
            await limiter.admit(limit, 1)
        assert asked == 3

    asyncio.run(scenario())
