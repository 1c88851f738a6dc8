"""Every portal page, loaded once in Chromium by a customer with data, and the public pages
signed out: no console error, no CSP violation, no failed request, no sideways scrolling on a
phone. Each page is photographed at desktop (1280x800) and phone (390x844) widths into
tests/e2e/screenshots/ for a person to look at.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from e2e_browser import PageWatch, account_id_of, pay_preset_top_up, sign_up

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "pages walk through the portal 77"

# name, path; "{key}" and "{session}" are filled in from the customer's own data.
SIGNED_IN_PAGES = [
    ("dashboard", "/dashboard"),
    ("quickstart", "/quickstart"),
    ("models", "/models"),
    ("keys", "/keys"),
    ("key-rename", "/keys/{key}/rename"),
    ("key-limits", "/keys/{key}/limits"),
    ("key-revoke", "/keys/{key}/revoke"),
    ("billing", "/billing"),
    ("billing-success", "/billing/success?session_id={session}"),
    ("billing-cancel", "/billing/cancel"),
    ("pricing", "/pricing"),
    ("usage", "/usage"),
    ("requests", "/requests"),
    ("payments", "/payments"),
    ("settings", "/settings"),
    ("support", "/support"),
    ("docs", "/docs"),
    ("logout", "/logout"),
]
PUBLIC_PAGES = [
    ("pricing", "/pricing"),
    ("support", "/support"),
    ("docs", "/docs"),
    ("login", "/login"),
    ("signup", "/signup"),
    ("reset", "/reset"),
]


@dataclass
class Visitor:
    """A browser tab, what it is watched for, and the values page paths need."""

    page: Page
    watch: PageWatch
    base: str
    values: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def customer(product, browser):
    """A signed-in customer with a key, a paid top-up and a few API calls behind them."""
    context = browser.new_context(viewport=DESKTOP, timezone_id="Europe/Berlin",
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    base = product.portal_url
    sign_up(page, base, f"pages-{uuid.uuid4().hex[:10]}@example.com", PASSWORD, product.log_text)
    page.goto(base + "/keys")
    page.fill("#name", "pages key")
    page.click("#keys-section form button[type=submit]")
    key = page.inner_text("#new-key-value").strip()
    key_id = page.get_attribute("tr.key-row", "id").removeprefix("key-")

    page.goto(base + "/billing")
    session_id = pay_preset_top_up(page, product.stripe.base_url, 10)
    assert product.stripe.confirm_payment(session_id, base).status_code == 200
    page.wait_for_selector("#topup-status[data-status=paid]", timeout=30_000)
    for model in ("deepseek-v3.2", "glm-5", "claude-haiku-4.5"):
        answer = requests.post(f"{product.gateway_url}/v1/chat/completions", timeout=30,
                               headers={"Authorization": f"Bearer {key}"},
                               json={"model": model, "messages": [{"role": "user", "content": "Hi"}]})
        assert answer.status_code == 200, answer.text
    _wait_for_requests(product, account_id_of(page), 3)
    visitor = Visitor(page, PageWatch(base).attach(page), base,
                      {"key": key_id, "session": session_id, "api_key": key, "account": account_id_of(page)})
    yield visitor
    context.close()


@pytest.fixture(scope="module")
def stranger(product, browser):
    """A browser that is not signed in."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    yield Visitor(page, PageWatch(product.portal_url).attach(page), product.portal_url)
    context.close()


def _wait_for_requests(product, account_id: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(product.internal("GET", f"/accounts/{account_id}/requests").json()["data"]) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} requests were logged")


def _visit(visitor: Visitor, name: str, path: str, screenshots: Path) -> None:
    page, watch = visitor.page, visitor.watch
    page.set_viewport_size(DESKTOP)
    watch.reset()
    response = page.goto(visitor.base + path.format(**visitor.values))
    assert response is not None and response.status == 200, f"{path} answered {response and response.status}"
    page.wait_for_load_state("networkidle")
    _wait_for_charts(page)
    expect(page.locator("main h1").first).to_be_visible()
    page.screenshot(path=screenshots / f"{name}-desktop.png", full_page=True)

    page.set_viewport_size(PHONE)
    _wait_for_charts(page)
    # The sidebar folds away behind the menu button on a phone.
    expect(page.locator(".menu-toggle")).to_be_visible()
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    page.screenshot(path=screenshots / f"{name}-phone.png", full_page=True)
    watch.assert_clean(f"loading {path}")
    assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"


def _wait_for_charts(page: Page) -> None:
    """Charts draw after load and animate briefly; wait until every one is drawn and still."""
    page.wait_for_function(
        """() => !window.Chart || [...document.querySelectorAll('canvas[data-chart-kind]')].every(c => {
             const chart = Chart.getChart(c);
             return chart && !chart.animating && c.width > 0;
           })""")


@pytest.mark.parametrize(("name", "path"), SIGNED_IN_PAGES, ids=[n for n, _ in SIGNED_IN_PAGES])
def test_signed_in_page_loads_cleanly(customer, screenshots_dir, name, path):
    _visit(customer, f"in-{name}", path, screenshots_dir)


