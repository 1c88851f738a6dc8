"""Returning from Checkout, the cancel page and Payment History, as full pages and as htmx fragments."""

from __future__ import annotations

import re
import uuid

import pytest

from portal.billing.models import MICRO_P_PER_CENT, Payment
from portal.extensions import db

HTMX = {"HX-Request": "true"}


def _status_url(payment) -> str:
    return f"/billing/success/status?session_id={payment.stripe_session_id}"


def test_success_page_credits_before_the_webhook_and_the_webhook_adds_nothing(billing, web, user):
    payment = billing.checkout(user, 2000)
    billing.fake.pay(payment.stripe_session_id)
    response = web.get(f"/billing/success?session_id={payment.stripe_session_id}")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "20,000.00 P added to your balance" in body
    assert "hx-trigger" not in body
    assert billing.balance(user) == 2000 * MICRO_P_PER_CENT
    assert billing.deliver("checkout.session.completed", billing.session(payment)).status_code == 200
    assert billing.balance(user) == 2000 * MICRO_P_PER_CENT
    billing.ledger_agrees(user)


def test_success_page_polls_until_the_credit_shows(billing, web, user):
    payment = billing.checkout(user, 1000)
    page = web.get(f"/billing/success?session_id={payment.stripe_session_id}").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in page
    assert "Waiting for Stripe to confirm" in page
    assert "/billing/success/status?session_id=" + payment.stripe_session_id in page

    still = web.get(_status_url(payment), headers=HTMX)
    fragment = still.get_data(as_text=True)
    assert still.status_code == 200
    assert "<html" not in fragment and 'hx-trigger="every 2s"' in fragment

    billing.fake.pay(payment.stripe_session_id)
    done = web.get(_status_url(payment), headers=HTMX).get_data(as_text=True)
    assert "<html" not in done
    assert "10,000.00 P added to your balance" in done
    assert "hx-trigger" not in done
    # The top bar's balance is refreshed out of band with the new figure.
    assert 'hx-swap-oob="outerHTML:.balance-pill"' in done and "<strong>10,000.00 P</strong>" in done
    assert billing.balance(user) == 1000 * MICRO_P_PER_CENT
    billing.ledger_agrees(user)


def test_status_fragment_without_htmx_is_the_whole_page(billing, web, user):
    payment = billing.checkout(user, 1000)
    body = web.get(_status_url(payment)).get_data(as_text=True)
    assert "<html" in body and 'id="topup-status"' in body


def test_polling_stops_when_the_payment_failed(billing, web, user):
    payment = billing.checkout(user, 1000)
    billing.fake.complete_pending(payment.stripe_session_id)
    billing.fake.fail_async(payment.stripe_session_id)
    billing.deliver("checkout.session.async_payment_failed", billing.session(payment))
    body = web.get(_status_url(payment), headers=HTMX).get_data(as_text=True)
    assert "did not go through" in body and "hx-trigger" not in body


def test_success_page_with_the_gateway_down_keeps_waiting(billing, web, user):
    from portal.gateway_client import GatewayClient

    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    working = billing.app.extensions["gateway_client"]
    billing.app.extensions["gateway_client"] = GatewayClient("http://127.0.0.1:9", "x" * 32)
    try:
        response = web.get(f"/billing/success?session_id={payment.stripe_session_id}")
    finally:
        billing.app.extensions["gateway_client"] = working
    assert response.status_code == 200
    assert 'hx-trigger="every 2s"' in response.get_data(as_text=True)
    assert billing.payment(payment).status == "pending"
    done = web.get(_status_url(payment), headers=HTMX).get_data(as_text=True)
    assert "added to your balance" in done
    billing.ledger_agrees(user)


def test_someone_elses_session_is_not_found(billing, web, user):
    other = billing.make_buyer()
    payment = billing.checkout(other, 1000)
    billing.fake.pay(payment.stripe_session_id)
    assert web.get(f"/billing/success?session_id={payment.stripe_session_id}").status_code == 404
    assert web.get(_status_url(payment), headers=HTMX).status_code == 404
    assert web.get("/billing/success").status_code == 404
    assert billing.payment(payment).status == "pending"


def test_cancel_page_says_nothing_was_charged(web):
    response = web.get("/billing/cancel")
    assert response.status_code == 200
    assert "Nothing was charged" in response.get_data(as_text=True)


def test_payment_history_empty_state_points_to_billing(web):
    body = web.get("/payments").get_data(as_text=True)
    assert "No payments yet" in body
    assert 'href="/billing"' in body


def _add_payments(billing, user, count: int, **fields) -> None:
    with billing.app.app_context():
        for i in range(count):
            db.session.add(Payment(user_id=user.id, reference=str(uuid.uuid4()), amount_cents=500 + i,
                                   credit_micro_p=(500 + i) * MICRO_P_PER_CENT, **fields))
        db.session.commit()


def test_payment_history_shows_amount_credit_status_and_receipt(billing, web, user):
    paid = billing.checkout(user, 2500)
    billing.fake.pay(paid.stripe_session_id)
    billing.deliver("checkout.session.completed", billing.session(paid))
    refunded = billing.checkout(user, 1000)
    billing.fake.pay(refunded.stripe_session_id)
    billing.deliver("charge.refunded", billing.fake.refund(refunded.stripe_session_id, 400))
    billing.fake.down = True
    web.post("/billing/checkout", data={"amount_usd": "7"})
    billing.fake.down = False

    body = web.get("/payments").get_data(as_text=True)
    rows = re.findall(r"<tr data-payment-id=.*?</tr>", body, re.S)
    assert len(rows) == 3
    failed, partial, paid_row = rows
    assert "$7.00" in failed and "Failed" in failed and "Receipt" not in failed
    assert "$10.00" in partial and "Partially refunded" in partial and "$4.00 refunded" in partial
    assert "$25.00" in paid_row and "25,000.00 P" in paid_row and "Paid" in paid_row
    receipt = billing.payment(paid).receipt_url
    assert f'href="{receipt}"' in paid_row


def test_payment_history_loads_more_by_keyset(billing, web, user):
    _add_payments(billing, user, 23, status="paid")
    _add_payments(billing, billing.make_buyer(), 3, status="paid")
    first = web.get("/payments").get_data(as_text=True)
    assert first.count("<tr data-payment-id=") == 20
    cursor = re.search(r'hx-get="/payments\?before=(\d+)"', first).group(1)

    more = web.get(f"/payments?before={cursor}", headers=HTMX)
    fragment = more.get_data(as_text=True)
    assert more.status_code == 200
    assert "<html" not in fragment and "<table" not in fragment
    assert fragment.count("<tr data-payment-id=") == 3
    assert "Load more" not in fragment
    ids = [int(i) for i in re.findall(r'data-payment-id="(\d+)"', first + fragment)]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 23

    plain = web.get(f"/payments?before={cursor}").get_data(as_text=True)
    assert "<html" in plain and plain.count("<tr data-payment-id=") == 3


@pytest.mark.parametrize("path", ["/billing", "/payments", "/billing/cancel", "/billing/success?session_id=cs_x"])
def test_billing_pages_need_a_sign_in(billing, path):
    response = billing.app.test_client().get(path)
    assert response.status_code in (302, 303, 401)
    assert "/login" in response.headers.get("Location", "") or response.status_code == 401


def test_checkout_needs_a_sign_in(billing):
    response = billing.app.test_client().post("/billing/checkout", data={"amount_usd": "25"})
    assert response.status_code in (302, 303, 401)
    assert billing.fake.creations() == []
