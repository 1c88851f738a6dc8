"""A customer's first day, in a real browser against the real product.

Sign up, create a key and copy it with the copy button, top up through (fake) Stripe
Checkout and watch the credit arrive on the success page, call the API with the
``openai`` SDK using the copied key, read the Request Log (and its further pages), check
that the Usage charts draw exactly the calls made, change the range, change the password,
sign out and back in. Every page on the way must be free of console errors, CSP
violations and failed requests.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import openai
import pytest
from playwright.sync_api import Page, expect

from e2e_browser import PageWatch, account_id_of, log_in, pay_preset_top_up, sign_up
from gateway.catalog import load_catalog
from portal.money import format_p



def _zone_away_from_midnight() -> str:
    """A zone with a part-hour offset (days must still be cut at the customer's midnight)
    whose local day will not turn during the journey."""
    for zone in ("Asia/Kolkata", "America/St_Johns", "Asia/Kathmandu", "Australia/Adelaide"):
        hour = datetime.now(ZoneInfo(zone)).hour
        if 1 <= hour <= 22:
            return zone
    raise AssertionError("unreachable: the zones' offsets differ by more than two hours")


ZONE = _zone_away_from_midnight()
PASSWORD = "correct horse battery staple 1984"
NEW_PASSWORD = "a different and longer passphrase 2027"
KEY_PATTERN = re.compile(r"^sama_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LOG_PAGE_SIZE = 50
TOPUP_USD = 5
# The fake upstream's usage unless a request asks for other counts with [[usage:IN:OUT]].
DEFAULT_TOKENS = (11, 7)


@dataclass
class ModelUse:
    """What the journey's calls to one model add up to."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micro_p: int = 0


def _today() -> date:
    return datetime.now(ZoneInfo(ZONE)).date()


def _chart_data(page: Page, kind: str) -> dict:
    """Labels and datasets of the Chart.js chart drawn on the canvas of ``kind``."""
    selector = f"canvas[data-chart-kind={kind}][data-chart-ready=true]"
    page.wait_for_selector(selector)
    return page.evaluate(
        """(selector) => {
             const chart = Chart.getChart(document.querySelector(selector));
             return {type: chart.config.type, labels: chart.data.labels,
                     datasets: chart.data.datasets.map(d => ({label: d.label, data: d.data,
                                                              colour: d.backgroundColor}))};
           }""",
        selector,
    )


def _create_and_copy_key(page: Page, base: str) -> str:
    expect(page.locator("#keys-section")).to_contain_text("No keys yet")
    page.fill("#name", "journey laptop")
    page.click("#keys-section form button[type=submit]")
    shown = page.locator("#new-key-value")
    expect(shown).to_be_visible()
    expect(page.locator(".new-key")).to_contain_text("it will not be shown again")
    copy = page.locator(".new-key .copy-btn")
    copy.click()
    expect(copy).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == shown.inner_text().strip()
    assert KEY_PATTERN.match(copied), "the copy button copied something that is not a key"
    # Once left, the key is only ever shown masked.
    page.goto(base + "/keys")
    expect(page.locator("#new-key-value")).to_have_count(0)
    row = page.locator("tr.key-row").first
    expect(row).to_contain_text("journey laptop")
    expect(row).to_contain_text(copied[-4:])
    expect(row).not_to_contain_text(copied)
    return copied


def _top_up(page: Page, product) -> None:
    base = product.portal_url
    page.click("#sidebar >> text=Billing")
    page.wait_for_url("**/billing")
    expect(page.locator(".balance-pill strong")).to_have_text("0 P")
    session_id = pay_preset_top_up(page, product.stripe.base_url, TOPUP_USD)
    assert product.stripe.sessions[session_id]["amount_total"] == TOPUP_USD * 100
    status = page.locator("#topup-status")
    expect(status).to_have_attribute("data-status", "pending")
    expect(status).to_contain_text("Waiting for Stripe to confirm")
    # Marks this document: a reload or navigation would drop it.
    page.evaluate("window.__stillTheSamePage = true")
    delivered = product.stripe.confirm_payment(session_id, base)
    assert delivered.status_code == 200, delivered.text
    page.wait_for_selector("#topup-status[data-status=paid]", timeout=30_000)
    credit = f"{TOPUP_USD * 1000:,}.00 P"
    expect(status).to_contain_text(f"{credit} added to your balance")
    expect(page.locator(".balance-pill strong")).to_have_text(credit)
    assert page.evaluate("window.__stillTheSamePage === true"), "the success page reloaded instead of polling"
    page.click("main a:text-is('Payment history')")
    page.wait_for_url("**/payments")
    payments = page.locator("#payment-rows > tr")
    expect(payments).to_have_count(1)
    expect(payments.first).to_contain_text(f"${TOPUP_USD}.00")
    expect(payments.first).to_contain_text(credit)
    expect(payments.first.locator(".badge")).to_have_text(re.compile("paid", re.IGNORECASE))


def _call_api(base_url: str, key: str, catalog) -> tuple[dict[str, ModelUse], list[str]]:
    """Calls enough for more than one page of the log, over three models; returns what they add up to."""
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)
    uses: dict[str, ModelUse] = {}
    order: list[str] = []

    def count(model: str, tokens: tuple[int, int]) -> None:
        use = uses.setdefault(model, ModelUse())
        price = catalog.models[model]
        use.requests += 1
        use.input_tokens += tokens[0]
        use.output_tokens += tokens[1]
        use.cost_micro_p += tokens[0] * price.input_price + tokens[1] * price.output_price
        order.append(model)

    for i in range(40):
        answer = client.chat.completions.create(
            model="deepseek-v3.2", messages=[{"role": "user", "content": f"Hello number {i}"}])
        assert answer.choices[0].message.content
        assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == DEFAULT_TOKENS
        count("deepseek-v3.2", DEFAULT_TOKENS)
    for i in range(12):
        answer = client.chat.completions.create(
            model="qwen-3.5-plus", messages=[{"role": "user", "content": f"Summarise {i} [[usage:120:45]]"}])
        assert answer.usage.completion_tokens == 45
        count("qwen-3.5-plus", (120, 45))
    for i in range(3):
        stream = client.chat.completions.create(
            model="kimi-k2.5", messages=[{"role": "user", "content": f"Stream {i}"}],
            stream=True, stream_options={"include_usage": True})
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text
        count("kimi-k2.5", DEFAULT_TOKENS)
    return uses, order


