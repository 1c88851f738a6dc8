"""The Billing page and POST /billing/checkout: bounds, Stripe's session, and failures that charge nothing."""

from __future__ import annotations

import uuid

import pytest

from portal.billing.models import MICRO_P_PER_CENT, Payment
from portal.extensions import db

HTMX = {"HX-Request": "true"}


def test_billing_page_shows_balance_presets_and_custom_amount(billing, web):
    response = web.get("/billing")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    for preset in ("$5", "$10", "$20", "$50", "$100"):
        assert f"<strong>{preset}</strong>" in body
    assert 'name="amount_usd"' in body
    assert "Balance" in body and "0 P" in body
    assert "not configured" not in body
    assert billing.fake.secret_key not in body and billing.fake.webhook_secret not in body
    # The top-up forms redirect to Checkout, so the page must allow that as a form target.
    assert "https://checkout.stripe.com" in response.headers["Content-Security-Policy"]


def test_without_a_secret_key_top_ups_are_disabled_and_nothing_crashes(billing, web, user):
    billing.app.config["STRIPE_SECRET_KEY"] = ""
    page = web.get("/billing").get_data(as_text=True)
    assert "Card payments are not configured" in page
    assert "disabled" in page
    response = web.post("/billing/checkout", data={"amount_usd": "25"})
    assert response.status_code == 503
    assert "not configured" in response.get_data(as_text=True)
    assert billing.payments(user) == []
    assert billing.fake.creations() == []


def test_checkout_records_a_pending_payment_and_redirects_to_stripe(billing, web, user):
    response = web.post("/billing/checkout", data={"amount_usd": "25"})
    assert response.status_code == 303
    [payment] = billing.payments(user)
    assert response.headers["Location"] == billing.fake.session_for(payment.stripe_session_id)["url"]
    assert payment.status == "pending"
    assert payment.amount_cents == 2500
    assert payment.credit_micro_p == 2500 * MICRO_P_PER_CENT == 25_000_000_000

    [call] = billing.fake.creations()
    params = call["params"]
    assert params["mode"] == "payment"
    assert params["line_items"][0]["price_data"]["currency"] == "usd"
    assert params["line_items"][0]["price_data"]["unit_amount"] == "2500"
    assert params["client_reference_id"] == payment.reference
    assert params["metadata"]["payment_id"] == str(payment.id)
    assert params["metadata"]["user_id"] == str(user.id)
    assert params["success_url"].endswith("/billing/success?session_id={CHECKOUT_SESSION_ID}")
    assert params["cancel_url"].endswith("/billing/cancel")
    assert call["idempotency_key"] == f"checkout:{payment.reference}"
    assert billing.fake.secret_key not in response.get_data(as_text=True)
    assert billing.fake.secret_key not in str(response.headers)


def test_public_url_sets_where_stripe_sends_the_customer_back(billing, web):
    billing.app.config["PUBLIC_URL"] = "https://portal.samalink.example"
    web.post("/billing/checkout", data={"amount_usd": "10"})
    [call] = billing.fake.creations()
    assert call["params"]["success_url"].startswith("https://portal.samalink.example/billing/success?")
    assert call["params"]["cancel_url"] == "https://portal.samalink.example/billing/cancel"


def test_htmx_checkout_answers_with_hx_redirect(billing, web, user):
    response = web.post("/billing/checkout", data={"amount_usd": "50"}, headers=HTMX)
    assert response.status_code == 204
    [payment] = billing.payments(user)
    assert response.headers["HX-Redirect"] == billing.fake.session_for(payment.stripe_session_id)["url"]
    assert payment.amount_cents == 5000


@pytest.mark.parametrize("raw, cents", [("5", 500), ("10000", 1_000_000), ("$1,000.50", 100_050), (" 20.5 ", 2050)])
def test_amounts_within_bounds_are_accepted(billing, web, user, raw, cents):
    assert web.post("/billing/checkout", data={"amount_usd": raw}).status_code == 303
    assert [p.amount_cents for p in billing.payments(user)] == [cents]


