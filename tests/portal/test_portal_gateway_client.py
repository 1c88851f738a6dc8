"""The portal's gateway client against the real gateway process."""

from __future__ import annotations

import uuid

import pytest

from fixtures.gateway import free_port
from portal.gateway_client import GatewayClient, GatewayError, GatewayUnavailable


@pytest.fixture
def gw_client(gateway):
    return GatewayClient(gateway.internal_url, gateway.token)


def test_account_creation_is_idempotent_on_external_id(gw_client):
    external = f"portal-user-{uuid.uuid4()}"
    first = gw_client.create_account(external, "a@example.com")
    again = gw_client.create_account(external, "a@example.com")
    assert first["id"] == again["id"]
    account = gw_client.get_account(first["id"])
    assert account["balance_micro_p"] == 0 and account["status"] == "active"
    summary = gw_client.account_summary(first["id"], "Asia/Kathmandu")
    assert summary["today"] == {"cost_micro_p": 0, "requests": 0}


def test_keys_lifecycle(gw_client):
    account = gw_client.create_account(f"kl-{uuid.uuid4()}")["id"]
    created = gw_client.create_key(account, "ci", spend_limit_micro_p=5_000_000, expires_at="2099-01-01T00:00:00Z")
    assert created["key"].startswith("sama_")
    listed = gw_client.list_keys(account)
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert gw_client.update_key(account, created["id"], name="renamed")["name"] == "renamed"
    assert gw_client.update_key(account, created["id"], spend_limit_micro_p=None)["spend_limit_micro_p"] is None
    assert gw_client.revoke_key(account, created["id"])["status"] == "revoked"


def test_usage_requests_and_csv_for_a_quiet_account(gw_client):
    account = gw_client.create_account(f"q-{uuid.uuid4()}")["id"]
    usage = gw_client.usage(account, "2026-11-01", "2026-11-07", "Asia/Kolkata")
    assert usage["totals"]["requests"] == 0 and usage["daily"] == [] and usage["by_model"] == []
    page = gw_client.requests_page(account, {"status": "error"})
    assert page == {"data": [], "next_cursor": None}
    body = b"".join(gw_client.requests_csv(account, {})).decode()
    assert body.splitlines()[0].startswith("created_at")


def test_catalogue(gw_client):
    catalog = gw_client.catalog()
    ids = {m["id"] for m in catalog["models"]}
    assert {"deepseek-v3.2", "claude-4.6-opus", "gpt-5.2-pro"} <= ids
    unpriced = next(m for m in catalog["models"] if m["id"] == "gpt-5.2-pro")
    assert unpriced["priced"] is False and unpriced["input_price"] is None


def test_refusals_raise_gateway_error_with_the_message(gw_client):
    with pytest.raises(GatewayError) as error:
        gw_client.get_account(str(uuid.uuid4()))
    assert error.value.status == 404 and error.value.message == "No account with this id."
    account = gw_client.create_account(f"r-{uuid.uuid4()}")["id"]
    with pytest.raises(GatewayError) as error:
        gw_client.create_key(account, "x", expires_at="2001-01-01T00:00:00Z")
    assert error.value.status == 422 and "future" in error.value.message


def test_wrong_token_is_refused_and_never_echoed(gateway):
    client = GatewayClient(gateway.internal_url, "wrong-token-" + "z" * 20)
    with pytest.raises(GatewayError) as error:
        client.catalog()
    assert error.value.status == 401
    assert "wrong-token" not in str(error.value) and gateway.token not in str(error.value)


def test_unreachable_gateway_raises_unavailable_quickly(gateway):
    client = GatewayClient(f"http://127.0.0.1:{free_port()}", gateway.token)
    with pytest.raises(GatewayUnavailable) as error:
        client.health()
    assert gateway.token not in str(error.value)
