"""Catalogue changes from the console: a new price reaches the gateway and the Pricing page;
a disabled model is refused; each change is versioned and audited."""

from __future__ import annotations

import pytest

from fixtures.portal import call_api, wait_for_requests
from fixtures.upstream import COMPLETION_TOKENS, PROMPT_TOKENS
from operator_helpers import audit_rows

FILE_STATE = {"kimi-k2.5": (450, 2200), "minimax-m2.5": (400, 1100)}


@pytest.fixture
def restore_models(gateway):
    """Put the touched models back to the providers file's state afterwards."""
    yield
    models = {m["id"]: m for m in gateway.internal("GET", "/admin/catalog").json()["models"]}
    for model_id, (input_price, output_price) in FILE_STATE.items():
        m = models[model_id]
        if (m["input_price"], m["output_price"], m["enabled"]) != (input_price, output_price, True):
            gateway.internal("POST", f"/admin/catalog/{model_id}", json={
                "input_price": input_price, "output_price": output_price, "enabled": True,
                "actor": "tests", "reason": "restore"})


def test_catalogue_page_lists_models_with_file_prices(operator_client):
    html = operator_client.get("/operator/catalog").get_data(as_text=True)
    assert 'id="model-kimi-k2.5"' in html and 'id="model-gpt-5.2-pro"' in html
    assert "2,200" in html


def test_a_new_price_is_charged_shown_on_pricing_and_audited(operator_client, portal_app, customer, gateway, operator,
                                                             restore_models):
    response = operator_client.post("/operator/catalog/kimi-k2.5/price",
                                    data={"input_price": "600", "output_price": "3100", "reason": "CNY rate moved"})
    assert response.status_code == 303
    assert "3,100" in portal_app.test_client().get("/pricing").get_data(as_text=True)
    assert call_api(gateway, customer.key, model="kimi-k2.5")["status"] == 200
    [row] = wait_for_requests(gateway, customer.account_id, 1)
    assert row["cost_micro_p"] == PROMPT_TOKENS * 600 + COMPLETION_TOKENS * 3100
    entry = audit_rows(portal_app, "model.price", "kimi-k2.5")[0]
    assert entry.actor_email == operator.email and entry.reason == "CNY rate moved"
    assert entry.before == {"input_price": 450, "output_price": 2200, "cache_read_price": None,
                            "cache_write_price": None, "cache_write_1h_price": None, "enabled": True}
    assert (entry.after["input_price"], entry.after["output_price"]) == (600, 3100)
    history = operator_client.get("/operator/catalog").get_data(as_text=True)
    assert f"v{entry.after['version']}" in history and "CNY rate moved" in history


def test_disabling_and_enabling_a_model(operator_client, portal_app, customer, gateway, restore_models):
    assert operator_client.post("/operator/catalog/minimax-m2.5/switch", data={"reason": "provider outage"}).status_code == 303
    models = {m["id"]: m for m in gateway.internal("GET", "/catalog").json()["models"]}
    assert models["minimax-m2.5"]["enabled"] is False
    assert "disabled" in operator_client.get("/operator/catalog").get_data(as_text=True)
    assert audit_rows(portal_app, "model.disable", "minimax-m2.5")[0].after["enabled"] is False
    assert operator_client.post("/operator/catalog/minimax-m2.5/switch",
                                data={"enabled": "y", "reason": "back up"}).status_code == 303
    models = {m["id"]: m for m in gateway.internal("GET", "/catalog").json()["models"]}
    assert models["minimax-m2.5"]["enabled"] is True
    assert audit_rows(portal_app, "model.enable", "minimax-m2.5")[0].before["enabled"] is False


@pytest.mark.parametrize("data, message", [
    ({"input_price": "", "output_price": "5", "reason": "r"}, "Enter the input price"),
    ({"input_price": "-3", "output_price": "5", "reason": "r"}, "Number must be between"),
    ({"input_price": "1.5", "output_price": "5", "reason": "r"}, "Not a valid integer"),
    ({"input_price": "450", "output_price": "2200", "reason": "r"}, "leave the model as it is"),
    ({"input_price": "5", "output_price": "5", "reason": ""}, "Say why"),
])
def test_bad_prices_are_refused_with_a_message(operator_client, portal_app, gateway, data, message):
    before = gateway.internal("GET", "/admin/catalog").json()["changes"][:1]
    response = operator_client.post("/operator/catalog/kimi-k2.5/price", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert gateway.internal("GET", "/admin/catalog").json()["changes"][:1] == before


def test_unknown_model(operator_client):
    response = operator_client.post("/operator/catalog/no-such-model/price",
                                    data={"input_price": "5", "output_price": "5", "reason": "r"})
    assert response.status_code == 422
    assert "No such model" in response.get_data(as_text=True)


def test_a_scheduled_price_waits_for_its_time(operator_client, gateway, restore_models):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    later = (datetime.now(ZoneInfo("UTC")) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = operator_client.post("/operator/catalog/kimi-k2.5/price", data={
        "input_price": "1", "output_price": "2", "effective_from": later, "reason": "price cut from Friday"})
    assert response.status_code == 303
    models = {m["id"]: m for m in gateway.internal("GET", "/catalog").json()["models"]}
    assert (models["kimi-k2.5"]["input_price"], models["kimi-k2.5"]["output_price"]) == (450, 2200)
    change = gateway.internal("GET", "/admin/catalog").json()["changes"][0]
    assert change["effective_from"].startswith(later)
    assert "scheduled" in operator_client.get("/operator/catalog").get_data(as_text=True)
    past = (datetime.now(ZoneInfo("UTC")) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    refused = operator_client.post("/operator/catalog/kimi-k2.5/price", data={
        "input_price": "1", "output_price": "2", "effective_from": past, "reason": "r"})
    assert refused.status_code == 422 and "in the future" in refused.get_data(as_text=True)