@pytest.mark.parametrize("raw, message", [
    ("4.99", "The smallest top-up is $5."),
    ("10000.01", "The largest top-up is $10,000."),
    ("-5", "The smallest top-up is $5."),
    ("abc", "Enter an amount in US dollars"),
    ("", "Enter an amount in US dollars"),
    ("nan", "Enter an amount in US dollars"),
    pytest.param("9" * 5000, "Enter an amount in US dollars", id="5000-digits"),
    ("5.001", "Use at most two decimal places"),
])
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_bad_amounts_show_a_form_error_and_charge_nothing(billing, web, user, raw, message, htmx):
    response = web.post("/billing/checkout", data={"amount_usd": raw}, headers=HTMX if htmx else {})
    body = response.get_data(as_text=True)
    # Inline form errors reach htmx as a normal 200 fragment (portal/htmx.py).
    assert response.status_code == (200 if htmx else 422)
    assert message in body
    assert ("<html" in body) is not htmx
    assert 'id="topup"' in body
    assert billing.payments(user) == []
    assert billing.fake.creations() == []


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_stripe_down_is_a_form_error_and_the_payment_is_marked_failed(billing, web, user, htmx):
    billing.fake.down = True
    response = web.post("/billing/checkout", data={"amount_usd": "25"}, headers=HTMX if htmx else {})
    body = response.get_data(as_text=True)
    assert response.status_code == (200 if htmx else 503)
    assert "nothing was charged" in body
    assert "HX-Redirect" not in response.headers
    [payment] = billing.payments(user)
    assert payment.status == "failed"
    assert payment.stripe_session_id is None
    assert billing.balance(user) == 0


def test_unreachable_stripe_is_a_form_error(billing, web, user):
    billing.app.config["STRIPE_API_BASE"] = "http://127.0.0.1:9"
    billing.app.extensions.pop("samalink_stripe_client", None)
    response = web.post("/billing/checkout", data={"amount_usd": "25"})
    assert response.status_code == 503
    assert "nothing was charged" in response.get_data(as_text=True)
    assert [p.status for p in billing.payments(user)] == ["failed"]


def test_checkout_needs_a_csrf_token(billing, web, user):
    billing.app.config["WTF_CSRF_ENABLED"] = True
    response = web.post("/billing/checkout", data={"amount_usd": "25"})
    assert response.status_code == 400
    assert billing.payments(user) == []


def test_each_submission_is_its_own_payment_with_its_own_idempotency_key(billing, web, user):
    web.post("/billing/checkout", data={"amount_usd": "5"})
    web.post("/billing/checkout", data={"amount_usd": "5"})
    keys = [call["idempotency_key"] for call in billing.fake.creations()]
    assert len(set(keys)) == 2
    assert len({p.stripe_session_id for p in billing.payments(user)}) == 2


def test_a_retried_creation_reuses_the_session(billing, user):
    from portal.billing import stripe_api

    with billing.app.test_request_context():
        params = {"mode": "payment", "success_url": "http://portal.test/ok", "cancel_url": "http://portal.test/no",
                  "line_items": [{"quantity": 1, "price_data": {"currency": "usd", "unit_amount": 900,
                                                                "product_data": {"name": "Top-up"}}}]}
        key = f"checkout:{uuid.uuid4()}"
        first = stripe_api.create_checkout_session(params, key)
        again = stripe_api.create_checkout_session(params, key)
    assert first["id"] == again["id"]
    assert len(billing.fake.sessions) == 1


def test_payment_row_exists_before_the_customer_leaves(billing, web, user):
    web.post("/billing/checkout", data={"amount_usd": "20"})
    with billing.app.app_context():
        rows = db.session.query(Payment).filter_by(user_id=user.id).all()
        assert [(r.status, r.amount_cents) for r in rows] == [("pending", 2000)]


def test_billing_page_renders_when_the_gateway_is_down(billing, web):
    from portal.gateway_client import GatewayClient

    working = billing.app.extensions["gateway_client"]
    billing.app.extensions["gateway_client"] = GatewayClient("http://127.0.0.1:9", "x" * 32)
    try:
        response = web.get("/billing")
    finally:
        billing.app.extensions["gateway_client"] = working
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Usage service unavailable" in body
    assert "The balance cannot be read right now." in body
    assert 'name="amount_usd"' in body
