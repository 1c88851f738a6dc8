"""Money on the public API: reservations under concurrency, abandoned streams, estimated usage."""

from __future__ import annotations

import http.client
import socket
import threading
from urllib.parse import urlparse

import orjson
import pytest
import requests
from gwapi_helpers import ONE_P, cost, new_customer

from fixtures.upstream import PROMPT_TOKENS, REPLY_TEXT, SLOW_CHUNKS
from gateway.proxy.tokens import count_text, estimate_chat_prompt, estimate_messages_prompt


def post(gateway, key, path, body):
    return requests.post(f"{gateway.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_exact_charge_for_reported_usage(gateway, fake_upstream):
    customer = new_customer(gateway)
    body = {"model": "gpt-5.2", "messages": [{"role": "user", "content": "[[usage:1000:2000]] price check"}]}
    answer = post(gateway, customer.key, "/v1/chat/completions", body)
    assert answer.status_code == 200
    account = customer.settled(1)
    # 1,000 × 1,750 + 2,000 × 14,000 micro-P
    assert account["balance_micro_p"] == 1000 * ONE_P - 29_750_000
    assert customer.log()[0]["cost_micro_p"] == 29_750_000
    assert customer.ledger_sum() == account["balance_micro_p"]


def test_fifty_concurrent_requests_cannot_overspend(gateway, fake_upstream):
    """The balance covers exactly four reservations: at most four of fifty requests run."""
    body = {"model": "deepseek-v3.2", "max_tokens": 1000,
            "messages": [{"role": "user", "content": "[[delay]] concurrency check"}]}
    reservation = estimate_chat_prompt(body) * 280 + 1000 * 420
    customer = new_customer(gateway, balance_micro_p=4 * reservation)
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(50)

    def call() -> None:
        start.wait()
        status = post(gateway, customer.key, "/v1/chat/completions", body).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=call) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    succeeded = statuses.count(200)
    assert len(statuses) == 50
    assert 1 <= succeeded <= 4
    assert statuses.count(402) == 50 - succeeded
    account = customer.settled(50)
    assert account["balance_micro_p"] == 4 * reservation - succeeded * cost("deepseek-v3.2")
    assert account["balance_micro_p"] >= 0
    assert customer.ledger_sum() == account["balance_micro_p"]


def _read_events_then_hang_up(gateway, key: str, path: str, body: dict, events: int) -> bytes:
    """Start a stream, read ``events`` SSE events, then drop the connection."""
    url = urlparse(gateway.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("POST", path, body=orjson.dumps(body),
                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    received = b""
    while received.count(b"\n\n") < events:
        received += response.read1(4096)
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    return received


@pytest.mark.parametrize("path, model, body", [
    ("/v1/chat/completions", "deepseek-v3.2", {}),
    ("/v1/chat/completions", "claude-haiku-4.5", {}),
    ("/v1/messages", "claude-haiku-4.5", {"max_tokens": 100}),
    ("/v1/messages", "deepseek-v3.2", {"max_tokens": 100}),
])
def test_abandoned_stream_is_billed_for_what_was_generated(gateway, fake_upstream, path, model, body):
    customer = new_customer(gateway)
    request = dict(body, model=model, stream=True, messages=[{"role": "user", "content": "[[slow]] tell me more"}])
    received = _read_events_then_hang_up(gateway, customer.key, path, request, events=3)
    assert b"w0" in received or b"message_start" in received
    # The gateway keeps reading the upstream to its usage, then settles the full answer.
    account = customer.settled(1, timeout=30)
    expected = cost(model, PROMPT_TOKENS, SLOW_CHUNKS)
    assert account["balance_micro_p"] == 1000 * ONE_P - expected
    row = customer.log()[0]
    assert row["status"] == 499
    assert row["error_class"] == "client_disconnected"
    assert (row["input_tokens"], row["output_tokens"], row["cost_micro_p"]) == (PROMPT_TOKENS, SLOW_CHUNKS, expected)
    assert row["estimated"] is False


@pytest.mark.parametrize("stream", [False, True])
def test_missing_upstream_usage_is_estimated_and_marked(gateway, fake_upstream, stream):
    customer = new_customer(gateway)
    body = {"model": "deepseek-v3.2", "stream": stream,
            "messages": [{"role": "user", "content": "[[nousage]] count it yourself"}]}
    answer = post(gateway, customer.key, "/v1/chat/completions", body)
    assert answer.status_code == 200
    assert REPLY_TEXT in answer.text or "Hello" in answer.text
    input_tokens = estimate_chat_prompt(body)
    output_tokens = count_text(REPLY_TEXT)
    account = customer.settled(1)
    assert account["balance_micro_p"] == 1000 * ONE_P - cost("deepseek-v3.2", input_tokens, output_tokens)
    row = customer.log()[0]
    assert row["estimated"] is True
    assert (row["input_tokens"], row["output_tokens"]) == (input_tokens, output_tokens)


def test_missing_usage_on_an_anthropic_stream_is_estimated(gateway, fake_upstream):
    customer = new_customer(gateway)
    body = {"model": "claude-haiku-4.5", "stream": True, "max_tokens": 50,
            "messages": [{"role": "user", "content": "[[nousage]] anthropic"}]}
    answer = post(gateway, customer.key, "/v1/messages", body)
    assert answer.status_code == 200
    account = customer.settled(1)
    input_tokens = estimate_messages_prompt(body)
    output_tokens = count_text(REPLY_TEXT)
    assert account["balance_micro_p"] == 1000 * ONE_P - cost("claude-haiku-4.5", input_tokens, output_tokens)
    assert customer.log()[0]["estimated"] is True


def test_time_to_first_token_is_recorded_for_slow_streams(gateway, fake_upstream):
    customer = new_customer(gateway)
    answer = post(gateway, customer.key, "/v1/chat/completions", {
        "model": "deepseek-v3.2", "stream": True, "messages": [{"role": "user", "content": "[[slow]] ttft"}]})
    assert answer.status_code == 200
    customer.settled(1)
    row = customer.log()[0]
    # The first token came long before the last one; both were recorded.
    assert row["ttft_ms"] is not None
    assert row["ttft_ms"] < row["latency_ms"]
    assert row["latency_ms"] - row["ttft_ms"] >= (SLOW_CHUNKS - 1) * 100 * 0.8


@pytest.mark.parametrize("path, model, extra", [
    ("/v1/chat/completions", "deepseek-v3.2", {}),
    ("/v1/messages", "deepseek-v3.2", {"max_tokens": 100}),
])
def test_streams_reach_the_client_while_the_upstream_is_still_generating(gateway, fake_upstream, path, model, extra):
    customer = new_customer(gateway)
    marker = f"[[slow]] incremental {path} {customer.account_id}"
    url = urlparse(gateway.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("POST", path, body=orjson.dumps(dict(extra, model=model, stream=True,
                                                      messages=[{"role": "user", "content": marker}])),
                 headers={"Authorization": f"Bearer {customer.key}", "Content-Type": "application/json"})
    response = conn.getresponse()
    received = b""
    while b"w1" not in received:
        received += response.read1(4096)
    # Two words are here; the upstream has most of its answer still to send.
    assert fake_upstream.last(marker).finished is False
    received += response.read()
    conn.close()
    assert fake_upstream.last(marker).finished is True
    assert f"w{SLOW_CHUNKS - 1}".encode() in received
