"""Cache prices from the console: set beside input and output, versioned, charged, shown on
Pricing and in the console's history; an empty cache price falls back to the input price."""

from __future__ import annotations

import re

import pytest

from fixtures.portal import call_api, wait_for_requests
from operator_helpers import audit_rows

MODEL = "claude-haiku-4.5"
FILE_PRICES = {"input_price": 800, "output_price": 4000, "cache_read_price": 80, "cache_write_price": 1000,
               "cache_write_1h_price": 1600}


@pytest.fixture
def restore_model(gateway):
    """Put the model back to the providers file's prices afterwards."""
    yield
    models = {m["id"]: m for m in gateway.internal("GET", "/admin/catalog").json()["models"]}
    if any(models[MODEL][k] != v for k, v in FILE_PRICES.items()):
        answer = gateway.internal("POST", f"/admin/catalog/{MODEL}", json=dict(FILE_PRICES, actor="tests",
                                                                                   reason="restore"))
        assert answer.status_code == 201, answer.text


def _form(**prices: str) -> dict:
    return dict({"input_price": "800", "output_price": "4000", "cache_read_price": "80", "cache_write_price": "1000",
                 "cache_write_1h_price": "1600", "reason": "cache promotion"}, **prices)


def test_cache_prices_round_trip_to_the_gateway_pricing_and_history(operator_client, portal_app, gateway, customer,
                                                                   operator, restore_model):
    page = operator_client.get("/operator/catalog").get_data(as_text=True)
    assert f'id="cache_read_price-{MODEL}"' in page and 'value="1600"' in page

    response = operator_client.post(f"/operator/catalog/{MODEL}/price",
                                    data=_form(cache_read_price="40", cache_write_price="", cache_write_1h_price="2,000"))
    assert response.status_code == 303

    state = {m["id"]: m for m in gateway.internal("GET", "/admin/catalog").json()["models"]}[MODEL]
    assert (state["cache_read_price"], state["cache_write_price"], state["cache_write_1h_price"]) == (40, None, 2000)
    served = {m["id"]: m for m in gateway.internal("GET", "/catalog").json()["models"]}[MODEL]
    assert served["cache_write_price"] == 800  # empty: the input price

    pricing = portal_app.test_client().get("/pricing").get_data(as_text=True)
    row = re.search(r'<tr data-model="%s">(.*?)</tr>' % MODEL, pricing, re.S).group(1)
    assert re.findall(r'<td class="num"[^>]*>([\d,]+) P', row) == ["800", "4,000", "40", "800", "2,000"]

    # 100 fresh, 1,000 read from the cache, 50 out, at the new prices.
    assert call_api(gateway, customer.key, MODEL, "[[usage:100:50:1000]]")["status"] == 200
    [logged] = wait_for_requests(gateway, customer.account_id, 1)
    assert logged["cost_micro_p"] == 100 * 800 + 1000 * 40 + 50 * 4000

    entry = audit_rows(portal_app, "model.price", MODEL)[0]
    assert entry.actor_email == operator.email
    assert entry.before == dict(FILE_PRICES, enabled=True)
    assert {k: entry.after[k] for k in ("cache_read_price", "cache_write_price", "cache_write_1h_price")} == \
        {"cache_read_price": 40, "cache_write_price": None, "cache_write_1h_price": 2000}

    console = operator_client.get("/operator/catalog").get_data(as_text=True)
    history = console.split("Price history", 1)[1]
    version = f"v{entry.after['version']}"
    [line] = [r for r in re.findall(r"<tr>(.*?)</tr>", history, re.S) if f"<td>{version}</td>" in r]
    assert re.findall(r'<td class="num">(.*?)</td>', line) == [
        "800", "4,000", "40", '<span class="muted" title="Charged at the input price">= input</span>', "2,000"]
    live = re.search(r'<tr id="model-%s">(.*?)</tr>' % re.escape(MODEL), console, re.S).group(1)
    assert f'id="cache_write_price-{MODEL}" name="cache_write_price" inputmode="numeric"' in live
    assert re.search(r'name="cache_write_price"[^>]*value=""', live)


@pytest.mark.parametrize("prices, message", [
    ({"cache_read_price": "-1"}, "Number must be between"),
    ({"cache_write_price": "1.5"}, "Not a valid integer"),
    ({"cache_write_1h_price": "lots"}, "Not a valid integer"),
    ({}, "leave the model as it is"),
])
def test_bad_cache_prices_are_refused_and_kept_in_the_form(operator_client, gateway, prices, message):
    before = gateway.internal("GET", "/admin/catalog").json()["changes"][:1]
    response = operator_client.post(f"/operator/catalog/{MODEL}/price", data=_form(**prices))
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert message in body
    for name, typed in prices.items():
        assert re.search(r'id="%s-%s" name="%s" inputmode="numeric"[^>]*value="%s"' % (name, MODEL, name, re.escape(typed)),
                         body)
    assert gateway.internal("GET", "/admin/catalog").json()["changes"][:1] == before


def test_cache_prices_left_out_of_the_form_keep_their_value(operator_client, gateway, restore_model):
    data = {"input_price": "900", "output_price": "4000", "reason": "input only"}
    assert operator_client.post(f"/operator/catalog/{MODEL}/price", data=data).status_code == 303
    state = {m["id"]: m for m in gateway.internal("GET", "/admin/catalog").json()["models"]}[MODEL]
    assert (state["input_price"], state["cache_read_price"], state["cache_write_1h_price"]) == (900, 80, 1600)


def test_traffic_and_customer_logs_show_cache_parts_and_tier(operator_client, customer, gateway):
    for model, text in (("claude-sonnet-4.5", "[[usage:100:50:10000:2000:1000]]"),
                        ("gemini-3.1-pro", "[[usage:10000:50:195000]]")):
        assert call_api(gateway, customer.key, model, text)["status"] == 200
    wait_for_requests(gateway, customer.account_id, 2)
    for path in (f"/operator/traffic?account_id={customer.account_id}", f"/operator/customers/{customer.account_id}"):
        body = operator_client.get(path).get_data(as_text=True)
        assert "cached 10,000" in body and "wrote 3,000" in body, path
        assert "tier &gt; 200K" in body, path
