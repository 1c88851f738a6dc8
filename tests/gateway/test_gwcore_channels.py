"""Channels in the catalogue, their order, and the breaker's rules (in one process, clock travelled)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.accounting.channel_health import HealthRow
from gateway.accounting.pricing import TokenUsage, upstream_cost_micro_p
from gateway.catalog import Channel, Cost, parse_catalog
from gateway.config import ConfigError
from gateway.proxy.breaker import CLOSED, HALF_OPEN, OFF, OPEN, Breakers, weighted_order

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def _catalog(**model) -> dict:
    providers = {
        name: {"base_url": "https://api.example.test/v1", "api_key_env": f"{name.upper()}_API_KEY", "api": "openai"}
        for name in ("main", "backup", "reseller")
    }
    entry = {"id": "m", "provider": "main", "upstream": "m-up", "input_price": 100, "output_price": 200, **model}
    return {"providers": providers, "models": [entry]}


def test_fallbacks_follow_the_primary_in_file_order_with_their_costs():
    catalog = parse_catalog(_catalog(
        cost={"input_price": 60, "output_price": 120},
        fallbacks=[{"provider": "backup", "upstream": "m-up"},
                   {"provider": "reseller", "upstream": "vendor/M", "priority": 1, "weight": 3,
                    "cost": {"input_price": 80, "output_price": 150, "cache_read_price": 8}}],
    ))
    model = catalog.models["m"]
    assert model.channels == (
        Channel("main", "m-up", 0, 1, Cost(60, 120)),
        Channel("backup", "m-up", 1, 1, None),
        Channel("reseller", "vendor/M", 1, 3, Cost(80, 150, cache_read_price=8)),
    )
    assert [c.id for c in model.channels] == ["main:m-up", "backup:m-up", "reseller:vendor/M"]
    # Two providers on one wire API and base URL, each with its own key.
    assert catalog.providers["main"].base_url == catalog.providers["backup"].base_url
    assert catalog.providers["main"].api_key_env != catalog.providers["backup"].api_key_env


def test_a_model_without_fallbacks_has_one_channel():
    assert parse_catalog(_catalog()).models["m"].channels == (Channel("main", "m-up"),)


@pytest.mark.parametrize(("model", "message"), [
    ({"fallbacks": {"provider": "backup"}}, r"models\[0\]\.fallbacks must be a list"),
    ({"fallbacks": [{"upstream": "x"}]}, r"fallbacks\[0\]\.provider is missing"),
    ({"fallbacks": [{"provider": "backup"}]}, r"fallbacks\[0\]\.upstream is missing"),
    ({"fallbacks": [{"provider": "nobody", "upstream": "x"}]}, r"fallbacks\[0\]\.provider 'nobody' is not defined"),
    ({"fallbacks": [{"provider": "main", "upstream": "m-up"}]}, r"fallbacks\[0\] repeats the channel main:m-up"),
    ({"fallbacks": [{"provider": "backup", "upstream": "x"}, {"provider": "backup", "upstream": "x"}]},
     r"fallbacks\[1\] repeats"),
    ({"fallbacks": [{"provider": "backup", "upstream": "x", "weight": 0}]}, r"fallbacks\[0\]\.weight must be"),
    ({"fallbacks": [{"provider": "backup", "upstream": "x", "priority": -1}]}, r"fallbacks\[0\]\.priority must be"),
    ({"fallbacks": [{"provider": "backup", "upstream": "x", "priority": "1"}]}, r"fallbacks\[0\]\.priority must be"),
    ({"fallbacks": [{"provider": "backup", "upstream": "x", "region": "eu"}]}, r"fallbacks\[0\]\.region is not a channel field"),
    ({"fallbacks": [{"provider": "backup", "upstream": "x", "cost": {"input_price": 1}}]},
     r"fallbacks\[0\]\.cost\.output_price is missing"),
    ({"cost": 5}, r"models\[0\]\.cost must be a table of prices"),
    ({"cost": {"input_price": -1, "output_price": 2}}, r"models\[0\]\.cost\.input_price must be a non-negative integer"),
    ({"cost": {"input_price": 1, "output_price": 2, "per_call": 3}}, r"models\[0\]\.cost\.per_call is not a price"),
])
def test_a_bad_channel_entry_is_one_clear_line(model, message):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_catalog(_catalog(**model))
    assert "\n" not in str(caught.value)


def test_the_operator_cost_prices_each_part_of_the_usage():
    usage = TokenUsage(input_tokens=100, cache_read_tokens=1000, cache_write_tokens=10, output_tokens=50)
    assert upstream_cost_micro_p(Cost(60, 120, cache_read_price=6), usage) == 100 * 60 + 1000 * 6 + 10 * 60 + 50 * 120
    assert upstream_cost_micro_p(None, usage) is None


_channels = st.lists(
    st.builds(Channel, provider=st.sampled_from("abcdefgh"), upstream=st.just("u"),
              priority=st.integers(0, 3), weight=st.integers(1, 5)),
    min_size=1, max_size=8, unique_by=lambda c: c.provider,
)


@settings(max_examples=50, derandomize=True, deadline=None)
@given(_channels, st.integers(0, 2**32))
def test_every_channel_is_ordered_once_by_priority(channels, seed):
    ordered = weighted_order(channels, random.Random(seed))
    assert sorted(ordered, key=lambda c: c.provider) == sorted(channels, key=lambda c: c.provider)
    assert [c.priority for c in ordered] == sorted(c.priority for c in channels)


def test_equal_priorities_share_traffic_by_weight():
    heavy, light = Channel("heavy", "u", 0, 3), Channel("light", "u", 0, 1)
    rng = random.Random(7)
    first = Counter(weighted_order([heavy, light], rng)[0].provider for _ in range(4000))
    assert 0.72 < first["heavy"] / 4000 < 0.78


def _breakers() -> Breakers:
    return Breakers(None, threshold=3, cooldown=30)


def test_the_breaker_opens_after_failures_in_a_row_and_lets_one_probe_through_after_the_cool_down():
    with time_machine.travel(START, tick=False) as clock:
        breakers = _breakers()
        breakers.failed("a", "upstream_http_500")
        breakers.succeeded("a")
        breakers.failed("a", "upstream_http_500")
        breakers.failed("a", "upstream_timeout")
        assert breakers.state("a") == CLOSED  # a success in between starts the count again
        breakers.failed("a", "upstream_timeout")
        assert breakers.state("a") == OPEN and not breakers.admit("a")
        assert breakers.last_error("a")[0] == "upstream_timeout"
        clock.shift(timedelta(seconds=29))
        assert not breakers.admit("a")
        clock.shift(timedelta(seconds=2))
        assert breakers.state("a") == HALF_OPEN
        assert breakers.admit("a") and not breakers.admit("a")  # one probe at a time
        breakers.failed("a", "upstream_http_503")
        assert breakers.state("a") == OPEN  # a failed probe: another full cool-down
        clock.shift(timedelta(seconds=31))
        assert breakers.admit("a")
        breakers.succeeded("a")
        assert breakers.state("a") == CLOSED and breakers.admit("a") and breakers.admit("a")


def test_an_abandoned_probe_lets_the_next_request_probe():
    with time_machine.travel(START, tick=False) as clock:
        breakers = _breakers()
        for _ in range(3):
            breakers.failed("a", None)
        clock.shift(timedelta(seconds=31))
        assert breakers.admit("a")
        breakers.abandoned("a")
        assert breakers.admit("a")


def test_open_channels_go_last_and_switched_off_ones_are_left_out():
    with time_machine.travel(START, tick=False):
        breakers = _breakers()
        a, b, c = Channel("a", "u", 0), Channel("b", "u", 1), Channel("c", "u", 2)
        for _ in range(3):
            breakers.failed(a.id, None)
        breakers.set_disabled(HealthRow(b.id, None, True, None, None, START))
        assert breakers.state(b.id) == OFF
        assert breakers.order([a, b, c]) == [c, a]
        assert not breakers.admit(b.id, last_resort=True)
        assert breakers.admit(a.id, last_resort=True)


def test_rows_another_process_wrote_are_adopted_only_when_newer():
    with time_machine.travel(START, tick=False) as clock:
        breakers = _breakers()
        later = START + timedelta(seconds=40)
        breakers.adopt([HealthRow("a:u", later, False, "upstream_http_500", START, START)])
        assert breakers.state("a:u") == OPEN
        breakers.adopt([HealthRow("a:u", None, False, None, None, START - timedelta(seconds=1))])
        assert breakers.state("a:u") == OPEN  # older than what was seen: ignored
        clock.shift(timedelta(seconds=1))
        breakers.adopt([HealthRow("a:u", None, False, None, None, START + timedelta(seconds=1))])
        assert breakers.state("a:u") == CLOSED


class _SharedTable:
    """``channel_health`` as two processes' ``Breakers.sync`` see it: writes replace, reads return all."""

    def __init__(self) -> None:
        self.rows: dict[str, HealthRow] = {}

    async def transaction(self, fn, writes):
        for w in writes:
            old = self.rows.get(w.channel)
            self.rows[w.channel] = HealthRow(w.channel, w.open_until, old.disabled if old else False,
                                             w.last_error, w.last_error_at, w.changed_at)

    async def read(self, fn):
        return list(self.rows.values())


