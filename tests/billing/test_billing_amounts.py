"""The top-up form and the payment history refuse oversized numbers with a 4xx, quickly."""

from __future__ import annotations

import time

import pytest

HTMX = {"HX-Request": "true"}


@pytest.mark.parametrize("typed", ["1e600000", "1e999999", "1e-999999", "NaN", "١٢٣"])
def test_top_up_with_an_exponent_is_a_form_error(billing, web, user, typed):
    started = time.perf_counter()
    response = web.post("/billing/checkout", data={"amount_usd": typed})
    # Not a benchmark: the old parse of 1e600000 took about ten seconds.
    assert time.perf_counter() - started < 3
    assert response.status_code == 422
    assert "Enter an amount in US dollars" in response.get_data(as_text=True)
    assert billing.payments(user) == []


@pytest.mark.parametrize("cursor", ["9" * 30, "9" * 19, "-1", "１２", "1e9", "abc"])
def test_payment_history_ignores_a_cursor_that_is_no_payment_id(billing, web, user, cursor):
    response = web.get(f"/payments?before={cursor}")
    assert response.status_code == 200
    assert "<html" in response.get_data(as_text=True)
