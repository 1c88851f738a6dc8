"""Cached prompts through the gateway: every provider's usage shape, both wire formats, streamed or not.

The fake upstream reports each provider's usage in that provider's own shape; the
official ``openai`` and ``anthropic`` SDKs are the clients. What a request costs is
worked out here from the shipped catalogue by the issue's rules, and must be what the
ledger charged, what the request log shows and the ``usage.cost`` the answer carried.
"""

from __future__ import annotations

import json
import tomllib
import uuid
from decimal import Decimal

import pytest
import requests
from gwapi_helpers import ONE_P, new_customer

from fixtures.upstream import PROVIDERS_TOML, anthropic_usage, provider_usage, Behaviour

CATALOGUE = {model["id"]: model for model in tomllib.loads(PROVIDERS_TOML.read_text())["models"]}
# One chat model of every provider, and the cache parts that provider reports.
CASES = {
    "anthropic": ("claude-sonnet-4.5", (10_000, 2_000, 1_000, 0)),
    "openai": ("gpt-5.2", (10_000, 0, 0, 20)),
    "deepseek": ("deepseek-v3.2", (10_000, 0, 0, 0)),
    "qwen": ("qwen-3.5-plus", (10_000, 2_000, 0, 0)),
    "moonshot": ("kimi-k2.5", (10_000, 0, 0, 0)),
    "zhipu": ("glm-5", (10_000, 0, 0, 0)),
    "google": ("gemini-3.1-pro", (10_000, 0, 0, 20)),
}
FRESH, OUTPUT = 100, 50


def expected_cost(model_id: str, fresh: int, output: int, read: int = 0, write: int = 0, write_1h: int = 0) -> int:
    """The issue's rule: each part at its price, at the tier the whole prompt falls in."""
    model = CATALOGUE[model_id]
    prompt = fresh + read + write + write_1h
    base_input = model["input_price"]
    prices = {name: model.get(name, base_input) for name in ("cache_read_price", "cache_write_price",
                                                             "cache_write_1h_price")}
    prices.update(input_price=base_input, output_price=model["output_price"])
    tiers = [tier for tier in model.get("tiers", ()) if prompt > tier["above_input_tokens"]]
    if tiers:
        tier = max(tiers, key=lambda t: t["above_input_tokens"])
        for name in ("cache_read_price", "cache_write_price", "cache_write_1h_price"):
            if name not in tier:
                assert prices[name] * tier["input_price"] % base_input == 0, "pick a case that scales exactly"
                tier = dict(tier, **{name: prices[name] * tier["input_price"] // base_input})
        prices = {name: tier[name] for name in prices}
    return (fresh * prices["input_price"] + read * prices["cache_read_price"] + write * prices["cache_write_price"]
            + write_1h * prices["cache_write_1h_price"] + output * prices["output_price"])


def micro(cost: float) -> int:
    """A ``usage.cost`` in P as integer micro-P, refusing anything beyond six decimals."""
    value = Decimal(repr(cost)) * 10**6
    assert value == value.to_integral_value(), f"{cost} has more than six decimals"
    return int(value)


def ask(customer, client_format: str, model: str, text: str, stream: bool, **extra) -> tuple[dict, float]:
    """(the client's usage object, its cost) for one request through the SDK of ``client_format``."""
    messages = [{"role": "user", "content": text}]
    if client_format == "openai":
        client = customer.openai()
        if not stream:
            answer = client.chat.completions.create(model=model, messages=messages, max_tokens=500, **extra)
            return answer.usage.model_dump(exclude_none=True), answer.usage.cost
        usage = None
        for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=500, stream=True,
                                                    stream_options={"include_usage": True}, **extra):
            data = chunk.model_dump(exclude_none=True)
            # Kimi reports a stream's usage inside its last choice.
            found = data.get("usage") or next((c["usage"] for c in data.get("choices", ()) if "usage" in c), None)
            usage = found or usage
        assert usage is not None
        return usage, usage["cost"]
    client = customer.anthropic()
    if not stream:
        answer = client.messages.create(model=model, max_tokens=500, messages=messages, **extra)
        return answer.usage.model_dump(exclude_none=True), answer.usage.cost
    with client.messages.stream(model=model, max_tokens=500, messages=messages, **extra) as events:
        deltas = [event for event in events if event.type == "message_delta"]
        final = events.get_final_message()
    assert len(deltas) == 1
    return final.usage.model_dump(exclude_none=True), deltas[0].usage.cost


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "uncached"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("client_format", ["openai", "anthropic"])
@pytest.mark.parametrize("provider", list(CASES))
def test_exact_cost_on_both_wire_formats(gateway, fake_upstream, provider, client_format, stream, cached):
    model, parts = CASES[provider]
    read, write, write_1h, reasoning = parts if cached else (0, 0, 0, 0)
    phrase = f"[[usage:{FRESH}:{OUTPUT}:{read}:{write}:{write_1h}:{reasoning}]]"
    customer = new_customer(gateway)
    usage, cost = ask(customer, client_format, model, f"{phrase} {uuid.uuid4().hex}", stream)

    want = expected_cost(model, FRESH, OUTPUT, read, write, write_1h)
    account = customer.settled(1)
    row = customer.log()[0]
    assert micro(cost) == want == row["cost_micro_p"]
    assert account["balance_micro_p"] == 1000 * ONE_P - want == customer.ledger_sum()
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_tokens"], row["cache_write_1h_tokens"],
            row["output_tokens"], row["reasoning_tokens"]) == (
        FRESH + read + write + write_1h, read, write + write_1h if provider != "anthropic" else write,
        write_1h if provider == "anthropic" else 0, OUTPUT, reasoning)
    assert set(row["flags"]) <= {"input_far_above_estimate"}

    upstream_format = "anthropic" if provider == "anthropic" else "openai"
    behaviour = Behaviour(prompt_tokens=FRESH, completion_tokens=OUTPUT, cache_read=read, cache_write=write,
                          cache_write_1h=write_1h, reasoning=reasoning)
    if client_format == upstream_format:
        # Passthrough: the provider's own usage fields, with the cost beside them.
        own = anthropic_usage(behaviour) if provider == "anthropic" else provider_usage(provider, behaviour)
        if stream and provider == "anthropic":
            # The SDK's final message gathers the counts; the cost came in message_delta.
            assert usage == own
        else:
            assert usage == {**own, "cost": cost}
    elif client_format == "openai":
        assert usage["prompt_tokens"] == FRESH + read + write + write_1h
        assert usage["completion_tokens"] == OUTPUT
        assert usage["prompt_tokens_details"]["cached_tokens"] == read
    else:
        assert usage["input_tokens"] == FRESH
        assert usage["cache_read_input_tokens"] == read
        assert usage["cache_creation_input_tokens"] == write + write_1h
        assert usage["output_tokens"] == OUTPUT


