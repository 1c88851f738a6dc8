"""A model served over several channels: failover before the first byte, never after, one
charge at the catalogue price, every try in the request log, breakers every process shares."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import requests
from channel_upstream import (
    BREAKER_COOLDOWN,
    CHANNEL_COSTS,
    COMPLETION_TOKENS,
    PIECES,
    PROMPT_TOKENS,
    channel_catalog,
    channel_gateway_env,
    charge,
)
from gwapi_helpers import ONE_P, new_customer

from fixtures.gateway import start_gateway

# Each way a channel fails before its first content, and whether it is tried streamed.
FAILURES = [
    ("status:500", False), ("status:502", True), ("status:503", False), ("status:429", True),
    ("status:529", False), ("status:401", False), ("status:403", True), ("status:404", False),
    ("hang", False), ("hang", True), ("drop", False), ("drop", True), ("error_event", True),
]
FAILOVER_MODELS = [f"fo{index}" for index in range(len(FAILURES))]
MODELS = FAILOVER_MODELS + ["order", "allfail", "client", "cut", "breaker", "probe", "shared", "anth", "load"]
ANTHROPIC_MODELS = ("anth",)


@pytest.fixture(scope="module")
def providers(channel_upstream, tmp_path_factory):
    return channel_catalog(tmp_path_factory.mktemp("channels") / "providers.toml", channel_upstream.url, MODELS,
                           anthropic=ANTHROPIC_MODELS)


@pytest.fixture(scope="module")
def routed(channel_upstream, gateway_database_url, providers):
    handle = start_gateway(channel_gateway_env(channel_upstream, gateway_database_url, providers, MODELS))
    yield handle
    handle.stop()


def _chat(gateway, key: str, model: str, stream: bool = False, timeout: float = 30) -> requests.Response:
    return requests.post(f"{gateway.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream,
                               "max_tokens": 100},
                         timeout=timeout, stream=stream)


def _text(answer: requests.Response, stream: bool) -> str:
    if not stream:
        return answer.json()["choices"][0]["message"]["content"]
    text = []
    for line in answer.iter_lines():
        if line.startswith(b"data: {"):
            chunk = orjson.loads(line[6:])
            for choice in chunk.get("choices") or ():
                text.append(choice["delta"].get("content") or "")
    return "".join(text)


def _logged(gateway, account_id: str, count: int = 1, timeout: float = 20) -> list[dict]:
    """The account's request log rows as the operator sees them, once ``count`` are there (oldest first)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = gateway.internal("GET", "/admin/requests", params={"account_id": account_id}).json()["data"]
        if len(rows) >= count:
            return list(reversed(rows))
        assert time.monotonic() < deadline, f"only {len(rows)} of {count} requests logged"
        time.sleep(0.05)


def _channel(model: str, letter: str) -> str:
    return f"{model}-{letter}:{model}-up-{letter}"


@pytest.mark.parametrize(("model", "mode", "stream"), [(m, *f) for m, f in zip(FAILOVER_MODELS, FAILURES)])
def test_a_channel_failing_before_its_first_content_hands_the_request_to_the_next(
        routed, channel_upstream, model, mode, stream):
    channel_upstream.fail(f"{model}-a", mode)
    customer = new_customer(routed)
    answer = _chat(routed, customer.key, model, stream)
    assert answer.status_code == 200, answer.text
    assert _text(answer, stream) == "".join(PIECES)
    assert [hit.model for hit in channel_upstream.received(f"{model}-a")] == [f"{model}-up-a"]
    assert [hit.model for hit in channel_upstream.received(f"{model}-b")] == [f"{model}-up-b"]
    assert channel_upstream.received(f"{model}-c") == []
    # Charged once, at the catalogue price, whatever the serving channel costs.
    assert customer.settled(1)["balance_micro_p"] == 1000 * ONE_P - charge()
    [row] = _logged(routed, customer.account_id)
    assert row["channel"] == _channel(model, "b")
    assert row["cost_micro_p"] == charge()
    b_input, b_output = CHANNEL_COSTS["b"]
    assert row["upstream_cost_micro_p"] == PROMPT_TOKENS * b_input + COMPLETION_TOKENS * b_output
    first, second = row["attempts"]
    assert first["channel"] == _channel(model, "a") and first["status"] >= 429
    assert (second["channel"], second["status"], second["error_class"]) == (_channel(model, "b"), 200, None)


def test_channels_are_tried_in_order_and_the_last_error_answers_when_all_fail(routed, channel_upstream):
    channel_upstream.fail("order-a", "status:500")
    channel_upstream.fail("order-b", "status:503")
    customer = new_customer(routed)
    assert _chat(routed, customer.key, "order").status_code == 200
    [row] = _logged(routed, customer.account_id)
    assert [(a["channel"], a["status"]) for a in row["attempts"]] == [
        (_channel("order", "a"), 500), (_channel("order", "b"), 503), (_channel("order", "c"), 200)]

    for letter in "abc":
        channel_upstream.fail(f"allfail-{letter}", "status:502" if letter != "c" else "status:500")
    answer = _chat(routed, customer.key, "allfail")
    assert answer.status_code == 500
    assert "allfail-c" in answer.json()["error"]["message"]
    assert customer.settled(2)["balance_micro_p"] == 1000 * ONE_P - charge()
    row = _logged(routed, customer.account_id, 2)[1]
    assert [a["status"] for a in row["attempts"]] == [502, 502, 500]
    assert row["cost_micro_p"] == 0 and row["channel"] == _channel("allfail", "c")


