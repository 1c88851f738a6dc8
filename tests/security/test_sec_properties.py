"""Property tests: the OpenAI ⇄ Anthropic translators keep meaning, the money arithmetic is exact."""

from __future__ import annotations

import re
from decimal import Decimal

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.catalog import Model
from gateway.accounting.pricing import TokenUsage, cost_micro_p
from gateway.proxy.translate import requests as treq
from gateway.proxy.translate import responses as tresp
from portal.money import MICRO_PER_P, format_p, format_usd, p_amount, parse_p

CLAUDE = Model("claude-haiku-4.5", "anthropic", "claude-haiku-4-5", "chat", "International Models",
               800, 4000, 64000, 200000)
DEEPSEEK = Model("deepseek-v3.2", "deepseek", "deepseek-chat", "chat", "Chinese Models", 280, 420, 8192, 128000)

text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
call_ids = st.from_regex(r"call_[A-Za-z0-9]{4,12}", fullmatch=True)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | text,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
                           max_leaves=8)
arguments = st.dictionaries(names, json_values, max_size=4)


@st.composite
def conversations(draw) -> list[dict]:
    """A valid chat: optional system, then user turns, assistant answers and tool round trips."""
    messages: list[dict] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(text)})
    for _ in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": draw(text)})
        if draw(st.booleans()):
            calls = [{"id": draw(call_ids), "type": "function",
                      "function": {"name": draw(names), "arguments": orjson.dumps(draw(arguments)).decode()}}
                     for _ in range(draw(st.integers(1, 2)))]
            if len({c["id"] for c in calls}) < len(calls):
                calls = calls[:1]
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            for call in calls:
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": draw(text)})
        else:
            messages.append({"role": "assistant", "content": draw(text)})
    return messages


def _meaning(messages: list[dict]) -> list[tuple]:
    """What a conversation says, independent of how each format spells it."""
    said = []
    for message in messages:
        role = message["role"]
        if role == "tool":
            said.append(("tool", message["tool_call_id"], message["content"]))
            continue
        if message.get("content"):
            said.append((role, "text", message["content"]))
        for call in message.get("tool_calls") or ():
            said.append((role, "call", call["id"], call["function"]["name"],
                         orjson.loads(call["function"]["arguments"])))
    return said


@settings(max_examples=150, deadline=None)
@given(conversations(), st.integers(1, 4096))
def test_chat_to_messages_and_back_keeps_every_turn_call_and_result(messages, max_tokens):
    anthropic = treq.chat_to_messages_request({"messages": messages, "max_tokens": max_tokens}, CLAUDE)
    roles = [m["role"] for m in anthropic["messages"]]
    assert all(a != b for a, b in zip(roles, roles[1:])), "Anthropic needs alternating roles"
    back = treq.messages_to_chat_request(dict(anthropic, model="x"), DEEPSEEK, "deepseek")
    assert _meaning(back["messages"]) == _meaning(messages)
    assert back["max_tokens"] == max_tokens


@settings(max_examples=150, deadline=None)
@given(st.lists(text, max_size=3), st.lists(st.tuples(call_ids, names, arguments), max_size=3, unique_by=lambda c: c[0]),
       st.integers(0, 10**7), st.integers(0, 10**7),
       st.sampled_from(["end_turn", "max_tokens", "tool_use", "stop_sequence"]))
def test_answers_translate_both_ways_without_losing_text_calls_or_usage(texts, calls, tokens_in, tokens_out, stop):
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
               "content": [{"type": "text", "text": t} for t in texts]
               + [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in calls],
               "stop_reason": stop, "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}
    chat = tresp.messages_to_chat_response(message, "claude-haiku-4.5")
    reply = chat["choices"][0]["message"]
    assert (reply["content"] or "") == "".join(texts)
    assert [(c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
            for c in reply.get("tool_calls", [])] == [(i, n, a) for i, n, a in calls]
    assert (chat["usage"]["prompt_tokens"], chat["usage"]["completion_tokens"]) == (tokens_in, tokens_out)
    again = tresp.chat_to_messages_response(chat, "claude-haiku-4.5")
    assert "".join(b["text"] for b in again["content"] if b["type"] == "text") == "".join(texts)
    assert [(b["id"], b["name"], b["input"]) for b in again["content"] if b["type"] == "tool_use"] == list(calls)
    assert again["usage"] == {"input_tokens": tokens_in, "output_tokens": tokens_out,
                              "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    # OpenAI has no "stopped at a stop sequence": both come back as a normal end of turn.
    assert again["stop_reason"] == ("end_turn" if stop == "stop_sequence" else stop)


prices = st.integers(0, 100_000)
token_counts = st.integers(0, 10**9)


@given(prices, prices, token_counts, token_counts, token_counts)
def test_cost_is_exact_integer_and_additive(input_price, output_price, a, b, out):
    model = Model("m", "p", "m", "chat", "g", input_price, output_price, 1000, 1000)
    cost = cost_micro_p(model, TokenUsage(input_tokens=a + b, output_tokens=out))
    assert isinstance(cost, int)
    assert cost == cost_micro_p(model, TokenUsage(input_tokens=a)) + cost_micro_p(model, TokenUsage(input_tokens=b, output_tokens=out))
    # Prices are P per 1M tokens, so micro-P per token: exact, with no rounding anywhere.
    assert Decimal(cost) / MICRO_PER_P == (Decimal(a + b) * input_price + Decimal(out) * output_price) / 10**6


micro_amounts = st.integers(-10**15, 10**15)


@given(micro_amounts)
def test_p_formatting_is_close_to_the_exact_amount_and_never_a_float_artefact(micro):
    shown = format_p(micro, unit=False)
    assert re.fullmatch(r"-?(<0\.0001|\d{1,3}(,\d{3})*(\.\d{2,4})?)", shown), shown
    if shown.lstrip("-").startswith("<"):
        assert abs(micro) < 100
        return
    value = Decimal(shown.replace(",", ""))
    exact = p_amount(micro)
    step = Decimal("0.0001") if abs(exact) < 100 else Decimal("0.01")
    assert abs(value - exact) <= step / 2
    assert len(shown.rpartition(".")[2]) <= 4


@given(micro_amounts)
def test_usd_formatting_rounds_to_cents_or_hundredths_of_a_cent(micro):
    shown = format_usd(micro)
    assert shown.count("$") == 1
    digits = shown.replace("-", "").replace("$", "").replace(",", "")
    if digits.startswith("<"):
        assert abs(micro) < 100_000
        return
    exact = abs(Decimal(micro)) / 1_000_000_000
    step = Decimal("0.0001") if exact < Decimal("0.01") else Decimal("0.01")
    assert abs(Decimal(digits) - exact) <= step / 2
    assert (micro < 0) == shown.startswith("-") or Decimal(digits) == 0


@given(st.integers(0, 10**15))
def test_typed_p_amounts_parse_back_exactly(micro):
    typed = f"{p_amount(micro):,f}"
    assert parse_p(typed) == micro
    assert parse_p(typed + " P") == micro
