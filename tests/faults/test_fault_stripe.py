"""Stripe down during checkout: a clear form error, nothing charged, and the next try just works.

The form error itself is covered in tests/billing; this follows the customer through the
outage to a successful top-up afterwards, with the ledger summing throughout.
"""

from __future__ import annotations

from fault_common import assert_ledger_sums

from fixtures.portal import login


def test_checkout_during_a_stripe_outage_and_after_it(portal_app, fake_stripe, user, gateway):
    portal_app.config.update(STRIPE_SECRET_KEY=fake_stripe.secret_key, STRIPE_WEBHOOK_SECRET=fake_stripe.webhook_secret,
                             STRIPE_API_BASE=fake_stripe.base_url, PUBLIC_URL="")
    portal_app.extensions.pop("samalink_stripe_client", None)
    client = portal_app.test_client()
    assert login(client, user.email, user.password).status_code == 303

    fake_stripe.down = True
    refused = client.post("/billing/checkout", data={"amount_usd": "25"})
    assert refused.status_code == 503
    assert "nothing was charged" in refused.get_data(as_text=True)
    assert "Location" not in refused.headers
    assert assert_ledger_sums(gateway, user.account_id) == 0

    fake_stripe.down = False
    accepted = client.post("/billing/checkout", data={"amount_usd": "25"})
    assert accepted.status_code == 303 and accepted.headers["Location"].startswith(fake_stripe.base_url)
    [session] = fake_stripe.sessions.values()
    fake_stripe.pay(session["id"])
    body, headers = fake_stripe.signed(fake_stripe.event("checkout.session.completed", session))
    assert portal_app.test_client().post("/stripe/webhook", data=body, headers=headers).status_code == 200
    # $25 = 25,000 P; the failed attempt added nothing.
    assert assert_ledger_sums(gateway, user.account_id) == 25_000 * 1_000_000