def test_the_issues_cached_turns_cost_what_the_providers_bill(gateway, fake_upstream):
    customer = new_customer(gateway)
    turns = [
        ("anthropic", "claude-sonnet-4.5", "[[usage:100:50:10000]]", 4.05),
        ("anthropic", "claude-sonnet-4.5", "[[usage:100:50:0:10000]]", 38.55),
        ("openai", "gpt-5.2", "[[usage:100:50:10000]]", 2.625),
        ("openai", "deepseek-v3.2", "[[usage:100:50:10000]]", 0.329),
    ]
    for client_format, model, phrase, cost_p in turns:
        _, cost = ask(customer, client_format, model, phrase, stream=False)
        assert cost == cost_p
    customer.settled(len(turns))
    assert sorted(row["cost_micro_p"] for row in customer.log()) == sorted(
        int(Decimal(str(cost_p)) * 10**6) for *_, cost_p in turns)


@pytest.mark.parametrize("client_format", ["openai", "anthropic"])
def test_a_prompt_above_the_long_context_tier_is_priced_at_the_tier_as_a_whole(gateway, fake_upstream, client_format):
    customer = new_customer(gateway, balance_micro_p=10_000 * ONE_P)
    usage, cost = ask(customer, client_format, "gemini-3.1-pro", "[[usage:150000:50:60000]]", stream=True)
    want = expected_cost("gemini-3.1-pro", 150_000, 50, 60_000)
    # 150,000 × 4,000 + 60,000 × 400 (the cache read scaled to the tier) + 50 × 18,000
    assert want == 624_900_000
    customer.settled(1)
    row = customer.log()[0]
    assert micro(cost) == want == row["cost_micro_p"]
    assert row["price_tier"] == 200_000


def test_an_anthropic_client_of_a_long_context_claude_request_pays_the_tier(gateway, fake_upstream):
    customer = new_customer(gateway, balance_micro_p=10_000 * ONE_P)
    _, cost = ask(customer, "anthropic", "claude-sonnet-4.5", "[[usage:1000:50:200000:0:1000]]", stream=False,
                  extra_headers={"anthropic-beta": "context-1m-2025-08-07"})
    # 1,000 × 6,000 + 200,000 × 600 + 1,000 × 12,000 + 50 × 22,500
    assert micro(cost) == 139_125_000 == expected_cost("claude-sonnet-4.5", 1000, 50, 200_000, 0, 1000)


