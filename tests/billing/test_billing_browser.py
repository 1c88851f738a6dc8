"""What only a browser shows: the redirect to Checkout under the page's CSP, and the success page's polling."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from portal.billing.models import MICRO_P_PER_CENT



@pytest.fixture
def served(billing_app):
    """The portal served over real HTTP on 127.0.0.1."""
    server = make_server("127.0.0.1", 0, billing_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _signed_in_page(browser, served, user, javascript: bool = True):
    page = browser.new_context(java_script_enabled=javascript).new_page()
    errors: list[str] = []

    def collect(message) -> None:
        # Only the portal's own pages count; the fake checkout page is not ours.
        if message.type == "error" and (message.location or {}).get("url", "").startswith(served):
            errors.append(message.text)

    page.on("console", collect)
    page.goto(served + "/login")
    page.fill("#email", user.email)
    page.fill("#password", user.password)
    page.click("form button[type=submit]")
    page.wait_for_url("**/dashboard")
    return page, errors


def test_success_page_shows_the_credit_without_a_reload(billing, user, served, browser):
    payment = billing.checkout(user, 700)
    page, errors = _signed_in_page(browser, served, user)
    page.goto(f"{served}/billing/success?session_id={payment.stripe_session_id}")
    assert "Waiting for Stripe to confirm" in page.inner_text("#topup-status")
    billing.fake.pay(payment.stripe_session_id)
    page.wait_for_selector("#topup-status[data-status=paid]", timeout=30_000)
    assert "7,000.00 P added to your balance" in page.inner_text("#topup-status")
    assert "7,000.00 P" in page.inner_text(".balance-pill")
    assert billing.balance(user) == 700 * MICRO_P_PER_CENT
    assert errors == []


def test_preset_button_goes_to_checkout_through_htmx(billing, user, served, browser):
    page, errors = _signed_in_page(browser, served, user)
    page.goto(served + "/billing")
    page.click(".topup-presets button >> text=$20")
    page.wait_for_url(billing.fake.base_url + "/pay/*")
    assert page.inner_text("#amount") == "2000 usd"
    assert errors == []


def test_custom_amount_reaches_checkout_without_javascript(billing, user, served, browser):
    # A plain form post answered by a redirect to Stripe: the page's form-action must allow it.
    page, _ = _signed_in_page(browser, served, user, javascript=False)
    page.goto(served + "/billing")
    page.fill("#amount_usd", "12.34")
    page.click(".topup-custom button[type=submit]")
    page.wait_for_url(billing.fake.base_url + "/pay/*")
    assert page.inner_text("#amount") == "1234 usd"
    assert [p.amount_cents for p in billing.payments(user)] == [1234]
