"""Prices of cached prompts, reasoning and long-context tiers, at the shipped catalogue's rates."""

from __future__ import annotations

import asyncio
import copy
import tomllib
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.accounting.pricing import (
    TokenUsage,
    affordable_output_tokens,
    cost_micro_p,
    price_tier,
    prices_at,
    saved_micro_p,
    wants_1h_cache,
    worst_case_micro_p,
)
from gateway.accounting.leases import Reservation
from gateway.catalog import Model, PriceTier, Provider, load_catalog, parse_catalog
from gateway.config import ConfigError
from gateway.errors import ApiError
from gateway.proxy.call import MESSAGES, plan_request
from fixtures.gateway import SHIPPED_PROVIDERS

ONE_P = 1_000_000
SHIPPED = load_catalog(SHIPPED_PROVIDERS).models
SONNET = SHIPPED["claude-sonnet-4.5"]


def model(input_price=1000, output_price=4000, tiers=(), **cache) -> Model:
    return Model("m", "p", "u", "chat", "International Models", input_price, output_price, 8192, 1_000_000,
                 tiers=tuple(tiers), **cache)


@pytest.mark.parametrize(("model_id", "usage", "micro_p"), [
    # The table: what each provider bills for these tokens.
    ("claude-sonnet-4.5", TokenUsage(input_tokens=100, cache_read_tokens=10_000, output_tokens=50), 4_050_000),
    ("claude-sonnet-4.5", TokenUsage(input_tokens=100, cache_write_tokens=10_000, output_tokens=50), 38_550_000),
    ("gpt-5.2", TokenUsage(input_tokens=100, cache_read_tokens=10_000, output_tokens=50), 2_625_000),
    ("deepseek-v3.2", TokenUsage(input_tokens=100, cache_read_tokens=10_000, output_tokens=50), 329_000),
    # A 1-hour write on Claude: twice the input price.
    ("claude-sonnet-4.5", TokenUsage(input_tokens=100, cache_write_1h_tokens=10_000, output_tokens=50), 61_050_000),
    # The other providers' pages: Qwen's implicit hit 20% and explicit write 125%, MiniMax's read 10% and
    # write 125%, Gemini's cached input 10%.
    ("qwen-3.5-plus", TokenUsage(input_tokens=100, cache_read_tokens=10_000, cache_write_tokens=1_000, output_tokens=50),
     100 * 220 + 10_000 * 44 + 1_000 * 275 + 50 * 1300),
    ("minimax-m2.5", TokenUsage(input_tokens=100, cache_read_tokens=10_000, cache_write_tokens=1_000, output_tokens=50),
     100 * 400 + 10_000 * 40 + 1_000 * 500 + 50 * 1100),
    ("gemini-3.1-pro", TokenUsage(input_tokens=100, cache_read_tokens=10_000, output_tokens=50), 100 * 2000 + 10_000 * 200 + 50 * 12000),
    # Unconfirmed cached rates: cached input at the input price.
    ("kimi-k2.5", TokenUsage(input_tokens=100, cache_read_tokens=10_000, output_tokens=50), 10_100 * 450 + 50 * 2200),
    ("glm-5", TokenUsage(input_tokens=100, cache_read_tokens=10_000, output_tokens=50), 10_100 * 700 + 50 * 2300),
])
def test_cached_prompts_cost_what_the_provider_bills(model_id, usage, micro_p):
    assert cost_micro_p(SHIPPED[model_id], usage) == micro_p


def test_what_caching_saved_is_the_full_price_minus_the_cached_price():
    read = TokenUsage(input_tokens=100, cache_read_tokens=10_000, output_tokens=50)
    assert saved_micro_p(SONNET, read) == 10_000 * (3000 - 300)
    write = TokenUsage(input_tokens=100, cache_write_tokens=10_000, output_tokens=50)
    assert saved_micro_p(SONNET, write) == -10_000 * (3750 - 3000)
    assert saved_micro_p(SONNET, TokenUsage(input_tokens=100, output_tokens=50)) == 0


def test_reasoning_is_part_of_output_and_not_charged_twice():
    plain = TokenUsage(input_tokens=10, output_tokens=500)
    reasoning = TokenUsage(input_tokens=10, output_tokens=500, reasoning_tokens=400)
    assert cost_micro_p(SHIPPED["gpt-5.2"], reasoning) == cost_micro_p(SHIPPED["gpt-5.2"], plain) == 10 * 1750 + 500 * 14000


