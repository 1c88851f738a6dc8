"""A call whose record the database would refuse must not stop billing for everyone.

A model name with NUL (PostgreSQL refuses NUL in text) and an upstream reporting 10**17
tokens (a cost no BigInteger holds) were each retried forever by the batch writer: every
later call was answered but neither logged nor charged, and health said ok.
"""

from __future__ import annotations

import requests
from fault_common import ONE_P, assert_ledger_sums, chat, logged_requests, wait_until

COST = 1000 * 280 + 40 * 420  # deepseek-v3.2, [[usage:1000:40]] (within max_tokens 50)


def _normal_call_is_billed(gateway, key: str, account_id: str) -> None:
    answer = chat(gateway.url, key, "after the poison [[usage:1000:40]]")
    assert answer.status_code == 200, answer.text
    request_id = answer.headers["x-request-id"]
    assert wait_until(lambda: any(r["request_id"] == request_id for r in logged_requests(gateway, account_id)),
                      timeout=20), "the normal call was never logged"
    assert assert_ledger_sums(gateway, account_id) == 100 * ONE_P - COST
    health = gateway.internal("GET", "/health")
    body = health.json()
    assert health.status_code == 200 and body["status"] == "ok", body
    assert body["failed_flushes"] == 0 and body["queue_depth"] == 0 and isinstance(body["dead_letters"], int)


def test_a_nul_model_name_does_not_stop_billing(gateway, fake_upstream):
    poisoner = gateway.create_account(100 * ONE_P)
    poison_key = gateway.create_key(poisoner)["key"]
    refused = requests.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                            headers={"Authorization": f"Bearer {poison_key}"},
                            json={"model": "x\u0000y", "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 404
    assert wait_until(lambda: len(logged_requests(gateway, poisoner)) == 1, timeout=20)
    [row] = logged_requests(gateway, poisoner)
    assert "\x00" not in row["model"] and row["status"] == 404 and row["cost_micro_p"] == 0

    customer = gateway.create_account(100 * ONE_P)
    _normal_call_is_billed(gateway, gateway.create_key(customer)["key"], customer)


def test_an_absurd_token_count_does_not_stop_billing(gateway, fake_upstream):
    poisoner = gateway.create_account(100 * ONE_P)
    poison_key = gateway.create_key(poisoner)["key"]
    answer = chat(gateway.url, poison_key, "count this [[usage:100000000000000000:1]]")
    assert answer.status_code == 200, answer.text
    assert wait_until(lambda: len(logged_requests(gateway, poisoner)) == 1, timeout=20)
    assert_ledger_sums(gateway, poisoner)  # charged what was logged, no more, no less

    customer = gateway.create_account(100 * ONE_P)
    _normal_call_is_billed(gateway, gateway.create_key(customer)["key"], customer)
