"""Billing fixtures: the portal wired to the fake Stripe API and a real gateway ledger."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from flask import Flask
from sqlalchemy import select

from fixtures.portal import PortalUser, login
from portal.billing import service
from portal.billing.models import CREDITED_STATUSES, Payment
from portal.extensions import db
from portal.gateway_client import gateway
from portal.models import User


class Billing:
    """Drives checkouts and webhook deliveries and reads back rows and balances."""

    def __init__(self, app: Flask, fake, make_user: Callable[..., PortalUser]) -> None:
        self.app = app
        self.fake = fake
        self.client = app.test_client()
        self._make_user = make_user

    def make_buyer(self, timezone: str = "UTC") -> PortalUser:
        """A new user in ``timezone``, signed up through the portal, with an empty gateway account."""
        return self._make_user(timezone=timezone)

    def checkout(self, buyer: PortalUser, cents: int) -> Payment:
        """Start a checkout the way the Billing page does; the pending payment row."""
        with self.app.test_request_context():
            user = db.session.get(User, buyer.id)
            service.create_checkout(user, cents, "http://portal.test/billing/success?session_id={CHECKOUT_SESSION_ID}",
                                    "http://portal.test/billing/cancel")
            payment = db.session.execute(
                select(Payment).where(Payment.user_id == buyer.id).order_by(Payment.id.desc())).scalars().first()
            db.session.expunge(payment)
            return payment

    def payment(self, payment: Payment) -> Payment:
        """The payment row as stored now."""
        with self.app.app_context():
            fresh = db.session.get(Payment, payment.id)
            db.session.expunge(fresh)
            return fresh

    def payments(self, buyer: PortalUser) -> list[Payment]:
        """Every payment row of ``buyer``."""
        with self.app.app_context():
            rows = list(db.session.execute(select(Payment).where(Payment.user_id == buyer.id)).scalars())
            for row in rows:
                db.session.expunge(row)
            return rows

    def session(self, payment: Payment) -> dict[str, Any]:
        """Stripe's current view of the payment's Checkout Session."""
        return self.fake.view_session(payment.stripe_session_id, [])

    def post_event(self, event: dict[str, Any], **sign: Any):
        """Deliver a signed event on a fresh test client (safe from several threads at once)."""
        body, headers = self.fake.signed(event, **sign)
        return self.app.test_client().post("/stripe/webhook", data=body, headers=headers)

    def deliver(self, event_type: str, obj: dict[str, Any]):
        """Build an event around ``obj`` and deliver it."""
        return self.post_event(self.fake.event(event_type, obj))

    def balance(self, buyer: PortalUser) -> int:
        """The account balance in micro-P, from the gateway's internal API."""
        with self.app.app_context():
            return gateway().get_account(buyer.account_id)["balance_micro_p"]

    def entries(self, buyer: PortalUser) -> dict[str, int]:
        """The account's ledger entries as {idempotency key: signed micro-P}."""
        with self.app.app_context():
            page = gateway().ledger_page(buyer.account_id, limit=200)
        return {e["idempotency_key"]: e["amount_micro_p"] for e in page["data"]}

    def ledger_agrees(self, buyer: PortalUser) -> None:
        """The balance equals what the payment rows say was credited and taken back."""
        expected = 0
        for payment in self.payments(buyer):
            if payment.status in CREDITED_STATUSES:
                assert 0 <= payment.taken_back_micro_p <= payment.credit_micro_p
                expected += payment.credit_micro_p - payment.taken_back_micro_p
        assert self.balance(buyer) == expected


@pytest.fixture
def billing_app(portal_app, fake_stripe, gateway):
    """The portal app with card payments configured against the fake Stripe API."""
    portal_app.config.update(
        STRIPE_SECRET_KEY=fake_stripe.secret_key,
        STRIPE_WEBHOOK_SECRET=fake_stripe.webhook_secret,
        STRIPE_API_BASE=fake_stripe.base_url,
        PUBLIC_URL="",
    )
    portal_app.extensions.pop("samalink_stripe_client", None)
    yield portal_app
    portal_app.extensions.pop("samalink_stripe_client", None)


@pytest.fixture
def billing(billing_app, fake_stripe, make_user) -> Billing:
    """Checkout, webhook and ledger helpers bound to ``billing_app``."""
    return Billing(billing_app, fake_stripe, make_user)


@pytest.fixture
def web(billing, user):
    """A test client signed in as ``user`` through the real sign-in form."""
    client = billing.app.test_client()
    response = login(client, user.email, user.password)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return client
