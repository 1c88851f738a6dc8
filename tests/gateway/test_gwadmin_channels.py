"""The operator's channel routes: live health, switching a channel off and on, the test
button, provider keys entered in the console (encrypted, masked, rotated), and the margin."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
import sqlalchemy as sa
from channel_upstream import (
    BREAKER_FAILURES,
    CHANNEL_COSTS,
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    channel_catalog,
    channel_gateway_env,
    charge,
    env_of,
    key_of,
)
from cryptography.fernet import Fernet
from gwapi_helpers import ONE_P, new_customer

from fixtures.gateway import start_gateway

MODELS = ["health", "switch", "tested", "keys", "margin"]
SECRETS_KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="module")
def admin_env(channel_upstream, gateway_database_url, tmp_path_factory):
    providers = channel_catalog(tmp_path_factory.mktemp("admin-channels") / "providers.toml", channel_upstream.url,
                                MODELS)
    env = channel_gateway_env(channel_upstream, gateway_database_url, providers, MODELS)
    # The "keys" model's primary has no key in the environment: it is entered in the console.
    env[env_of("keys-a")] = ""
    # A channel opened here stays open while the checks read it, however slow the machine.
    return {**env, "SECRETS_KEY": SECRETS_KEY, "GATEWAY_BREAKER_COOLDOWN": "120"}


@pytest.fixture(scope="module")
def console_gateway(admin_env):
    handle = start_gateway(admin_env)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def second_gateway(admin_env):
    handle = start_gateway(admin_env)
    yield handle
    handle.stop()


def _chat(gateway, key: str, model: str) -> requests.Response:
    return requests.post(f"{gateway.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": model, "messages": [{"role": "user", "content": "hi"}]}, timeout=30)


def _model(gateway, model_id: str) -> dict:
    answer = gateway.internal("GET", "/admin/channels")
    assert answer.status_code == 200
    return next(m for m in answer.json()["models"] if m["id"] == model_id)


def _provider_keys(gateway) -> dict[str, dict]:
    return {p["provider"]: p for p in gateway.internal("GET", "/admin/provider-keys").json()["providers"]}


def _wait_until(condition, what: str, timeout: float = 20) -> None:
    """Poll ``condition`` (another process adopts a change on its next poll of the database)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_channels_show_their_order_cost_and_live_health(console_gateway, channel_upstream):
    channel_upstream.fail("health-a", "status:500")
    customer = new_customer(console_gateway)
    for _ in range(BREAKER_FAILURES):
        assert _chat(console_gateway, customer.key, "health").status_code == 200
    customer.settled(BREAKER_FAILURES)
    deadline = time.monotonic() + 30
    while True:
        a, b, c = _model(console_gateway, "health")["channels"]
        if b["attempts"] == BREAKER_FAILURES or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [ch["id"] for ch in (a, b, c)] == ["health-a:health-up-a", "health-b:health-up-b", "health-c:health-up-c"]
    assert (a["priority"], b["priority"], c["priority"]) == (0, 1, 2)
    assert a["cost"]["input_price"] == CHANNEL_COSTS["a"][0]
    assert (a["state"], a["last_error"], a["success_rate"]) == ("open", "upstream_http_500", 0.0)
    assert (b["state"], b["attempts"], b["success_rate"]) == ("closed", BREAKER_FAILURES, 1.0)
    assert b["p50_latency_ms"] is not None and b["p95_latency_ms"] >= b["p50_latency_ms"]
    assert c["attempts"] == 0 and c["success_rate"] is None


