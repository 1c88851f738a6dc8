"""Per-key controls across gateway processes on one database: two ``python -m gateway``
processes, and one with ``GATEWAY_WORKERS=2``. A limit holds for all of them together,
and a change reaches every process within 2 seconds."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from gwapi_helpers import ONE_P, new_customer
from test_gwapi_key_controls import CHAT, MESSAGES, body_for, patch_key
from test_gwapi_limits import all_at_once, post

from fixtures.gateway import start_gateway


@pytest.fixture(scope="module")
def second_gateway(gateway):
    """Another gateway process on the session's database."""
    handle = start_gateway(gateway.env)
    yield handle
    assert handle.stop() == 0


def test_a_burst_on_two_processes_serves_the_rpm(gateway, second_gateway, fake_upstream):
    """60 requests at once on a 30 RPM key, split between two processes: 28 to 32 served."""
    customer = new_customer(gateway, rpm_limit=30)
    urls = [gateway.url, second_gateway.url]
    answers = all_at_once(60, lambda i: post(urls[i % 2], customer.key, MESSAGES if i % 3 else CHAT,
                                                 body_for(MESSAGES if i % 3 else CHAT)))
    served = sum(a.status_code == 200 for a in answers)
    assert 28 <= served <= 32
    assert {a.status_code for a in answers} == {200, 429}


def test_a_burst_on_two_workers_serves_the_rpm(gateway, fake_upstream):
    workers = start_gateway({**gateway.env, "GATEWAY_WORKERS": "2"})
    try:
        customer = new_customer(workers, rpm_limit=30)
        answers = all_at_once(60, lambda i: post(workers.url, customer.key, CHAT, body_for(CHAT)))
    finally:
        assert workers.stop() == 0
    served = sum(a.status_code == 200 for a in answers)
    assert 28 <= served <= 32


def test_a_budget_holds_across_processes(gateway, second_gateway, fake_upstream):
    customer = new_customer(gateway, balance_micro_p=10_000 * ONE_P, budget_micro_p=50 * ONE_P, budget_period="month")
    marker = uuid.uuid4().hex
    body = body_for(CHAT, "gpt-5.2", f"[[delay]] [[usage:0:3000]] {marker}", max_tokens=3000)
    urls = [gateway.url, second_gateway.url]
    answers = all_at_once(30, lambda i: post(urls[i % 2], customer.key, CHAT, body))
    assert sum(a.status_code == 200 for a in answers) == 1
    assert {a.json()["error"]["code"] for a in answers if a.status_code != 200} == {"key_budget_exceeded"}
    assert len(fake_upstream.received(marker)) == 1


@pytest.mark.parametrize("control", ["allowed_models", "allowed_ips", "rpm_limit", "budget"])
def test_a_change_reaches_the_other_process_within_two_seconds(gateway, second_gateway, fake_upstream, control):
    customer = new_customer(gateway)
    assert post(second_gateway.url, customer.key, CHAT, body_for(CHAT)).status_code == 200
    change = {
        "allowed_models": {"allowed_models": ["gpt-5.2"]},
        "allowed_ips": {"allowed_ips": ["192.0.2.0/24"]},
        "rpm_limit": {"rpm_limit": 1},
        "budget": {"budget_micro_p": 1, "budget_period": "day"},
    }[control]
    patch_key(gateway, customer, **change)
    changed = time.monotonic()
    while True:
        status = post(second_gateway.url, customer.key, CHAT, body_for(CHAT)).status_code
        if status != 200:
            break
        assert time.monotonic() - changed < 2, f"{control} not applied by the other process within 2 s"
        time.sleep(0.05)
    assert status == {"allowed_models": 403, "allowed_ips": 403, "rpm_limit": 429, "budget": 402}[control]


def test_an_account_limit_reaches_the_other_process(gateway, second_gateway, fake_upstream):
    customer = new_customer(gateway)
    gateway.internal("PATCH", f"/accounts/{customer.account_id}", json={"rpm_limit": 1})
    deadline = time.monotonic() + 20
    statuses = []
    while time.monotonic() < deadline and 429 not in statuses:
        statuses.append(post(second_gateway.url, customer.key, CHAT, body_for(CHAT)).status_code)
    assert 429 in statuses


def test_a_trusted_proxys_forwarded_address_is_the_client(gateway, fake_upstream):
    behind_proxy = start_gateway({**gateway.env, "TRUST_PROXY": "1"})
    try:
        customer = new_customer(behind_proxy, allowed_ips=["203.0.113.0/24"])

        def call(forwarded: str | None) -> requests.Response:
            headers = {"Authorization": f"Bearer {customer.key}"}
            if forwarded is not None:
                headers["X-Forwarded-For"] = forwarded
            return requests.post(f"{behind_proxy.url}{CHAT}", json=body_for(CHAT), headers=headers, timeout=30)

        assert call("203.0.113.9").status_code == 200
        # The entry the client wrote itself, left of the proxy's, is not believed.
        refused = call("203.0.113.9, 198.51.100.4")
        assert refused.status_code == 403
        assert "198.51.100.4" in refused.json()["error"]["message"]
        # No header: the request did not come through the proxy; the peer is the client.
        assert call(None).status_code == 403
    finally:
        assert behind_proxy.stop() == 0
