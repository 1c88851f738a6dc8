"""POST /v1/messages/count_tokens: Anthropic counts Claude prompts, the tokenizer the rest; free."""

from __future__ import annotations

import uuid

import pytest
import requests
from gwapi_helpers import ONE_P, new_customer

from fixtures.upstream import COUNTED_TOKENS, UPSTREAM_KEYS
from gateway.proxy.tokens import estimate_messages_prompt

PATH = "/v1/messages/count_tokens"


def _body(model: str, text: str) -> dict:
    return {"model": model, "system": "You are terse.",
            "messages": [{"role": "user", "content": text}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]}


def test_claude_prompts_are_counted_by_anthropic_with_the_messages_headers(gateway, fake_upstream):
    customer = new_customer(gateway)
    marker = uuid.uuid4().hex
    counted = customer.anthropic().messages.count_tokens(
        **_body("claude-sonnet-4-5-20250929", marker),
        extra_headers={"anthropic-beta": "token-counting-2024-11-01"})
    assert counted.input_tokens == COUNTED_TOKENS
    seen = fake_upstream.last(marker)
    assert seen.path == "/anthropic/v1/messages/count_tokens"
    assert seen.headers["x-api-key"] == UPSTREAM_KEYS["ANTHROPIC_API_KEY"]
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["anthropic-beta"] == "token-counting-2024-11-01"
    assert seen.body["model"] == "claude-sonnet-4-5" and "max_tokens" not in seen.body
    account = customer.settled(1)
    assert account["balance_micro_p"] == 1000 * ONE_P
    [row] = customer.log()
    assert (row["endpoint"], row["model"], row["status"], row["cost_micro_p"]) == (
        PATH, "claude-sonnet-4.5", 200, 0)


def test_other_models_are_counted_by_the_gateways_tokenizer(gateway, fake_upstream):
    customer = new_customer(gateway)
    marker = uuid.uuid4().hex
    body = _body("deepseek-v3.2", marker)
    counted = customer.anthropic().messages.count_tokens(**body)
    assert counted.input_tokens == estimate_messages_prompt(body) > 0
    assert fake_upstream.received(marker) == []
    assert customer.settled(1)["balance_micro_p"] == 1000 * ONE_P
    assert [(row["endpoint"], row["cost_micro_p"]) for row in customer.log()] == [(PATH, 0)]


def _post(gateway, key: str | None, body) -> requests.Response:
    headers = {"x-api-key": key} if key else {}
    return requests.post(f"{gateway.url}{PATH}", json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("body, status, mentions", [
    ({"model": "deepseek-v3.2", "messages": []}, 400, "messages"),
    ({"model": "deepseek-v3.2", "messages": [{"role": "robot", "content": "x"}]}, 400, "messages.0.role"),
    ({"messages": [{"role": "user", "content": "x"}]}, 400, "model"),
    ({"model": "claude-sonnet-5", "messages": [{"role": "user", "content": "x"}]}, 404, "claude-sonnet-5"),
    ({"model": "text-embedding-3-small", "messages": [{"role": "user", "content": "x"}]}, 400, "embedding"),
])
def test_bad_bodies_are_refused_as_on_messages(gateway, body, status, mentions):
    customer = new_customer(gateway)
    answer = _post(gateway, customer.key, body)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["type"] == "error" and mentions in error["error"]["message"]


def test_a_key_is_needed_and_upstream_errors_follow_the_rule(gateway, fake_upstream):
    assert _post(gateway, None, _body("deepseek-v3.2", "hi")).status_code == 401
    assert _post(gateway, "sama_00000000-0000-4000-8000-000000000000", _body("deepseek-v3.2", "hi")).status_code == 401
    customer = new_customer(gateway)
    too_long = _post(gateway, customer.key, _body("claude-haiku-4.5", "[[error:413]]"))
    assert too_long.status_code == 413 and too_long.json()["error"]["type"] == "request_too_large"
    refused = _post(gateway, customer.key, _body("claude-haiku-4.5", "[[error:401]]"))
    assert refused.status_code == 502 and "operator" in refused.json()["error"]["message"]
    assert requests.get(f"{gateway.url}{PATH}", headers={"x-api-key": customer.key}, timeout=30).status_code == 405
    assert customer.settled(2)["balance_micro_p"] == 1000 * ONE_P