def test_a_channel_switched_off_is_skipped_by_every_process_until_switched_on(
        console_gateway, second_gateway, channel_upstream):
    customer = new_customer(console_gateway)
    switched = console_gateway.internal("POST", "/admin/channels/switch",
                                        json={"channel": "switch-a:switch-up-a", "enabled": False})
    assert switched.json() == {"channel": "switch-a:switch-up-a", "state": "off"}
    _wait_until(lambda: _model(second_gateway, "switch")["channels"][0]["state"] == "off",
                "the other process did not adopt the switch")
    for gateway in (console_gateway, second_gateway):
        assert _chat(gateway, customer.key, "switch").status_code == 200
    assert channel_upstream.received("switch-a") == []
    assert len(channel_upstream.received("switch-b")) == 2
    assert _model(second_gateway, "switch")["channels"][0]["state"] == "off"
    console_gateway.internal("POST", "/admin/channels/switch", json={"channel": "switch-a:switch-up-a", "enabled": True})
    _wait_until(lambda: _model(second_gateway, "switch")["channels"][0]["state"] == "closed",
                "the other process did not adopt the switch back on")
    assert _chat(second_gateway, customer.key, "switch").status_code == 200
    assert len(channel_upstream.received("switch-a")) == 1


@pytest.mark.parametrize(("body", "status"), [
    ({"channel": "nobody:nothing", "enabled": False}, 404),
    ({"channel": "switch-a:switch-up-a", "enabled": "no"}, 422),
    ({"channel": 5, "enabled": True}, 422),
    ({"channel": "switch-a:switch-up-a", "enabled": True, "extra": 1}, 422),
])
def test_a_bad_switch_is_refused(console_gateway, body, status):
    assert console_gateway.internal("POST", "/admin/channels/switch", json=body).status_code == status


def test_the_test_button_sends_one_token_and_never_shows_the_key(console_gateway, channel_upstream):
    channel_upstream.fail("tested-a", "ok")
    answer = console_gateway.internal("POST", "/admin/channels/test", json={"channel": "tested-a:tested-up-a"})
    assert answer.json()["ok"] is True and answer.json()["status"] == 200
    assert channel_upstream.received("tested-a")[-1].model == "tested-up-a"
    channel_upstream.fail("tested-a", "status:401")
    answer = console_gateway.internal("POST", "/admin/channels/test", json={"channel": "tested-a:tested-up-a"})
    assert (answer.json()["ok"], answer.json()["status"]) == (False, 502)
    assert key_of("tested-a") not in answer.text
    assert console_gateway.internal("POST", "/admin/channels/test", json={"channel": "x:y"}).status_code == 404


def test_console_keys_are_encrypted_masked_rotated_without_restart_and_the_environment_wins(
        console_gateway, second_gateway, channel_upstream, gateway_database_url):
    customer = new_customer(console_gateway)
    # No key for the primary yet: its fallback serves.
    assert _chat(console_gateway, customer.key, "keys").status_code == 200
    assert channel_upstream.received("keys-a") == []
    listed = {p["provider"]: p for p in console_gateway.internal("GET", "/admin/provider-keys").json()["providers"]}
    assert listed["keys-a"]["source"] == "none" and listed["keys-b"]["source"] == "environment"

    first = "sk-chan-keys-a-FIRSTKEY1234"
    answer = console_gateway.internal("PUT", "/admin/provider-keys/keys-a", json={"key": first})
    assert answer.status_code == 200
    assert answer.json()["console_key"] == "sk-…1234" and first not in answer.text
    assert _chat(console_gateway, customer.key, "keys").status_code == 200
    assert channel_upstream.received("keys-a")[-1].key == first
    # Rotated: the other process uses the new key within a poll, with no restart.
    rotated = "sk-chan-keys-a-ROTATED56789"
    console_gateway.internal("PUT", "/admin/provider-keys/keys-a", json={"key": rotated})
    _wait_until(lambda: _provider_keys(second_gateway)["keys-a"]["console_key"] == "sk-…6789",
                "the other process did not read the rotated key")
    assert _chat(second_gateway, customer.key, "keys").status_code == 200
    assert channel_upstream.received("keys-a")[-1].key == rotated
    listed = {p["provider"]: p for p in second_gateway.internal("GET", "/admin/provider-keys").json()["providers"]}
    assert (listed["keys-a"]["source"], listed["keys-a"]["console_key"]) == ("console", "sk-…6789")

    # A key in the environment wins over the console's.
    console_gateway.internal("PUT", "/admin/provider-keys/keys-b", json={"key": "sk-chan-keys-b-CONSOLE0000"})
    channel_upstream.fail("keys-a", "status:503")
    assert _chat(console_gateway, customer.key, "keys").status_code == 200
    assert channel_upstream.received("keys-b")[-1].key == key_of("keys-b")

    engine = sa.create_engine(gateway_database_url)
    try:
        with engine.connect() as conn:
            stored = " ".join(conn.execute(sa.text("SELECT ciphertext FROM provider_keys")).scalars())
    finally:
        engine.dispose()
    assert rotated not in stored and "ROTATED" not in stored
    assert Fernet(SECRETS_KEY.encode()).decrypt(stored.split()[0].encode()).startswith(b"sk-chan-keys-")
    for gateway in (console_gateway, second_gateway):
        assert first not in gateway.log_text() and rotated not in gateway.log_text()

    assert console_gateway.internal("DELETE", "/admin/provider-keys/keys-a").status_code == 204
    assert console_gateway.internal("DELETE", "/admin/provider-keys/keys-a").status_code == 404
    channel_upstream.fail("keys-a", "ok")


