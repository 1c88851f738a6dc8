"""Bad input on the public API: each a 4xx in the endpoint's error shape, never a 5xx, never a charge.

After every refusal below, the account's balance is what it was and its ledger holds only
the top-up: nothing was reserved for good, nothing was billed.
"""

from __future__ import annotations

import pytest
import requests

CREDIT = 50 * 1_000_000
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
GOOD_MESSAGES = [{"role": "user", "content": "hi"}]

BAD_BODIES = [
    ("malformed JSON", b'{"model": "deepseek-v3.2", "messages": [', None),
    ("broken UTF-8", b'{"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "\xc3\x28"}]}', None),
    ("not an object", b'"just a string"', None),
    ("empty body", b"", None),
    ("missing model", None, {"messages": GOOD_MESSAGES, "max_tokens": 10}),
    ("model of the wrong type", None, {"model": 42, "messages": GOOD_MESSAGES, "max_tokens": 10}),
    ("messages of the wrong type", None, {"model": "deepseek-v3.2", "messages": "hi", "max_tokens": 10}),
    ("empty messages", None, {"model": "deepseek-v3.2", "messages": [], "max_tokens": 10}),
    ("negative max_tokens", None, {"model": "deepseek-v3.2", "messages": GOOD_MESSAGES, "max_tokens": -1}),
    ("max_tokens as text", None, {"model": "deepseek-v3.2", "messages": GOOD_MESSAGES, "max_tokens": "ten"}),
    ("stream as text", None, {"model": "deepseek-v3.2", "messages": GOOD_MESSAGES, "max_tokens": 10,
                              "stream": "yes"}),
    ("unknown role", None, {"model": "deepseek-v3.2", "messages": [{"role": "wizard", "content": "x"}],
                            "max_tokens": 10}),
    ("unknown model", None, {"model": "gpt-0", "messages": GOOD_MESSAGES, "max_tokens": 10}),
]


def _post(gateway, path: str, key: str, raw: bytes | None, body: dict | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return requests.post(f"{gateway.url}{path}", data=raw, json=body if raw is None else None,
                         headers=headers, timeout=30)


def _assert_shape(answer: requests.Response, path: str) -> None:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    body = answer.json()
    if path == MESSAGES:
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    else:
        assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    assert body["error"]["message"] and "Traceback" not in answer.text


def _ledger(gateway, account_id: str) -> list[dict]:
    return gateway.internal("GET", f"/accounts/{account_id}/ledger", params={"limit": 200}).json()["data"]


@pytest.fixture(scope="module")
def account(gateway, fake_upstream):
    account_id = gateway.create_account(CREDIT)
    return account_id, gateway.create_key(account_id)["key"]


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
@pytest.mark.parametrize("label, raw, body", BAD_BODIES, ids=[case[0] for case in BAD_BODIES])
def test_bad_bodies_are_a_clear_4xx_and_cost_nothing(gateway, account, path, label, raw, body):
    account_id, key = account
    answer = _post(gateway, path, key, raw, body)
    _assert_shape(answer, path)
    assert gateway.balance(account_id) == CREDIT
    assert [entry["kind"] for entry in _ledger(gateway, account_id)] == ["credit"]


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
def test_a_huge_body_is_413_and_costs_nothing(gateway, account, path):
    account_id, key = account
    body = {"model": "deepseek-v3.2", "max_tokens": 10, "messages": [{"role": "user", "content": "x" * (6 << 20)}]}
    answer = _post(gateway, path, key, None, body)
    assert answer.status_code == 413
    _assert_shape(answer, path)
    assert gateway.balance(account_id) == CREDIT


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
def test_unknown_top_level_fields_never_break_the_gateway(gateway, path, fake_upstream):
    """Providers add fields all the time: an unknown one is passed on or refused, never a 5xx."""
    key = gateway.create_key(gateway.create_account(CREDIT))["key"]
    body = {"model": "deepseek-v3.2", "max_tokens": 10, "messages": GOOD_MESSAGES,
            "frobnicate": {"deeply": ["nested", 1, None]}}
    answer = _post(gateway, path, key, None, body)
    assert answer.status_code == 200 or 400 <= answer.status_code < 500, answer.text[:300]
    if answer.status_code != 200:
        _assert_shape(answer, path)


def test_the_ledger_still_sums_after_the_barrage(gateway, account):
    account_id, _ = account
    entries = _ledger(gateway, account_id)
    assert sum(entry["amount_micro_p"] for entry in entries) == gateway.balance(account_id)