def _wait_for_log(product, account_id: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = product.internal("GET", f"/accounts/{account_id}/requests", params={"limit": 200}).json()
        if len(page["data"]) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"the gateway logged fewer than {count} requests")


def _check_request_log(page: Page, order: list[str]) -> None:
    page.click("#sidebar >> text=Request Log")
    page.wait_for_url("**/requests")
    rows = page.locator("#log-rows > tr:not(.load-more-row)")
    expect(rows).to_have_count(LOG_PAGE_SIZE)
    expect(page.locator("#load-more")).to_have_count(1)
    # Newest first: the streamed calls were the last ones.
    expect(rows.first).to_contain_text(order[-1])
    expect(rows.first).to_contain_text("stream")
    # "Load more" fetches the next page when clicked or scrolled into view.
    page.locator("#load-more").scroll_into_view_if_needed()
    try:
        expect(page.locator("#load-more")).to_have_count(0, timeout=3_000)
    except AssertionError:
        page.click("#load-more a")
    expect(page.locator("#load-more")).to_have_count(0)
    # Every call, and the one refused before the top-up (the oldest), is in the log.
    expect(rows).to_have_count(len(order) + 1)
    expect(rows.last).to_contain_text("402")
    expect(rows.nth(len(order) - 1)).to_contain_text(order[0])
    statuses = [s.strip() for s in rows.locator("td:last-child").all_inner_texts()]
    assert statuses[:-1] == ["200"] * len(order), statuses


def _check_dashboard(page: Page, uses: dict[str, ModelUse]) -> None:
    page.click("#sidebar >> text=Dashboard")
    page.wait_for_url("**/dashboard")
    spent = sum(use.cost_micro_p for use in uses.values())
    requests_made = sum(use.requests for use in uses.values())
    balance = format_p(TOPUP_USD * 1_000_000_000 - spent)
    expect(page.locator(".balance-pill strong")).to_have_text(balance)
    cards = page.locator(".stat-grid .stat")
    expect(cards.filter(has_text="Balance").locator(".stat-value")).to_have_text(balance)
    expect(cards.filter(has_text="Spend this month").locator(".stat-value")).to_have_text(format_p(spent))
    expect(cards.filter(has_text="Requests this month").locator(".stat-value")).to_have_text(str(requests_made))


