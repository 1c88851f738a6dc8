"""The console's numeric fields refuse exponents and outsized numbers with a form error."""

from __future__ import annotations

import time

import pytest

from operator_helpers import form_key_in


@pytest.mark.parametrize("typed", ["1e600000", "-1e999999", "NaN", "١٢٣"])
def test_adjustment_with_an_exponent_is_refused_quickly(operator_client, customer, gateway, typed):
    url = f"/operator/customers/{customer.account_id}/adjust"
    key = form_key_in(operator_client.get(f"/operator/customers/{customer.account_id}").get_data(as_text=True))
    before = gateway.balance(customer.account_id)
    started = time.perf_counter()
    response = operator_client.post(url, data={"amount_p": typed, "reason": "r", "form_key": key})
    assert time.perf_counter() - started < 3
    assert response.status_code == 422
    assert "Enter a number of P" in response.get_data(as_text=True)
    assert gateway.balance(customer.account_id) == before


@pytest.mark.parametrize("typed", ["1e600000", "9" * 5000, "١٢٣"])
def test_price_with_an_exponent_is_refused(operator_client, typed):
    catalog = operator_client.get("/operator/catalog").get_data(as_text=True)
    model = catalog.split("/operator/catalog/", 1)[1].split("/", 1)[0]
    response = operator_client.post(f"/operator/catalog/{model}/price",
                                    data={"input_price": typed, "output_price": "1", "reason": "r"})
    assert response.status_code == 422
    assert "Not a valid integer" in response.get_data(as_text=True)
