"""The Stripe webhook credits each paid checkout once, whatever the order, count or timing of events.

After every scenario the account's balance (read from the gateway) must agree with the
payment rows: ``ledger_agrees`` checks it.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from portal.billing.models import MICRO_P_PER_CENT, StripeEvent
from portal.extensions import db
from portal.gateway_client import GatewayClient


def test_completed_event_credits_the_stored_amount_once(billing, user):
    payment = billing.checkout(user, 2500)
    billing.fake.pay(payment.stripe_session_id)
    response = billing.deliver("checkout.session.completed", billing.session(payment))
    assert response.status_code == 200
    assert billing.balance(user) == 2500 * MICRO_P_PER_CENT == 25_000 * 1_000_000
    assert billing.payment(payment).status == "paid"
    assert billing.payment(payment).receipt_url.startswith("https://pay.stripe.com/receipts/")
    billing.ledger_agrees(user)


def test_sequential_duplicate_deliveries_credit_once(billing, user):
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    event = billing.fake.event("checkout.session.completed", billing.session(payment))
    first = billing.post_event(event)
    second = billing.post_event(event)
    third = billing.post_event(event)
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 200]
    assert second.get_json()["outcome"] == "duplicate"
    assert billing.balance(user) == 1000 * MICRO_P_PER_CENT
    billing.ledger_agrees(user)


def test_concurrent_duplicate_deliveries_credit_once(billing, user):
    payment = billing.checkout(user, 5000)
    billing.fake.pay(payment.stripe_session_id)
    completed = billing.fake.event("checkout.session.completed", billing.session(payment))
    succeeded = billing.fake.event("checkout.session.async_payment_succeeded", billing.session(payment))
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def post(event):
        barrier.wait()
        statuses.append(billing.post_event(event).status_code)

    threads = [threading.Thread(target=post, args=(completed if i % 2 else succeeded,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    assert billing.balance(user) == 5000 * MICRO_P_PER_CENT
    assert billing.payment(payment).status == "paid"
    billing.ledger_agrees(user)


def test_async_success_before_completed_credits_once(billing, user):
    payment = billing.checkout(user, 2000)
    billing.fake.complete_pending(payment.stripe_session_id)
    pending_snapshot = billing.session(payment)
    billing.fake.pay(payment.stripe_session_id)
    assert billing.deliver("checkout.session.async_payment_succeeded", billing.session(payment)).status_code == 200
    # The older "completed, unpaid" event arrives last and changes nothing.
    assert billing.deliver("checkout.session.completed", pending_snapshot).status_code == 200
    assert billing.balance(user) == 2000 * MICRO_P_PER_CENT
    assert billing.payment(payment).status == "paid"
    billing.ledger_agrees(user)


def test_delayed_payment_waits_then_credits_on_async_success(billing, user):
    payment = billing.checkout(user, 1500)
    billing.fake.complete_pending(payment.stripe_session_id)
    billing.deliver("checkout.session.completed", billing.session(payment))
    assert billing.payment(payment).status == "pending"
    assert billing.balance(user) == 0
    billing.fake.pay(payment.stripe_session_id)
    billing.deliver("checkout.session.async_payment_succeeded", billing.session(payment))
    assert billing.payment(payment).status == "paid"
    assert billing.balance(user) == 1500 * MICRO_P_PER_CENT
    billing.ledger_agrees(user)


def test_async_failure_marks_failed_without_credit(billing, user):
    payment = billing.checkout(user, 1500)
    billing.fake.complete_pending(payment.stripe_session_id)
    billing.deliver("checkout.session.completed", billing.session(payment))
    billing.fake.fail_async(payment.stripe_session_id)
    assert billing.deliver("checkout.session.async_payment_failed", billing.session(payment)).status_code == 200
    assert billing.payment(payment).status == "failed"
    assert billing.balance(user) == 0
    billing.ledger_agrees(user)


def test_expired_unpaid_session_is_marked_expired(billing, user):
    payment = billing.checkout(user, 1000)
    billing.fake.expire(payment.stripe_session_id)
    billing.deliver("checkout.session.expired", billing.session(payment))
    assert billing.payment(payment).status == "expired"
    assert billing.balance(user) == 0
    billing.ledger_agrees(user)


def test_completed_then_expired_keeps_the_credit(billing, user):
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    billing.deliver("checkout.session.completed", billing.session(payment))
    # An expiry notice for the same session (sent late, or forged into the queue) is ignored.
    billing.deliver("checkout.session.expired", dict(billing.session(payment), status="expired"))
    assert billing.payment(payment).status == "paid"
    assert billing.balance(user) == 1000 * MICRO_P_PER_CENT
    billing.ledger_agrees(user)


def test_amount_in_the_event_body_is_never_used(billing, user):
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    forged = dict(billing.session(payment), amount_total=1_000_000)
    assert billing.deliver("checkout.session.completed", forged).status_code == 200
    assert billing.balance(user) == 1000 * MICRO_P_PER_CENT
    billing.ledger_agrees(user)


def test_session_amount_differing_from_the_payment_is_not_credited(billing, user):
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    billing.fake.session_for(payment.stripe_session_id)["amount_total"] = 100
    response = billing.deliver("checkout.session.completed", billing.session(payment))
    assert response.status_code == 422
    assert billing.payment(payment).status == "pending"
    assert billing.balance(user) == 0


def test_refund_before_completed_credits_then_debits(billing, user):
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    completed = billing.fake.event("checkout.session.completed", billing.session(payment))
    charge = billing.fake.refund(payment.stripe_session_id, 1000)
    assert billing.deliver("charge.refunded", charge).status_code == 200
    assert billing.payment(payment).status == "refunded"
    assert billing.post_event(completed).status_code == 200
    assert billing.payment(payment).status == "refunded"
    assert billing.balance(user) == 0
    billing.ledger_agrees(user)


def test_partial_then_full_refunds_debit_only_the_new_part(billing, user):
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    billing.deliver("checkout.session.completed", billing.session(payment))
    first = billing.fake.event("charge.refunded", billing.fake.refund(payment.stripe_session_id, 300))
    assert billing.post_event(first).status_code == 200
    assert billing.payment(payment).status == "partially_refunded"
    assert billing.payment(payment).refunded_cents == 300
    assert billing.balance(user) == 700 * MICRO_P_PER_CENT
    billing.ledger_agrees(user)

    second = billing.fake.event("charge.refunded", billing.fake.refund(payment.stripe_session_id, 700))
    assert billing.post_event(second).status_code == 200
    # A redelivery of the first refund, with a fresh event id, must not debit again.
    billing.post_event(dict(first, id=first["id"] + "_again"))
    assert billing.payment(payment).status == "refunded"
    assert billing.balance(user) == 0
    billing.ledger_agrees(user)


def test_refund_events_out_of_order_debit_the_total_once(billing, user):
    payment = billing.checkout(user, 2000)
    billing.fake.pay(payment.stripe_session_id)
    billing.deliver("checkout.session.completed", billing.session(payment))
    first = billing.fake.event("charge.refunded", billing.fake.refund(payment.stripe_session_id, 500))
    second = billing.fake.event("charge.refunded", billing.fake.refund(payment.stripe_session_id, 500))
    billing.post_event(second)
    billing.post_event(first)
    assert billing.payment(payment).refunded_cents == 1000
    assert billing.payment(payment).status == "partially_refunded"
    assert billing.balance(user) == 1000 * MICRO_P_PER_CENT
    billing.ledger_agrees(user)


def test_dispute_takes_back_the_unrefunded_part(billing, user):
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    billing.deliver("checkout.session.completed", billing.session(payment))
    billing.deliver("charge.refunded", billing.fake.refund(payment.stripe_session_id, 400))
    dispute = billing.fake.event("charge.dispute.created", billing.fake.dispute(payment.stripe_session_id))
    assert billing.post_event(dispute).status_code == 200
    assert billing.post_event(dict(dispute, id=dispute["id"] + "_again")).status_code == 200
    assert billing.payment(payment).status == "disputed"
    assert billing.balance(user) == 0
    billing.ledger_agrees(user)


def test_other_payments_are_untouched_by_a_refund(billing, user):
    kept = billing.checkout(user, 3000)
    refunded = billing.checkout(user, 1000)
    for payment in (kept, refunded):
        billing.fake.pay(payment.stripe_session_id)
        billing.deliver("checkout.session.completed", billing.session(payment))
    billing.deliver("charge.refunded", billing.fake.refund(refunded.stripe_session_id, 1000))
    assert billing.payment(kept).status == "paid"
    assert billing.balance(user) == 3000 * MICRO_P_PER_CENT
    billing.ledger_agrees(user)


@pytest.mark.parametrize("problem", ["wrong secret", "stale timestamp", "tampered body", "missing signature",
                                     "not json"])
def test_bad_signatures_are_refused_and_change_nothing(billing, user, problem):
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    event = billing.fake.event("checkout.session.completed", billing.session(payment))
    body, headers = billing.fake.signed(event)
    if problem == "wrong secret":
        body, headers = billing.fake.signed(event, secret="whsec_someone_else_entirely")
    elif problem == "stale timestamp":
        body, headers = billing.fake.signed(event, timestamp=int(time.time()) - 301)
    elif problem == "tampered body":
        body = body.replace(b"checkout.session.completed", b"checkout.session.expired")
    elif problem == "missing signature":
        headers.pop("Stripe-Signature")
    elif problem == "not json":
        body = b"not json at all"
        headers["Stripe-Signature"] = billing.fake.sign(body)
    response = billing.client.post("/stripe/webhook", data=body, headers=headers)
    assert response.status_code == 400
    assert "error" in response.get_json()
    assert billing.payment(payment).status == "pending"
    assert billing.balance(user) == 0
    with billing.app.app_context():
        assert db.session.get(StripeEvent, event["id"]) is None


def test_unknown_event_types_are_acknowledged_and_ignored(billing, user):
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    response = billing.deliver("customer.created", {"id": "cus_test_1", "object": "customer"})
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "ignored"
    assert billing.payment(payment).status == "pending"
    assert billing.balance(user) == 0


def test_sessions_that_are_not_ours_are_acknowledged(billing, user):
    stranger = billing.fake.create_session({
        "mode": "payment", "success_url": "https://elsewhere.test/ok", "cancel_url": "https://elsewhere.test/no",
        "line_items": [{"quantity": "1", "price_data": {"currency": "usd", "unit_amount": "700"}}]})
    billing.fake.pay(stranger["id"])
    response = billing.deliver("checkout.session.completed", stranger)
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "not ours"
    assert billing.balance(user) == 0


def test_gateway_down_answers_5xx_and_the_retry_credits_once(billing, user):
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    event = billing.fake.event("checkout.session.completed", billing.session(payment))
    working = billing.app.extensions["gateway_client"]
    billing.app.extensions["gateway_client"] = GatewayClient("http://127.0.0.1:9", "x" * 32)
    try:
        response = billing.post_event(event)
    finally:
        billing.app.extensions["gateway_client"] = working
    assert response.status_code == 503
    assert billing.payment(payment).status == "pending"
    with billing.app.app_context():
        assert db.session.get(StripeEvent, event["id"]) is None
    assert billing.post_event(event).status_code == 200
    assert billing.post_event(event).get_json()["outcome"] == "duplicate"
    assert billing.payment(payment).status == "paid"
    assert billing.balance(user) == 1000 * MICRO_P_PER_CENT
    billing.ledger_agrees(user)


def test_stripe_down_answers_5xx_and_the_retry_credits(billing, user):
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    event = billing.fake.event("checkout.session.completed", billing.session(payment))
    billing.fake.down = True
    assert billing.post_event(event).status_code == 503
    billing.fake.down = False
    assert billing.post_event(event).status_code == 200
    assert billing.balance(user) == 1000 * MICRO_P_PER_CENT
    billing.ledger_agrees(user)


def test_webhook_without_a_configured_secret_is_refused(billing, user):
    billing.app.config["STRIPE_WEBHOOK_SECRET"] = ""
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    response = billing.deliver("checkout.session.completed", billing.session(payment))
    assert response.status_code == 503
    assert billing.balance(user) == 0


def test_webhook_needs_no_csrf_token(billing, user):
    billing.app.config["WTF_CSRF_ENABLED"] = True
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    assert billing.deliver("checkout.session.completed", billing.session(payment)).status_code == 200
    assert billing.balance(user) == 1000 * MICRO_P_PER_CENT


def test_event_body_is_logged_without_secrets(billing, user, caplog):
    payment = billing.checkout(user, 1000)
    billing.fake.pay(payment.stripe_session_id)
    caplog.set_level("DEBUG")
    billing.deliver("checkout.session.completed", billing.session(payment))
    text = caplog.text + json.dumps([r.getMessage() for r in caplog.records])
    assert billing.fake.secret_key not in text
    assert billing.fake.webhook_secret not in text


def test_session_whose_creation_answer_was_lost_is_still_credited(billing, user):
    from portal.billing.models import Payment

    payment = billing.checkout(user, 1200)
    session_id = payment.stripe_session_id
    with billing.app.app_context():
        # As if Stripe made the session but its answer never reached the portal.
        row = db.session.get(Payment, payment.id)
        row.stripe_session_id, row.status = None, "failed"
        db.session.commit()
    billing.fake.pay(session_id)
    assert billing.deliver("checkout.session.completed", billing.fake.session_for(session_id)).status_code == 200
    stored = billing.payment(payment)
    assert (stored.stripe_session_id, stored.status) == (session_id, "paid")
    assert billing.balance(user) == 1200 * MICRO_P_PER_CENT
    billing.ledger_agrees(user)
