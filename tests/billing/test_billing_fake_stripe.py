"""The fake Stripe API behaves like Stripe for every call the portal makes, via the real library."""

from __future__ import annotations

import json
import time

import pytest
import stripe

from fixtures.stripe import STRIPE_TEST_SECRET_KEY, decode_form


def _client(fake, key: str = STRIPE_TEST_SECRET_KEY) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": fake.base_url})


def _params(cents: int = 1000, reference: str = "ref-1") -> dict:
    return {
        "mode": "payment",
        "line_items": [{"quantity": 1, "price_data": {"currency": "usd", "unit_amount": cents,
                                                      "product_data": {"name": "Top-up"}}}],
        "client_reference_id": reference,
        "metadata": {"payment_id": "7", "reference": reference},
        "success_url": "http://portal.test/billing/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://portal.test/billing/cancel",
    }


def test_decode_form_rebuilds_nested_lists_and_dicts():
    body = "line_items[0][price_data][unit_amount]=500&line_items[0][quantity]=1&metadata[a]=b&expand[0]=x"
    assert decode_form(body) == {"line_items": [{"price_data": {"unit_amount": "500"}, "quantity": "1"}],
                                 "metadata": {"a": "b"}, "expand": ["x"]}


def test_same_idempotency_key_returns_the_same_session(fake_stripe):
    client = _client(fake_stripe)
    first = client.v1.checkout.sessions.create(params=_params(), options={"idempotency_key": "k1"})
    again = client.v1.checkout.sessions.create(params=_params(), options={"idempotency_key": "k1"})
    other = client.v1.checkout.sessions.create(params=_params(), options={"idempotency_key": "k2"})
    assert first.id == again.id != other.id
    assert first.amount_total == 1000 and first.currency == "usd"
    assert first.url.startswith(fake_stripe.base_url)
    assert len(fake_stripe.sessions) == 2


def test_reusing_a_key_with_other_parameters_is_refused(fake_stripe):
    client = _client(fake_stripe)
    client.v1.checkout.sessions.create(params=_params(1000), options={"idempotency_key": "k"})
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(params=_params(2000), options={"idempotency_key": "k"})


def test_wrong_secret_key_is_an_authentication_error(fake_stripe):
    with pytest.raises(stripe.AuthenticationError):
        _client(fake_stripe, "sk_test_wrong").v1.checkout.sessions.create(params=_params())


def test_paid_session_reads_back_with_expanded_intent_and_charge(fake_stripe):
    client = _client(fake_stripe)
    session = client.v1.checkout.sessions.create(params=_params(2500))
    assert session.payment_status == "unpaid" and session.status == "open"
    fake_stripe.pay(session.id)
    read = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent", "payment_intent.latest_charge"]}).to_dict()
    assert read["payment_status"] == "paid" and read["status"] == "complete"
    charge = read["payment_intent"]["latest_charge"]
    assert charge["amount"] == 2500 and charge["receipt_url"].startswith("https://")
    listed = client.v1.checkout.sessions.list(params={"payment_intent": read["payment_intent"]["id"]})
    assert [s.id for s in listed.data] == [session.id]


def test_refunds_accumulate_on_the_charge_and_disputes_point_at_it(fake_stripe):
    client = _client(fake_stripe)
    session = client.v1.checkout.sessions.create(params=_params(1000))
    fake_stripe.pay(session.id)
    charge = fake_stripe.refund(session.id, 300)
    fake_stripe.refund(session.id, 200)
    assert client.v1.charges.retrieve(charge["id"]).amount_refunded == 500
    dispute = fake_stripe.dispute(session.id)
    assert client.v1.disputes.retrieve(dispute["id"]).charge == charge["id"]


def test_down_answers_every_call_with_an_api_error(fake_stripe):
    fake_stripe.down = True
    with pytest.raises(stripe.APIError):
        _client(fake_stripe).v1.checkout.sessions.create(params=_params())


def test_signed_events_verify_with_the_library_and_fail_when_stale(fake_stripe):
    event = fake_stripe.event("checkout.session.completed", {"id": "cs_test_x"})
    body, headers = fake_stripe.signed(event)
    parsed = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], fake_stripe.webhook_secret)
    assert parsed.id == event["id"] and json.loads(body)["type"] == "checkout.session.completed"
    stale = fake_stripe.sign(body, timestamp=int(time.time()) - 301)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, stale, fake_stripe.webhook_secret)