@pytest.mark.parametrize(("provider", "body", "status"), [
    ("keys-a", {"key": "short"}, 422),
    ("keys-a", {"key": "sk-with space-123456"}, 422),
    ("keys-a", {"key": 12345678}, 422),
    ("nobody", {"key": "sk-0123456789abcdef"}, 404),
])
def test_a_bad_console_key_is_refused(console_gateway, provider, body, status):
    assert console_gateway.internal("PUT", f"/admin/provider-keys/{provider}", json=body).status_code == status


def test_without_secrets_key_console_key_entry_is_switched_off(gateway):
    assert gateway.internal("GET", "/admin/provider-keys").json()["key_entry"] is False
    answer = gateway.internal("PUT", "/admin/provider-keys/deepseek", json={"key": "sk-0123456789abcdef"})
    assert answer.status_code == 409 and "SECRETS_KEY" in answer.json()["error"]["message"]


def test_margin_per_day_model_and_channel_matches_the_ledger(console_gateway, channel_upstream):
    customer = new_customer(console_gateway)
    channel_upstream.fail("margin-a", "ok")
    for _ in range(3):
        assert _chat(console_gateway, customer.key, "margin").status_code == 200
    channel_upstream.fail("margin-a", "status:503")
    for _ in range(2):
        assert _chat(console_gateway, customer.key, "margin").status_code == 200
    account = customer.settled(5)
    today = datetime.now(timezone.utc).date()
    params = {"start": (today - timedelta(days=1)).isoformat(), "end": (today + timedelta(days=1)).isoformat(),
              "tz": "UTC"}
    rows = [r for r in console_gateway.internal("GET", "/admin/margin", params=params).json()["rows"]
            if r["model"] == "margin"]
    by_channel = {r["channel"]: r for r in rows}
    assert {channel: r["requests"] for channel, r in by_channel.items()} == {
        "margin-a:margin-up-a": 3, "margin-b:margin-up-b": 2}
    ledger = customer.gateway.internal("GET", f"/accounts/{customer.account_id}/ledger").json()["data"]
    usage = -sum(entry["amount_micro_p"] for entry in ledger if entry["kind"] == "usage")
    assert sum(r["revenue_micro_p"] for r in rows) == usage == 5 * charge() == 1000 * ONE_P - account["balance_micro_p"]
    a_cost = 3 * (PROMPT_TOKENS * CHANNEL_COSTS["a"][0] + COMPLETION_TOKENS * CHANNEL_COSTS["a"][1])
    assert by_channel["margin-a:margin-up-a"]["upstream_cost_micro_p"] == a_cost
    assert by_channel["margin-a:margin-up-a"]["margin_micro_p"] == 3 * charge() - a_cost
    csv = console_gateway.internal("GET", "/admin/margin.csv", params=params)
    assert csv.headers["Content-Type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0].startswith("day,model,channel,requests,revenue_micro_p")
    assert any(",margin,margin-a:margin-up-a,3," in line for line in lines)