def test_a_prompt_exactly_at_the_tier_boundary_stays_at_base_prices():
    at = TokenUsage(input_tokens=1_000, cache_read_tokens=199_000, output_tokens=10)
    assert at.prompt_tokens == 200_000
    assert price_tier(SONNET, at.prompt_tokens) is None
    assert cost_micro_p(SONNET, at) == 1_000 * 3000 + 199_000 * 300 + 10 * 15000


def test_one_token_above_the_boundary_prices_the_whole_request_at_the_tier():
    above = TokenUsage(input_tokens=1_001, cache_read_tokens=199_000, output_tokens=10)
    assert price_tier(SONNET, above.prompt_tokens) == 200_000
    # Every token, not just the excess: 1,001 fresh at 6,000, 199,000 read at 600, output at 22,500.
    assert cost_micro_p(SONNET, above) == 1_001 * 6000 + 199_000 * 600 + 10 * 22500
    writes = TokenUsage(input_tokens=1, cache_write_tokens=100_000, cache_write_1h_tokens=100_000)
    assert cost_micro_p(SONNET, writes) == 6000 + 100_000 * 7500 + 100_000 * 12000


def test_gemini_tier_scales_its_cached_price_with_the_tier_input_price():
    gemini = SHIPPED["gemini-3.1-pro"]
    tier = prices_at(gemini, 200_001)
    assert (tier.input, tier.output, tier.cache_read) == (4000, 18000, 400)
    assert prices_at(gemini, 200_000).cache_read == 200


def test_a_cache_price_left_out_is_the_input_price_outside_a_tier():
    plain = model(input_price=1000)
    prices = prices_at(plain, 10)
    assert (prices.cache_read, prices.cache_write, prices.cache_write_1h) == (1000, 1000, 1000)
    usage = TokenUsage(input_tokens=5, cache_read_tokens=7, cache_write_tokens=11, cache_write_1h_tokens=13)
    assert cost_micro_p(plain, usage) == 36 * 1000
    assert saved_micro_p(plain, usage) == 0


def test_a_tier_cache_price_left_out_is_scaled_and_rounded_down():
    tiered = model(input_price=3, cache_read_price=1, cache_write_price=4,
                   tiers=[PriceTier(100, input_price=7, output_price=9)])
    prices = prices_at(tiered, 101)
    # 1 × 7 / 3 = 2.33 → 2; 4 × 7 / 3 = 9.33 → 9; the 1-hour write falls back to base input 3 → 3 × 7 / 3 = 7.
    assert (prices.cache_read, prices.cache_write, prices.cache_write_1h) == (2, 9, 7)
    explicit = model(tiers=[PriceTier(100, 2000, 8000, cache_read_price=123)])
    assert prices_at(explicit, 101).cache_read == 123


def test_the_highest_tier_passed_applies():
    tiered = model(tiers=[PriceTier(100, 2000, 8000), PriceTier(1000, 3000, 9000)])
    assert [price_tier(tiered, n) for n in (100, 101, 1000, 1001)] == [None, 100, 100, 1000]
    assert cost_micro_p(tiered, TokenUsage(input_tokens=1001, output_tokens=1)) == 1001 * 3000 + 9000


def test_an_unpriced_model_cannot_be_costed():
    unpriced = model(input_price=None, output_price=None)
    for call in (lambda: cost_micro_p(unpriced, TokenUsage(1)), lambda: saved_micro_p(unpriced, TokenUsage(1)),
                 lambda: worst_case_micro_p(unpriced, 1, 1), lambda: affordable_output_tokens(unpriced, 1, 10)):
        with pytest.raises(ValueError):
            call()


def test_the_worst_case_takes_the_dearest_prompt_price_at_the_prompt_tier():
    assert worst_case_micro_p(SONNET, 1000, 10) == 1000 * 3750 + 10 * 15000
    assert worst_case_micro_p(SONNET, 1000, 10, cache_write_1h=True) == 1000 * 6000 + 10 * 15000
    assert worst_case_micro_p(SONNET, 200_001, 10) == 200_001 * 7500 + 10 * 22500
    # Without cache prices the worst case is the plain price.
    assert worst_case_micro_p(SHIPPED["gpt-5.2"], 1000, 10) == 1000 * 1750 + 10 * 14000