@pytest.mark.parametrize(("name", "path"), PUBLIC_PAGES, ids=[n for n, _ in PUBLIC_PAGES])
def test_public_page_loads_cleanly_signed_out(stranger, screenshots_dir, name, path):
    _visit(stranger, f"out-{name}", path, screenshots_dir)
    # Signed out, the frame offers signing in and hides the private pages.
    expect(stranger.page.locator(".topbar")).to_contain_text("Sign in")
    expect(stranger.page.locator("#sidebar a[href='/billing']")).to_have_count(0)


def test_phone_menu_opens_the_sidebar(customer):
    page = customer.page
    page.set_viewport_size(PHONE)
    page.goto(customer.base + "/dashboard")
    toggle = page.locator(".menu-toggle")
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#sidebar a[href='/usage']")).to_be_in_viewport()
    page.click("#sidebar a[href='/usage']")
    page.wait_for_url("**/usage")
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    customer.watch.assert_clean("using the phone menu")


def test_injected_inline_script_is_refused_and_reported(stranger):
    # The strict Content-Security-Policy must hold in a real browser: an inline script slipped
    # into a page (as an injection would) does not run, and the violation is what the page
    # watch above reports.
    page, watch = stranger.page, stranger.watch
    page.set_viewport_size(DESKTOP)
    page.goto(stranger.base + "/pricing")
    page.wait_for_load_state("networkidle")
    watch.reset()
    page.evaluate("""() => {
        const script = document.createElement('script');
        script.textContent = 'window.__injected = true;';
        document.body.appendChild(script);
    }""")
    page.wait_for_timeout(200)
    assert page.evaluate("window.__injected === undefined")
    assert any("Content Security Policy" in problem for problem in watch.problems), watch.problems
    watch.reset()


def test_request_log_shows_the_status_column_at_desktop_width(customer, product, screenshots_dir):
    # The widest rows there are: cache reads and writes, reasoning and a price tier; a failed call.
    page = customer.page
    for text, ok in (("[[usage:10000:50:195000:3000:1000:777]]", True), ("[[error:500]]", False)):
        answer = requests.post(f"{product.gateway_url}/v1/chat/completions", timeout=30,
                               headers={"Authorization": f"Bearer {customer.values['api_key']}"},
                               json={"model": "gemini-3.1-pro", "messages": [{"role": "user", "content": text}]})
        assert (answer.status_code == 200) is ok, answer.text
    _wait_for_requests(product, customer.values["account"], 5)
    page.set_viewport_size(DESKTOP)
    page.goto(customer.base + "/requests")
    expect(page.locator("[data-testid=price-tier]").first).to_have_text("> 200K")
    expect(page.locator(".token-parts").first).to_contain_text("cached 195,000")
    wrap = page.locator("#log-table .table-wrap")
    scroll_width, client_width = wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
    assert scroll_width <= client_width, f"the log scrolls sideways by {scroll_width - client_width}px at 1280px"
    status_head = page.locator("#log-table thead th").last
    expect(status_head).to_have_text("Status")
    expect(page.locator("#log-rows .badge-error")).to_have_count(1)
    for cell in (status_head, page.locator("#log-rows tr.log-row td:last-child").first,
                 page.locator("#log-rows .badge-error")):
        expect(cell).to_be_in_viewport(ratio=1)
        box = cell.bounding_box()
        assert box is not None and box["x"] + box["width"] <= DESKTOP["width"]
    page.screenshot(path=screenshots_dir / "in-requests-cached-desktop.png")
    customer.watch.assert_clean("reading the request log")


def _price_table_overflows(page: Page) -> list[int]:
    return page.evaluate("""() => [...document.querySelectorAll('.price-table')].map(t => {
        const wrap = t.closest('.table-wrap');
        return wrap.scrollWidth - wrap.clientWidth;
    })""")


def test_pricing_tables_do_not_scroll_sideways_on_a_phone_or_a_desktop(stranger, screenshots_dir):
    page = stranger.page
    page.set_viewport_size(DESKTOP)
    page.goto(stranger.base + "/pricing")
    page.wait_for_load_state("networkidle")
    overflows = _price_table_overflows(page)
    assert overflows and max(overflows) <= 0, f"price tables scroll sideways at 1280px: {overflows}"
    page.screenshot(path=screenshots_dir / "out-pricing-wide-desktop.png", full_page=True)
    last_price = page.locator('tr[data-model="claude-sonnet-4.5"] td').last
    last_price.scroll_into_view_if_needed()
    expect(last_price).to_be_in_viewport(ratio=1)
    page.set_viewport_size(PHONE)
    overflows = _price_table_overflows(page)
    assert overflows and max(overflows) <= 0, f"price tables scroll sideways on a phone: {overflows}"
    cache_read = page.locator('tr[data-model="claude-sonnet-4.5"] td[data-label="Cache read"]')
    expect(cache_read).to_be_visible()
    expect(cache_read).to_contain_text("300 P")
    page.screenshot(path=screenshots_dir / "out-pricing-stacked-phone.png", full_page=True)
    page.set_viewport_size(DESKTOP)
    stranger.watch.assert_clean("reading prices on a phone")
