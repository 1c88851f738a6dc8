"""The one allowance rule and untrusted usage, through a real gateway process.

Every limit (the balance, the key's spending limit) is reserved before the upstream call;
a request whose worst case does not fit is sent with a lower output bound, or refused
with the code of the limit that ran out. Whatever output bound the reservation assumed
is the one the upstream is sent, and usage an upstream reports is clamped to what the
request could have used.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
import requests
from gwapi_helpers import ONE_P, new_customer

from fixtures.gateway import start_gateway
from gateway.proxy.tokens import estimate_chat_prompt, estimate_messages_prompt

MIN_OUTPUT = 1024  # GATEWAY_MIN_OUTPUT_TOKENS's default


def post(url: str, key: str, path: str, body: dict) -> requests.Response:
    return requests.post(f"{url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def all_at_once(calls: int, call) -> list[requests.Response]:
    """Run ``call(i)`` in ``calls`` threads released together; the answers in order."""
    answers: list = [None] * calls
    start = threading.Barrier(calls)

    def run(i: int) -> None:
        start.wait()
        answers[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return answers


def key_row(gateway, customer) -> dict:
    keys = gateway.internal("GET", f"/accounts/{customer.account_id}/keys").json()["data"]
    return next(k for k in keys if k["id"] == customer.key_id)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_key_limit_holds_under_concurrency(gateway, fake_upstream, processes):
    """30 calls at once on a key limited to 50 P, each costing 42 P: one is served."""
    customer = new_customer(gateway, balance_micro_p=10_000 * ONE_P, spend_limit_micro_p=50 * ONE_P)
    marker = uuid.uuid4().hex
    # gpt-5.2 output is 14,000 micro-P a token: 3,000 tokens are 42 P.
    body = {"model": "gpt-5.2", "max_tokens": 3000,
            "messages": [{"role": "user", "content": f"[[delay]] [[usage:0:3000]] {marker}"}]}
    second = start_gateway(gateway.env) if processes == 2 else None
    urls = [gateway.url] if second is None else [gateway.url, second.url]
    try:
        answers = all_at_once(30, lambda i: post(urls[i % len(urls)], customer.key, "/v1/chat/completions", body))
    finally:
        if second is not None:
            assert second.stop() == 0
    # Counted by outcome, so a failure shows what every call got.
    outcomes = Counter("served" if a.status_code == 200 else f"{a.status_code} {a.json()['error']['code']}"
                       for a in answers)
    assert outcomes == {"served": 1, "402 key_spend_limit_reached": 29}
    customer.settled(30)
    assert key_row(gateway, customer)["spent_micro_p"] == 42 * ONE_P
    assert len(fake_upstream.received(marker)) == 1


def test_without_max_tokens_the_balance_holds(gateway, fake_upstream):
    """40 calls at once without max_tokens whose upstream claims huge answers: never below zero."""
    customer = new_customer(gateway, balance_micro_p=20 * ONE_P)
    marker = uuid.uuid4().hex
    body = {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": f"[[usage:10:100000]] {marker}"}]}
    answers = all_at_once(40, lambda i: post(gateway.url, customer.key, "/v1/chat/completions", body))
    served = [a for a in answers if a.status_code == 200]
    assert served and all(a.status_code in (200, 402) for a in answers)
    account = customer.settled(40)
    assert account["balance_micro_p"] >= 0
    assert customer.ledger_sum() == account["balance_micro_p"]
    # The bound the reservation assumed went upstream, and the answer says which it was.
    sent = [r.body["max_tokens"] for r in fake_upstream.received(marker)]
    assert len(sent) == len(served)
    assert sorted(sent) == sorted(int(a.headers["x-samalink-max-tokens"]) for a in served)
    assert all(MIN_OUTPUT <= bound <= 8192 for bound in sent)
    rows = [r for r in customer.log() if r["status"] == 200]
    assert all(r["output_tokens"] <= 8192 and "output_above_bound" in r["flags"] for r in rows)


def test_a_small_balance_is_served_with_a_lower_bound(gateway, fake_upstream):
    marker = uuid.uuid4().hex
    body = {"model": "claude-haiku-4.5", "max_tokens": 32000,
            "thinking": {"type": "enabled", "budget_tokens": 16000},
            "messages": [{"role": "user", "content": f"a small turn {marker}"}]}
    # The worst case of a prompt is every token written to the cache (1,000 micro-P each for Haiku).
    prompt_cost = estimate_messages_prompt(body) * 1000
    # Room for 2,000 output tokens at 4,000 micro-P each: far below the 32,000 asked for.
    customer = new_customer(gateway, balance_micro_p=prompt_cost + 2000 * 4000)
    answer = post(gateway.url, customer.key, "/v1/messages", body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-samalink-max-tokens"] == "2000"
    upstream = fake_upstream.last(marker).body
    assert upstream["max_tokens"] == 2000
    assert upstream["thinking"] == {"type": "enabled", "budget_tokens": 1999}
    account = customer.settled(1)
    assert 0 <= account["balance_micro_p"] < prompt_cost + 2000 * 4000


@pytest.mark.parametrize("path, body, code", [
    ("/v1/messages", {"model": "claude-haiku-4.5", "max_tokens": 32000}, "insufficient_balance"),
    ("/v1/chat/completions", {"model": "claude-haiku-4.5"}, "insufficient_balance"),
])
def test_below_the_minimum_output_the_request_is_refused_before_the_upstream(gateway, fake_upstream, path, body, code):
    marker = uuid.uuid4().hex
    body = dict(body, messages=[{"role": "user", "content": f"too poor {marker}"}])
    # Just short of the prompt plus the minimum output bound.
    customer = new_customer(gateway, balance_micro_p=MIN_OUTPUT * 4000 - 1)
    answer = post(gateway.url, customer.key, path, body)
    assert answer.status_code == 402
    error = answer.json()["error"]
    assert error.get("code", code) == code
    assert f"{MIN_OUTPUT:,} tokens of output" in error["message"]
    assert fake_upstream.received(marker) == []


def test_a_smaller_max_tokens_of_the_clients_own_is_kept(gateway, fake_upstream):
    """A client asking for fewer tokens than the minimum needs only those to fit."""
    marker = uuid.uuid4().hex
    body = {"model": "deepseek-v3.2", "max_tokens": 20,
            "messages": [{"role": "user", "content": f"[[usage:5:20]] short {marker}"}]}
    customer = new_customer(gateway, balance_micro_p=estimate_chat_prompt(body) * 280 + 20 * 420)
    answer = post(gateway.url, customer.key, "/v1/chat/completions", body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-samalink-max-tokens"] == "20"
    assert fake_upstream.last(marker).body["max_tokens"] == 20


@pytest.mark.parametrize("usage, expected_in, expected_out, flag", [
    ("-1000000:5", 0, 5, "negative_input"),
    ("10:-50", 10, 0, "negative_output"),
    ("10:999999", 10, 100, "output_above_bound"),
    ("999999999:5", 128000, 5, "input_above_window"),
])
def test_untrusted_usage_is_clamped_and_flagged(gateway, fake_upstream, usage, expected_in, expected_out, flag):
    customer = new_customer(gateway)
    body = {"model": "deepseek-v3.2", "max_tokens": 100,
            "messages": [{"role": "user", "content": f"[[usage:{usage}]] check"}]}
    answer = post(gateway.url, customer.key, "/v1/chat/completions", body)
    assert answer.status_code == 200
    account = customer.settled(1)
    row = customer.log()[0]
    assert (row["input_tokens"], row["output_tokens"]) == (expected_in, expected_out)
    assert row["cost_micro_p"] == expected_in * 280 + expected_out * 420 >= 0
    assert flag in row["flags"]
    assert account["balance_micro_p"] == 1000 * ONE_P - row["cost_micro_p"]
    flagged = gateway.internal("GET", "/admin/requests", params={"account_id": customer.account_id, "flagged": "true"})
    assert [r["request_id"] for r in flagged.json()["data"]] == [row["request_id"]]


def test_plain_usage_is_not_flagged(gateway, fake_upstream):
    customer = new_customer(gateway)
    body = {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "ordinary"}]}
    assert post(gateway.url, customer.key, "/v1/chat/completions", body).status_code == 200
    customer.settled(1)
    assert customer.log()[0]["flags"] == []
    flagged = gateway.internal("GET", "/admin/requests", params={"account_id": customer.account_id, "flagged": "true"})
    assert flagged.json()["data"] == []