def test_affordable_output_pays_for_the_worst_case_prompt_first():
    amount = 1000 * 3750 + 10 * 15000 + 14_999
    assert affordable_output_tokens(SONNET, 1000, amount) == 10
    assert affordable_output_tokens(SONNET, 1000, amount, cache_write_1h=True) == 0
    embedding = SHIPPED["text-embedding-3-small"]
    assert affordable_output_tokens(embedding, 10, 200) > 10**12
    assert affordable_output_tokens(embedding, 10, 199) == 0


def test_a_one_hour_cache_block_is_found_anywhere_in_the_body():
    body = {"system": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "messages": [{"role": "user", "content": "hi"}]}
    assert wants_1h_cache(body)
    assert not wants_1h_cache({"system": [{"type": "text", "text": "1h", "cache_control": {"type": "ephemeral"}}]})
    assert not wants_1h_cache({"messages": [{"content": [{"cache_control": {"ttl": "5m"}}]}], "ttl": "1h"})
    deep: dict = {}
    node = deep
    for _ in range(10_000):  # far deeper than any real body: neither a recursion error nor a hit
        node["x"] = {}
        node = node["x"]
    node["cache_control"] = {"ttl": "1h"}
    assert not wants_1h_cache(deep)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    model_id=st.sampled_from(sorted(m.id for m in SHIPPED.values() if m.priced)),
    parts=st.tuples(*[st.integers(0, 400_000)] * 5),
    reasoning_share=st.floats(0, 1),
)
def test_a_cost_is_never_negative_nor_above_full_price_plus_the_write_premium(model_id, parts, reasoning_share):
    fresh, read, write, write_1h, output = parts
    usage = TokenUsage(fresh, read, write, write_1h, output, int(output * reasoning_share))
    priced = SHIPPED[model_id]
    prices = prices_at(priced, usage.prompt_tokens)
    cost = cost_micro_p(priced, usage)
    full = usage.prompt_tokens * prices.input + output * prices.output
    premium = write * max(0, prices.cache_write - prices.input) + write_1h * max(0, prices.cache_write_1h - prices.input)
    assert 0 <= cost <= full + premium
    assert cost <= worst_case_micro_p(priced, usage.prompt_tokens, output, cache_write_1h=True)
    assert cost == full - saved_micro_p(priced, usage)


def _sonnet_file() -> dict:
    with open(SHIPPED_PROVIDERS, "rb") as f:
        return tomllib.load(f)


def _with_sonnet(change) -> dict:
    data = copy.deepcopy(_sonnet_file())
    entry = next(m for m in data["models"] if m["id"] == "claude-sonnet-4.5")
    change(entry)
    return data


def test_the_shipped_file_reads_its_cache_prices_and_tiers():
    assert (SONNET.cache_read_price, SONNET.cache_write_price, SONNET.cache_write_1h_price) == (300, 3750, 6000)
    assert SONNET.tiers == (PriceTier(200_000, 6000, 22500, 600, 7500, 12000),)
    assert SHIPPED["gpt-5.2"].cache_write_price is None


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.update(cache_read_price=-1), r"models\[\d+\]\.cache_read_price must be a non-negative integer"),
    (lambda m: m.update(cache_write_1h_price="6000"), r"cache_write_1h_price must be a non-negative integer"),
    (lambda m: m.update(cache_write_price=1.5), r"cache_write_price must be a non-negative integer"),
    (lambda m: m["tiers"][0].pop("above_input_tokens"), r"tiers\[0\]\.above_input_tokens is missing"),
    (lambda m: m["tiers"][0].update(above_input_tokens=0), r"above_input_tokens must be a positive whole number"),
    (lambda m: m["tiers"][0].pop("output_price"), r"tiers\[0\]\.output_price is missing"),
    (lambda m: m["tiers"][0].update(cache_read_price=True), r"tiers\[0\]\.cache_read_price must be"),
    (lambda m: m.update(tiers=[m["tiers"][0], dict(m["tiers"][0])]), r"above_input_tokens = 200000 twice"),
    (lambda m: m.update(tiers={"above_input_tokens": 5}), r"tiers must be a list"),
    (lambda m: (m.pop("input_price"), m.pop("output_price")), r"tiers need the model's own input_price"),
])
def test_a_bad_cache_price_or_tier_is_one_clear_line(change, message):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_catalog(_with_sonnet(change))
    assert "\n" not in str(caught.value)