def test_text_completions_and_embeddings_carry_their_cost(gateway, fake_upstream):
    customer = new_customer(gateway)
    client = customer.openai()
    completion = client.completions.create(model="claude-haiku-4.5", prompt="[[usage:100:50:1000]] hi", max_tokens=100)
    embedding = client.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    streamed = list(client.completions.create(model="deepseek-v3.2", prompt="[[usage:100:50:1000]] hi", max_tokens=100,
                                              stream=True, stream_options={"include_usage": True}))
    customer.settled(3)
    costs = {row["model"]: row["cost_micro_p"] for row in customer.log()}
    assert completion.usage.prompt_tokens == 1100
    assert micro(completion.usage.cost) == costs["claude-haiku-4.5"] == expected_cost("claude-haiku-4.5", 100, 50, 1000)
    assert micro(embedding.usage.cost) == costs["text-embedding-3-small"] == 16 * 20
    assert micro(streamed[-1].usage.cost) == costs["deepseek-v3.2"] == expected_cost("deepseek-v3.2", 100, 50, 1000)


def test_an_answer_without_upstream_usage_still_carries_the_estimated_cost(gateway, fake_upstream):
    customer = new_customer(gateway)
    answer = requests.post(f"{gateway.url}/v1/messages", headers={"x-api-key": customer.key}, timeout=30, json={
        "model": "gpt-5.2", "max_tokens": 100, "messages": [{"role": "user", "content": "[[nousage]] hi"}]})
    assert answer.status_code == 200
    customer.settled(1)
    row = customer.log()[0]
    assert row["estimated"] is True
    assert micro(answer.json()["usage"]["cost"]) == row["cost_micro_p"] > 0


def test_the_cost_is_written_as_an_exact_decimal(gateway, fake_upstream):
    customer = new_customer(gateway)
    answer = requests.post(f"{gateway.url}/v1/chat/completions", headers={"Authorization": f"Bearer {customer.key}"},
                           timeout=30, json={"model": "claude-sonnet-4.5", "max_tokens": 100,
                                             "messages": [{"role": "user", "content": "[[usage:100:50:10000]]"}]})
    assert b'"cost":4.05}' in answer.content or b'"cost":4.05,' in answer.content


@pytest.mark.parametrize("client_format, model", [
    ("openai", "deepseek-v3.2"), ("openai", "claude-haiku-4.5"), ("anthropic", "deepseek-v3.2"),
])
def test_a_stream_without_upstream_usage_ends_with_the_estimated_cost(gateway, fake_upstream, client_format, model):
    customer = new_customer(gateway)
    usage, cost = ask(customer, client_format, model, f"[[nousage]] {uuid.uuid4().hex}", stream=True)
    customer.settled(1)
    row = customer.log()[0]
    assert row["estimated"] is True
    assert micro(cost) == row["cost_micro_p"] > 0
    assert usage["completion_tokens" if client_format == "openai" else "output_tokens"] == row["output_tokens"]


def test_a_text_completion_stream_of_kimi_ends_with_its_usage_and_cost(gateway, fake_upstream):
    customer = new_customer(gateway)
    chunks = list(customer.openai().completions.create(
        model="kimi-k2.5", prompt="[[usage:100:50:1000]] hi", max_tokens=100, stream=True,
        stream_options={"include_usage": True}))
    customer.settled(1)
    assert chunks[-1].usage.prompt_tokens == 1100
    assert micro(chunks[-1].usage.cost) == customer.log()[0]["cost_micro_p"] == expected_cost("kimi-k2.5", 100, 50, 1000)


def test_an_anthropic_stream_without_upstream_usage_ends_with_the_estimated_cost(gateway, fake_upstream):
    # Read as raw events: the SDK itself cannot take a message_start without usage.
    customer = new_customer(gateway)
    answer = requests.post(f"{gateway.url}/v1/messages", headers={"x-api-key": customer.key}, timeout=30, json={
        "model": "claude-haiku-4.5", "max_tokens": 100, "stream": True,
        "messages": [{"role": "user", "content": "[[nousage]] hi"}]})
    events = [line[len("data: "):] for line in answer.text.splitlines() if line.startswith("data: ")]
    delta = next(json.loads(event, parse_float=Decimal) for event in events if '"message_delta"' in event)
    customer.settled(1)
    row = customer.log()[0]
    assert row["estimated"] is True
    assert delta["usage"]["cost"] * 10**6 == row["cost_micro_p"] > 0
    assert delta["usage"]["output_tokens"] == row["output_tokens"]
