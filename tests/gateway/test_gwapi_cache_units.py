"""Every provider's usage shape read into its billed parts, checked, and written back with its cost."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.accounting.pricing import TokenUsage, cost_micro_p, worst_case_micro_p
from gateway.catalog import load_catalog
from gateway.proxy.translate import usage as tusage
from gateway.proxy.translate.relays import ChatPassthrough, ChatToMessagesRelay, MessagesPassthrough
from gateway.proxy.translate.streams import Usage
from gateway.proxy.usage_checks import check_usage
from fixtures.upstream import PROVIDERS_TOML

CATALOG = load_catalog(PROVIDERS_TOML)
SONNET = CATALOG.models["claude-sonnet-4.5"]


def test_anthropic_input_excludes_the_cache_and_writes_split_by_lifetime():
    usage = tusage.from_anthropic({
        "input_tokens": 100, "cache_read_input_tokens": 10_000, "cache_creation_input_tokens": 3_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 2_000, "ephemeral_1h_input_tokens": 1_000},
        "output_tokens": 50,
    })
    assert usage == TokenUsage(100, 10_000, 2_000, 1_000, 50)
    assert usage.prompt_tokens == 13_100


def test_anthropic_writes_without_the_split_are_five_minute_writes():
    usage = tusage.from_anthropic({"input_tokens": 100, "cache_creation_input_tokens": 10_000, "output_tokens": 50})
    assert usage == TokenUsage(input_tokens=100, cache_write_tokens=10_000, output_tokens=50)


def test_an_anthropic_stream_combines_message_start_and_message_delta():
    usage = Usage()
    usage.observe_anthropic_event({"type": "message_start", "message": {"usage": {
        "input_tokens": 100, "cache_read_input_tokens": 10_000, "cache_creation_input_tokens": 0, "output_tokens": 1}}})
    assert not usage.reported
    usage.observe_anthropic_event({"type": "message_delta", "usage": {"output_tokens": 50}})
    assert usage.reported_usage == TokenUsage(input_tokens=100, cache_read_tokens=10_000, output_tokens=50)


def test_a_message_delta_repeating_the_input_counts_wins_over_message_start():
    usage = Usage()
    usage.observe_anthropic_event({"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}})
    usage.observe_anthropic_event({"type": "message_delta", "usage": {
        "input_tokens": 100, "cache_read_input_tokens": 7, "output_tokens": 50}})
    assert usage.reported_usage == TokenUsage(input_tokens=100, cache_read_tokens=7, output_tokens=50)


def test_openai_cached_and_reasoning_tokens_are_parts_of_prompt_and_completion():
    usage = tusage.from_openai({
        "prompt_tokens": 10_100, "completion_tokens": 50, "total_tokens": 10_150,
        "prompt_tokens_details": {"cached_tokens": 10_000}, "completion_tokens_details": {"reasoning_tokens": 20},
    })
    assert usage == TokenUsage(input_tokens=100, cache_read_tokens=10_000, output_tokens=50, reasoning_tokens=20)


def test_deepseek_cache_hits_and_misses():
    usage = tusage.from_openai({"prompt_tokens": 10_100, "completion_tokens": 50, "total_tokens": 10_150,
                                "prompt_cache_hit_tokens": 10_000, "prompt_cache_miss_tokens": 100})
    assert usage == TokenUsage(input_tokens=100, cache_read_tokens=10_000, output_tokens=50)
    without_total = tusage.from_openai({"completion_tokens": 50, "prompt_cache_hit_tokens": 10_000,
                                        "prompt_cache_miss_tokens": 100})
    assert without_total == usage


def test_kimi_reports_its_cache_hits_top_level():
    usage = tusage.from_openai({"prompt_tokens": 10_100, "completion_tokens": 50, "total_tokens": 10_150,
                                "cached_tokens": 10_000})
    assert usage == TokenUsage(input_tokens=100, cache_read_tokens=10_000, output_tokens=50)


@pytest.mark.parametrize("provider", ["qwen", "moonshot", "zhipu", "minimax", "google", "openai"])
def test_prompt_tokens_details_cached_tokens_of_every_compatible_provider(provider):
    usage = tusage.from_openai({"prompt_tokens": 300, "completion_tokens": 9, "total_tokens": 309,
                                "prompt_tokens_details": {"cached_tokens": 256}})
    assert usage == TokenUsage(input_tokens=44, cache_read_tokens=256, output_tokens=9)


def test_qwen_explicit_cache_writes():
    usage = tusage.from_openai({
        "prompt_tokens": 3_100, "completion_tokens": 9, "total_tokens": 3_109,
        "prompt_tokens_details": {"cached_tokens": 1_000, "cache_creation_input_tokens": 2_000,
                                  "cache_creation": {"ephemeral_5m_input_tokens": 2_000}, "cache_type": "ephemeral"},
    })
    assert usage == TokenUsage(input_tokens=100, cache_read_tokens=1_000, cache_write_tokens=2_000, output_tokens=9)


def test_reasoning_left_out_of_completion_tokens_is_added_to_the_output():
    # total_tokens shows it: prompt + completion + reasoning.
    usage = tusage.from_openai({"prompt_tokens": 21, "completion_tokens": 10, "total_tokens": 91,
                                "completion_tokens_details": {"reasoning_tokens": 60}})
    assert (usage.output_tokens, usage.reasoning_tokens) == (70, 60)


def test_cache_parts_never_exceed_the_prompt_the_provider_reported():
    usage = tusage.from_openai({"prompt_tokens": 100, "completion_tokens": 5,
                                "prompt_tokens_details": {"cached_tokens": 500}})
    assert usage == TokenUsage(input_tokens=0, cache_read_tokens=100, output_tokens=5)


@pytest.mark.parametrize("value", ["7", 1.5, True, [3], {"n": 1}])
def test_a_count_that_is_not_an_integer_is_malformed(value):
    with pytest.raises(ValueError):
        tusage.from_openai({"prompt_tokens": value, "completion_tokens": 1})
    with pytest.raises(ValueError):
        tusage.from_anthropic({"input_tokens": 1, "cache_read_input_tokens": value, "output_tokens": 1})


def test_an_integral_float_count_is_that_integer():
    assert tusage.from_openai({"prompt_tokens": 12.0, "completion_tokens": 3}).input_tokens == 12


@pytest.mark.parametrize("micro, text", [
    (4_050_000, b"4.05"), (0, b"0"), (1, b"0.000001"), (123_456_789, b"123.456789"), (2_000_000, b"2"),
    (329_000, b"0.329"),
])
def test_the_cost_is_an_exact_json_number_of_p(micro, text):
    assert orjson.dumps({"cost": tusage.cost_p(micro)}) == b'{"cost":' + text + b"}"
    assert Decimal(text.decode()) * 10**6 == micro


def test_an_openai_client_sees_every_input_token_with_the_cache_reads_in_the_details():
    usage = TokenUsage(100, 10_000, 2_000, 1_000, 50, 20)
    out = orjson.loads(orjson.dumps(tusage.openai_usage(usage, 4_050_000)))
    assert out == {"prompt_tokens": 13_100, "completion_tokens": 50, "total_tokens": 13_150,
                   "prompt_tokens_details": {"cached_tokens": 10_000},
                   "completion_tokens_details": {"reasoning_tokens": 20}, "cost": 4.05}


def test_an_anthropic_client_sees_the_uncached_input_beside_the_cache_parts():
    usage = TokenUsage(100, 10_000, 2_000, 1_000, 50)
    out = orjson.loads(orjson.dumps(tusage.anthropic_usage(usage, 1)))
    assert out == {"input_tokens": 100, "cache_creation_input_tokens": 3_000, "cache_read_input_tokens": 10_000,
                   "output_tokens": 50, "cost": 0.000001,
                   "cache_creation": {"ephemeral_5m_input_tokens": 2_000, "ephemeral_1h_input_tokens": 1_000}}


# --- checks -----------------------------------------------------------------

def check(usage: TokenUsage, bound: int = 1_000, window: int = 100_000, estimate: int = 100_000):
    return check_usage(usage, output_bound=bound, context_window=window, estimated_input=estimate)


def test_each_negative_part_is_zero_and_flagged():
    checked = check(TokenUsage(-1, -2, -3, -4, -5, -6))
    assert checked.usage == TokenUsage()
    assert set(checked.flags) == {"negative_input", "negative_cache_read", "negative_cache_write",
                                  "negative_cache_write_1h", "negative_output", "negative_reasoning"}


def test_reasoning_is_never_more_than_the_output():
    checked = check(TokenUsage(output_tokens=2_000, reasoning_tokens=5_000), bound=1_000)
    assert (checked.usage.output_tokens, checked.usage.reasoning_tokens) == (1_000, 1_000)
    assert set(checked.flags) == {"output_above_bound", "reasoning_above_output"}


def test_a_prompt_beyond_the_window_is_cut_fresh_input_first_then_writes_then_reads():
    checked = check(TokenUsage(input_tokens=300, cache_read_tokens=500, cache_write_tokens=200,
                               cache_write_1h_tokens=100, output_tokens=1), window=750)
    assert checked.usage == TokenUsage(input_tokens=0, cache_read_tokens=500, cache_write_tokens=200,
                                       cache_write_1h_tokens=50, output_tokens=1)
    assert checked.usage.prompt_tokens == 750
    assert checked.flags == ("input_above_window",)


_COUNT = st.integers(-(10**9), 10**9)


@st.composite
def reported_usage(draw) -> dict:
    if draw(st.booleans()):
        return {"input_tokens": draw(_COUNT), "cache_read_input_tokens": draw(_COUNT),
                "cache_creation_input_tokens": draw(_COUNT), "output_tokens": draw(_COUNT),
                **({"cache_creation": {"ephemeral_5m_input_tokens": draw(_COUNT),
                                       "ephemeral_1h_input_tokens": draw(_COUNT)}} if draw(st.booleans()) else {})}
    return {"prompt_tokens": draw(_COUNT), "completion_tokens": draw(_COUNT),
            "prompt_tokens_details": {"cached_tokens": draw(_COUNT), "cache_creation_input_tokens": draw(_COUNT)},
            "completion_tokens_details": {"reasoning_tokens": draw(_COUNT)},
            "prompt_cache_hit_tokens": draw(_COUNT), "total_tokens": draw(_COUNT)}


@settings(max_examples=300, derandomize=True, deadline=None)
@given(raw=reported_usage(), bound=st.integers(0, 10**6), window=st.integers(1, 2 * 10**6))
def test_checked_usage_is_consistent_and_never_costs_more_than_the_worst_case(raw, bound, window):
    reported = tusage.from_anthropic(raw) if "input_tokens" in raw else tusage.from_openai(raw)
    checked = check(reported, bound=bound, window=window).usage
    parts = (checked.input_tokens, checked.cache_read_tokens, checked.cache_write_tokens,
             checked.cache_write_1h_tokens, checked.output_tokens, checked.reasoning_tokens)
    assert min(parts) >= 0
    assert checked.prompt_tokens <= window
    assert checked.reasoning_tokens <= checked.output_tokens <= bound
    cost = cost_micro_p(SONNET, checked)
    assert 0 <= cost <= worst_case_micro_p(SONNET, checked.prompt_tokens, checked.output_tokens, cache_write_1h=True)
    if reported == checked:
        assert not {"input_above_window", "output_above_bound"} & set(check(reported, bound=bound, window=window).flags)


# --- relays -----------------------------------------------------------------

def _charge_at(cost: int):
    def charge(usage):
        return usage, cost
    return charge


def test_anthropic_passthrough_adds_the_cost_to_message_delta_and_keeps_the_rest():
    relay = MessagesPassthrough("anthropic")
    relay.charge = _charge_at(4_050_000)
    start = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":'
             b'{"input_tokens":100,"cache_read_input_tokens":10000,"output_tokens":1}}}\n\n')
    assert relay.event(start) == start
    out = relay.event(b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
                      b'"usage":{"output_tokens":50}}\n\n')
    assert out.startswith(b"event: message_delta\ndata: ")
    event = orjson.loads(out.split(b"data: ", 1)[1])
    assert event["usage"] == {"output_tokens": 50, "cost": 4.05}
    assert relay.usage.reported_usage == TokenUsage(input_tokens=100, cache_read_tokens=10_000, output_tokens=50)


def test_chat_passthrough_adds_the_cost_beside_the_providers_own_usage_fields():
    relay = ChatPassthrough("deepseek", client_wants_usage=True)
    relay.charge = _charge_at(329_000)
    usage = {"prompt_tokens": 10_100, "completion_tokens": 50, "total_tokens": 10_150,
             "prompt_cache_hit_tokens": 10_000, "prompt_cache_miss_tokens": 100}
    out = relay.event(b"data: " + orjson.dumps({"id": "c", "choices": [], "usage": usage}) + b"\n\n")
    assert orjson.loads(out[len(b"data: "):])["usage"] == {**usage, "cost": 0.329}


def test_an_anthropic_client_of_a_chat_upstream_gets_cache_reads_apart_from_input():
    relay = ChatToMessagesRelay("openai", "gpt-5.2", 12)
    relay.charge = lambda usage: (usage, 2_625_000)
    relay.event(b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n')
    relay.event(b"data: " + orjson.dumps({"id": "c", "choices": [], "usage": {
        "prompt_tokens": 10_100, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 10_000}}}) + b"\n\n")
    events = [orjson.loads(part.split(b"data: ", 1)[1]) for part in relay.finish().split(b"\n\n") if part]
    delta = next(event for event in events if event["type"] == "message_delta")
    assert delta["usage"] == {"input_tokens": 100, "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 10_000, "output_tokens": 50, "cost": 2.625}


def test_a_streamed_count_that_is_not_an_integer_is_refused_not_charged():
    relay = MessagesPassthrough("anthropic")
    relay.charge = _charge_at(1)
    with pytest.raises(ValueError):  # the stream's malformed-answer error, not a 500
        relay.event(b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":"50"}}\n\n')
    passthrough = ChatPassthrough("openai", client_wants_usage=True)
    with pytest.raises(ValueError):
        passthrough.event(b'data: {"choices":[],"usage":{"prompt_tokens":1.5,"completion_tokens":1}}\n\n')
