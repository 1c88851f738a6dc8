"""A 402 for too little balance says what the account can do on this server: top up only where
card top-ups are on."""

from __future__ import annotations

import requests
from gwapi_helpers import new_customer

from fixtures.gateway import start_gateway

BODY = {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "hello"}]}


def _refusal(gateway) -> str:
    customer = new_customer(gateway, balance_micro_p=0)
    answer = requests.post(f"{gateway.url}/v1/chat/completions", json=BODY, timeout=30,
                           headers={"Authorization": f"Bearer {customer.key}"})
    assert answer.status_code == 402, answer.text
    return answer.json()["error"]["message"]


def test_without_top_ups_the_402_does_not_send_the_customer_to_billing(gateway):
    message = _refusal(gateway)
    assert "Top up" not in message
    assert "Card top-ups are not available on this server" in message and "operator" in message


def test_with_top_ups_the_402_points_to_billing(gateway_env):
    handle = start_gateway({**gateway_env, "STRIPE_SECRET_KEY": "sk_test_balance_message"})
    try:
        message = _refusal(handle)
        assert "Top up your SAMA-P balance in the portal (Billing)" in message
        assert "sk_test" not in message
    finally:
        handle.stop()