def test_a_single_failure_in_one_process_never_closes_what_another_opened():
    async def scenario():
        table = _SharedTable()
        first, second = Breakers(table, threshold=2, cooldown=30), Breakers(table, threshold=2, cooldown=30)
        first.failed("c", "upstream_http_503")
        first.failed("c", "upstream_http_503")
        await first.sync()
        second.failed("c", "upstream_http_503")  # its first: it opens nothing
        await second.sync()
        await first.sync()
        return first.state("c"), second.state("c")

    with time_machine.travel(START, tick=True):
        assert asyncio.run(scenario()) == (OPEN, OPEN)


def test_a_probe_that_succeeds_closes_the_channel_in_every_process():
    async def scenario():
        table = _SharedTable()
        first, second = Breakers(table, threshold=1, cooldown=30), Breakers(table, threshold=1, cooldown=30)
        first.failed("c", None)
        await first.sync()
        await second.sync()
        opened = second.state("c")
        return opened, first, second, table

    with time_machine.travel(START, tick=False) as clock:
        opened, first, second, table = asyncio.run(scenario())
        assert opened == OPEN
        clock.shift(timedelta(seconds=31))
        assert second.admit("c")
        second.succeeded("c")
        clock.shift(timedelta(seconds=1))

        async def share():
            await second.sync()
            await first.sync()

        asyncio.run(share())
        assert (first.state("c"), second.state("c")) == (CLOSED, CLOSED)