def test_tiers_are_sorted_by_their_boundary():
    def two_tiers(entry):
        entry["tiers"] = [dict(entry["tiers"][0], above_input_tokens=500_000, input_price=9000), entry["tiers"][0]]
    tiers = parse_catalog(_with_sonnet(two_tiers)).models["claude-sonnet-4.5"].tiers
    assert [t.above_input_tokens for t in tiers] == [200_000, 500_000]


class _RecordingReserver:
    """Grants ``grant`` (or everything asked) and remembers what was asked; raises ``fails`` if set."""

    def __init__(self, grant: int | None = None, fails: Exception | None = None) -> None:
        self.grant = grant
        self.fails = fails
        self.asked: list[tuple[int, int]] = []

    async def reserve_up_to(self, account_id, want, at_least, key_id=None, budget_key_id=None, member_budget_id=None):
        self.asked.append((want, at_least))
        if self.fails is not None:
            raise self.fails
        return Reservation(account_id, want if self.grant is None else self.grant, "holder")


def _reserve_for(body: dict, grant: int | None = None, fails: Exception | None = None):
    from gateway.api import public

    anthropic = Provider("anthropic", "Anthropic", "https://api.anthropic.test", "ANTHROPIC_API_KEY", "anthropic")
    plan = plan_request(MESSAGES, body, SONNET, anthropic, "secret", None)
    runtime = SimpleNamespace(settings=SimpleNamespace(min_output_tokens=256), reserver=_RecordingReserver(grant, fails))
    key = SimpleNamespace(account_id="a", key_id="k", spend_limit_micro_p=None, has_budget=False, member_id=None)
    reservation = asyncio.run(public._reserve(runtime, key, SONNET, plan))
    return plan, runtime.reserver.asked[0], reservation


@pytest.mark.parametrize("where", ["rate limits", "balance"])
def test_a_database_out_of_reach_while_admitting_is_a_503_to_retry(where):
    from gateway.api import public

    lost = sa.exc.OperationalError("UPDATE", {}, Exception("server closed the connection unexpectedly"))

    async def room(_timeout):
        return True

    async def admit(_limits, _tokens):
        raise lost

    body = {"model": "claude-sonnet-4.5", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}
    anthropic = Provider("anthropic", "Anthropic", "https://api.anthropic.test", "ANTHROPIC_API_KEY", "anthropic")
    plan = plan_request(MESSAGES, body, SONNET, anthropic, "secret", None)
    runtime = SimpleNamespace(settings=SimpleNamespace(min_output_tokens=256), writer=SimpleNamespace(room=room),
                              limiter=SimpleNamespace(admit=admit), reserver=_RecordingReserver(fails=lost))
    limited = where == "rate limits"
    key = SimpleNamespace(account_id="a", key_id="k", spend_limit_micro_p=None, has_budget=False, member_id=None,
                          rpm_limit=60 if limited else None, tpm_limit=None, account_rpm_limit=None,
                          account_tpm_limit=None)
    with pytest.raises(ApiError) as raised:
        asyncio.run(public._reserve_for_call(runtime, key, SONNET, plan, SimpleNamespace()))
    error = raised.value
    assert (error.status, error.code, error.headers) == (503, "database_unavailable", {"retry-after": "5"})
    assert "server closed" not in error.message  # the database's own words stay out of the answer
    assert len(runtime.reserver.asked) == (0 if limited else 1)  # which of the two found the database gone


def test_a_reservation_sizes_the_prompt_at_the_cache_write_price_it_may_pay():
    text = {"type": "text", "text": "a long system prompt"}
    five_minutes = {"model": "claude-sonnet-4.5", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}],
                    "system": [dict(text, cache_control={"type": "ephemeral"})]}
    one_hour = dict(five_minutes, system=[dict(text, cache_control={"type": "ephemeral", "ttl": "1h"})])
    plan, (want, _), _ = _reserve_for(five_minutes)
    assert want == plan.estimated_input * 3750 + 1000 * 15000
    plan, (want, _), _ = _reserve_for(one_hour)
    assert want == plan.estimated_input * 6000 + 1000 * 15000
    # A smaller grant lowers the output bound to what is left after the 1-hour-priced prompt.
    plan, _, reservation = _reserve_for(one_hour, grant=plan.estimated_input * 6000 + 400 * 15000 + 14_999)
    assert plan.max_output == 400 and reservation.amount_micro_p < plan.estimated_input * 6000 + 401 * 15000
