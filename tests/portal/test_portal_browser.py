"""What only a browser shows: htmx swaps, charts drawn, copy feedback, and no CSP violations."""

from __future__ import annotations

import threading

import pytest

from fixtures.gateway import free_port
from fixtures.portal import call_api, wait_for_requests



@pytest.fixture
def live_portal(csrf_portal_app):
    """The CSRF-protected portal served by waitress on a free port."""
    from waitress.server import create_server

    server = create_server(csrf_portal_app, host="127.0.0.1", port=free_port(), threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    thread.join(timeout=10)


@pytest.fixture
def browser_page(browser):
    """A Chromium page collecting console errors in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Kolkata")
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    context.close()


def _sign_in(page, base, user):
    page.goto(f"{base}/login")
    page.fill("#email", user.email)
    page.fill("#password", user.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard")


def test_key_creation_copy_and_inline_errors(live_portal, browser_page, make_user):
    # A zone already set: the dashboard does not report the browser's and reload itself
    # while the click below navigates away (which left the page on /dashboard).
    page, user = browser_page, make_user(timezone="Asia/Kolkata")
    _sign_in(page, live_portal, user)
    page.click("nav >> text=API Keys")
    page.wait_for_url(f"{live_portal}/keys")
    page.fill("#spend_limit", "lots")
    page.click("button:has-text('Create key')")
    page.wait_for_selector("text=Enter a number of P")
    assert page.url == f"{live_portal}/keys"
    page.fill("#name", "browser key")
    page.fill("#spend_limit", "")
    page.click("button:has-text('Create key')")
    page.wait_for_selector(".new-key")
    assert page.inner_text("#new-key-value").startswith("sama_")
    page.click(".new-key .copy-btn")
    page.wait_for_selector(".new-key .copy-btn.copied")
    assert page.inner_text(".new-key .copy-btn") == "Copied"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("tr.key-row >> text=Revoke")
    page.wait_for_selector("tr.key-row .badge-muted")
    assert page.errors == []


def test_charts_draw_and_the_range_switch_swaps_the_panel(live_portal, browser_page, make_user, gateway):
    import uuid

    page, user = browser_page, make_user(timezone="Asia/Kolkata")
    gateway.internal("POST", f"/accounts/{user.account_id}/ledger", json={
        "kind": "credit", "amount_micro_p": 10**9, "idempotency_key": f"browser-{uuid.uuid4()}"})
    key = gateway.create_key(user.account_id, name="charts")["key"]
    for model in ("deepseek-v3.2", "glm-5", "deepseek-v3.2"):
        assert call_api(gateway, key, model)["status"] == 200
    wait_for_requests(gateway, user.account_id, 3)
    _sign_in(page, live_portal, user)
    page.goto(f"{live_portal}/usage")
    page.wait_for_selector("canvas[data-chart-ready]")
    assert page.locator("canvas[data-chart-ready]").count() == 2
    page.click("button[data-metric=tokens]")
    assert page.get_attribute("button[data-metric=tokens]", "aria-pressed") == "true"
    page.click("a.seg >> text=30d")
    page.wait_for_url(f"{live_portal}/usage?range=30d")
    page.wait_for_selector("a.seg.active >> text=30d")
    page.wait_for_selector("canvas[data-chart-ready]")
    assert page.locator("nav.sidebar, aside.sidebar").count() == 1  # only the panel was swapped
    page.goto(f"{live_portal}/quickstart")
    page.click("button[role=tab] >> text=Anthropic format")
    assert page.is_visible("#qs-panel-anthropic") and not page.is_visible("#qs-panel-curl")
    assert page.errors == []