def test_a_client_error_is_answered_at_once_and_never_tried_elsewhere(routed, channel_upstream):
    channel_upstream.fail("client-a", "status:400")
    customer = new_customer(routed)
    answer = _chat(routed, customer.key, "client")
    assert answer.status_code == 400
    assert channel_upstream.received("client-b") == []
    [row] = _logged(routed, customer.account_id)
    assert [(a["channel"], a["status"]) for a in row["attempts"]] == [(_channel("client", "a"), 400)]
    assert customer.settled(1)["balance_micro_p"] == 1000 * ONE_P


def test_a_stream_that_sent_bytes_is_never_tried_again(routed, channel_upstream):
    channel_upstream.fail("cut-a", "cut")
    customer = new_customer(routed)
    answer = _chat(routed, customer.key, "cut", stream=True)
    assert answer.status_code == 200
    body = b"".join(answer.iter_content(None))
    assert PIECES[0].encode() in body and b'"error"' in body
    assert channel_upstream.received("cut-b") == []
    [row] = _logged(routed, customer.account_id)
    assert [(a["channel"], a["error_class"]) for a in row["attempts"]] == [
        (_channel("cut", "a"), "upstream_broken_stream")]
    assert customer.settled(1)["balance_micro_p"] == 1000 * ONE_P


def test_an_anthropic_error_event_after_message_start_still_fails_over(routed, channel_upstream):
    channel_upstream.fail("anth-a", "error_event")
    customer = new_customer(routed)
    answer = requests.post(f"{routed.url}/v1/messages", headers={"x-api-key": customer.key},
                           json={"model": "anth", "max_tokens": 100, "stream": True,
                                 "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert answer.status_code == 200
    assert b"event: error" not in answer.content
    assert b"".join(piece.encode() for piece in PIECES[:1]) in answer.content
    assert len(channel_upstream.received("anth-b")) == 1
    assert customer.settled(1)["balance_micro_p"] == 1000 * ONE_P - charge()


def _channel_state(gateway, model: str, suffix: str) -> str:
    """The breaker state of one channel as ``gateway``'s process knows it."""
    models = gateway.internal("GET", "/admin/channels").json()["models"]
    channels = next(m for m in models if m["id"] == model)["channels"]
    return next(c for c in channels if c["id"] == _channel(model, suffix))["state"]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_breaker_opens_after_failures_in_a_row_and_a_probe_closes_it(routed, channel_upstream):
    channel_upstream.fail("breaker-a", "status:500")
    customer = new_customer(routed)
    for _ in range(2):
        assert _chat(routed, customer.key, "breaker").status_code == 200
    assert len(channel_upstream.received("breaker-a")) == 2
    # Open: skipped, so the request goes straight to the next channel.
    assert _chat(routed, customer.key, "breaker").status_code == 200
    assert len(channel_upstream.received("breaker-a")) == 2
    row = _logged(routed, customer.account_id, 3)[2]
    assert [a["channel"] for a in row["attempts"]] == [_channel("breaker", "b")]
    channel_upstream.fail("breaker-a", "ok")
    time.sleep(BREAKER_COOLDOWN + 0.2)
    # Cooled down: the next request probes it, and its success closes the breaker.
    for _ in range(2):
        assert _chat(routed, customer.key, "breaker").status_code == 200
    assert len(channel_upstream.received("breaker-a")) == 4
    assert customer.settled(5)["balance_micro_p"] == 1000 * ONE_P - 5 * charge()


def test_a_failed_probe_opens_the_breaker_for_another_cool_down(routed, channel_upstream):
    channel_upstream.fail("probe-a", "status:503")
    customer = new_customer(routed)
    for _ in range(2):
        _chat(routed, customer.key, "probe")
    time.sleep(BREAKER_COOLDOWN + 0.2)
    assert _chat(routed, customer.key, "probe").status_code == 200
    assert len(channel_upstream.received("probe-a")) == 3
    assert _chat(routed, customer.key, "probe").status_code == 200
    assert len(channel_upstream.received("probe-a")) == 3


def test_two_gateway_processes_agree_on_a_broken_channel(channel_upstream, gateway_database_url, providers):
    # A long cool-down: the channel stays open until the last check, however slow the machine.
    env = {**channel_gateway_env(channel_upstream, gateway_database_url, providers, MODELS),
           "GATEWAY_BREAKER_COOLDOWN": "120"}
    first = start_gateway(env)
    other = start_gateway(env)
    try:
        channel_upstream.fail("shared-a", "status:503")
        customer = new_customer(first)
        for _ in range(2):
            assert _chat(first, customer.key, "shared").status_code == 200
        assert len(channel_upstream.received("shared-a")) == 2
        # The other process never saw the channel fail; within a few polls it skips it too.
        _wait_for(lambda: _channel_state(other, "shared", "a") == "open", 20,
                  "the other process did not adopt the open breaker")
        for _ in range(3):
            assert _chat(other, customer.key, "shared").status_code == 200
        assert len(channel_upstream.received("shared-a")) == 2
        assert len(channel_upstream.received("shared-b")) == 5
    finally:
        other.stop()
        first.stop()


def test_the_primary_failing_mid_load_fails_no_customer_request(routed, channel_upstream):
    customer = new_customer(routed)
    channel_upstream.fail("load-a", "ok")

    def one(index: int) -> int:
        if index == 20:
            channel_upstream.fail("load-a", "status:503")
        return _chat(routed, customer.key, "load", stream=index % 2 == 0).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, range(60)))
    assert statuses == [200] * 60
    assert channel_upstream.received("load-b")
    assert customer.settled(60)["balance_micro_p"] == 1000 * ONE_P - 60 * charge()