def _check_usage(page: Page, uses: dict[str, ModelUse]) -> None:
    page.click("#sidebar >> text=Usage")
    page.wait_for_url("**/usage")
    # Chromium reports the zone under its older IANA name; both mean the same offset.
    expect(page.locator(".page-head")).to_contain_text(re.compile(re.escape(ZONE) + "|Asia/Calcutta"))
    today = _today()

    by_cost = sorted(uses, key=lambda m: uses[m].cost_micro_p, reverse=True)
    cost = _chart_data(page, "cost-by-model")
    assert cost["type"] == "doughnut"
    assert cost["labels"] == by_cost
    assert cost["datasets"][0]["data"] == pytest.approx([uses[m].cost_micro_p / 1e6 for m in by_cost])

    week = [(today - timedelta(days=6 - i)).isoformat() for i in range(7)]
    daily = _assert_daily(page, uses, week, "cost_micro_p")
    # A model has one colour in both charts.
    slice_colours = dict(zip(cost["labels"], cost["datasets"][0]["colour"]))
    assert {d["label"]: d["colour"] for d in daily["datasets"]} == slice_colours
    for metric, label in (("tokens", "Tokens"), ("requests", "Requests"), ("cost_micro_p", "Cost")):
        page.click(f"[data-metric={metric}]")
        expect(page.locator(f"[data-metric={metric}]")).to_have_attribute("aria-pressed", "true")
        _assert_daily(page, uses, week, metric)

    # The range buttons swap only the panel; the charts are drawn again for the new range.
    page.click(".segmented a:text-is('30d')")
    page.wait_for_url("**/usage?range=30d")
    expect(page.locator(".segmented a.active")).to_have_text("30d")
    month = [(today - timedelta(days=29 - i)).isoformat() for i in range(30)]
    page.wait_for_function(
        "() => { const c = document.querySelector('canvas[data-chart-kind=daily-usage][data-chart-ready]');"
        " return c && Chart.getChart(c) && Chart.getChart(c).data.labels.length === 30; }")
    _assert_daily(page, uses, month, "cost_micro_p")

    # A custom range of only today.
    page.fill(".custom-range input[name=start]", today.isoformat())
    page.fill(".custom-range input[name=end]", today.isoformat())
    page.click(".custom-range button[type=submit]")
    page.wait_for_url("**/usage?range=custom*")
    page.wait_for_function(
        "() => { const c = document.querySelector('canvas[data-chart-kind=daily-usage][data-chart-ready]');"
        " return c && Chart.getChart(c) && Chart.getChart(c).data.labels.length === 1; }")
    _assert_daily(page, uses, [today.isoformat()], "cost_micro_p")

    # A day before any call: the product's empty states.
    yesterday = (today - timedelta(days=1)).isoformat()
    page.fill(".custom-range input[name=start]", yesterday)
    page.fill(".custom-range input[name=end]", yesterday)
    page.click(".custom-range button[type=submit]")
    expect(page.locator("#usage-panel")).to_contain_text(
        "No usage data yet. Make API calls to see model breakdown.")
    expect(page.locator("canvas")).to_have_count(0)


def _assert_daily(page: Page, uses: dict[str, ModelUse], days: list[str], metric: str) -> dict:
    daily = _chart_data(page, "daily-usage")
    assert daily["type"] == "bar"
    assert daily["labels"] == days
    assert [d["label"] for d in daily["datasets"]] == sorted(uses)
    for dataset in daily["datasets"]:
        use = uses[dataset["label"]]
        value = {"cost_micro_p": use.cost_micro_p / 1e6, "tokens": use.input_tokens + use.output_tokens,
                 "requests": use.requests}[metric]
        assert dataset["data"] == pytest.approx([0] * (len(days) - 1) + [value]), (metric, dataset["label"])
    return daily


def _change_password_and_sign_in_again(page: Page, base: str, email: str) -> None:
    page.click("#sidebar >> text=Settings")
    page.wait_for_url("**/settings")
    page.fill("#current_password", PASSWORD)
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("#password-form button[type=submit]")
    expect(page.locator(".toasts")).to_contain_text("Password changed")
    # Still signed in after the change.
    expect(page.locator(".user-email")).to_have_text(email)

    page.click(".user-menu summary")
    page.click(".user-menu-items button:text-is('Sign out')")
    page.wait_for_url("**/login")
    expect(page.locator(".toasts")).to_contain_text("You are signed out.")
    page.goto(base + "/dashboard")
    page.wait_for_url("**/login?next=*")

    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page.locator(".form-error")).to_have_text("Wrong e-mail or password.")
    log_in(page, base, email, NEW_PASSWORD)
    expect(page.locator(".user-email")).to_have_text(email)


def test_customer_journey(product, browser, providers_file):
    catalog = load_catalog(providers_file)
    base = product.portal_url
    email = f"journey-{uuid.uuid4().hex[:10]}@example.com"
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id=ZONE,
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    watch = PageWatch(base).attach(page)
    try:
        sign_up(page, base, email, PASSWORD, product.log_text, landing="/keys")
        expect(page.locator(".user-email")).to_have_text(email)
        watch.assert_clean("signing up")

        key = _create_and_copy_key(page, base)
        watch.assert_clean("creating and copying a key")

        page.click("#sidebar >> text=Dashboard")
        page.wait_for_url("**/dashboard")
        api_base = page.inner_text("#dash-base-url").strip()
        assert api_base == product.gateway_url + "/v1"
        with pytest.raises(openai.APIStatusError) as refused:
            openai.OpenAI(base_url=api_base, api_key=key, max_retries=0).chat.completions.create(
                model="deepseek-v3.2", messages=[{"role": "user", "content": "before any top-up"}])
        assert refused.value.status_code == 402

        _top_up(page, product)
        watch.assert_clean("topping up")

        uses, order = _call_api(api_base, key, catalog)
        # The refused call is a logged request too, at no cost and no tokens.
        uses["deepseek-v3.2"].requests += 1
        _wait_for_log(product, account_id_of(page), len(order) + 1)

        _check_request_log(page, order)
        watch.assert_clean("reading the request log")

        _check_dashboard(page, uses)
        watch.assert_clean("reading the dashboard")

        _check_usage(page, uses)
        watch.assert_clean("reading usage")

        _change_password_and_sign_in_again(page, base, email)
        watch.assert_clean("changing the password and signing in again")
    finally:
        context.close()
