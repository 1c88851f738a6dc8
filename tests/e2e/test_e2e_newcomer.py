"""A newcomer's first minutes in demo mode, in a real browser: nothing configured, nothing online.

Sign up, confirm through the local mailbox, create a key, call the API with the ``openai``
SDK as the Quick Start shows, and see the simulated answer, the balance down by exactly
its cost, the row in the Request Log and both Usage charts drawn.

The product is ``python app.py --demo`` started here in a fresh instance directory, or,
with ``SAMALINK_NEWCOMER_URL`` set, the one already running there (``.ci/run`` starts it
with the README's first command in a fresh clone).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import openai
import pytest
import requests
from playwright.sync_api import Page, expect

from e2e_browser import PageWatch
from fixtures.gateway import free_port
from portal.money import format_p

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "a newcomer's own passphrase 2026"
DEMO_CREDIT_MICRO_P = 1000 * 1_000_000
START_TIMEOUT = 90.0
# What the product under test must not take from the shell running the tests.
_OWN_SETTINGS = ("DATABASE_URL", "GATEWAY_DATABASE_URL", "GATEWAY_URL", "GATEWAY_PUBLIC_URL", "PUBLIC_URL",
                 "INTERNAL_API_TOKEN", "SECRET_KEY", "PORT", "GATEWAY_PORT", "GATEWAY_HOST", "HOST",
                 "GATEWAY_INTERNAL_PORT", "GATEWAY_INTERNAL_HOST", "PROVIDERS_FILE", "SAMALINK_INSTANCE_DIR",
                 "SMTP_HOST", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE", "SAMALINK_DEMO")


@pytest.fixture(scope="module")
def demo_portal_url(chromium_path, tmp_path_factory) -> Iterator[str]:
    """The portal of a demo-mode product: the one at ``SAMALINK_NEWCOMER_URL``, or ``app.py --demo`` started here."""
    given = os.environ.get("SAMALINK_NEWCOMER_URL")
    if given:
        yield given.rstrip("/")
        return
    instance = tmp_path_factory.mktemp("newcomer")
    port = free_port()
    env = {name: value for name, value in os.environ.items()
           if name not in _OWN_SETTINGS and not name.endswith("_API_KEY")}
    env.update(PORT=str(port), GATEWAY_PORT=str(free_port()), GATEWAY_INTERNAL_PORT=str(free_port()),
               SECRET_KEY="newcomer-" + secrets.token_hex(16), PYTHONUNBUFFERED="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log_path = instance / "app.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--demo"], cwd=instance, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"app.py --demo exited:\n{log_path.read_text()[-4000:]}"
            try:
                if requests.get(url + "/login", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"app.py --demo did not start:\n{log_path.read_text()[-4000:]}"
            time.sleep(0.2)
        startup = log_path.read_text()
        assert "SMTP: not configured" in startup and "/dev/mailbox" in startup
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _confirm_through_the_mailbox(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/signup?next=/keys")
    expect(page.locator("[data-demo-banner]")).to_be_visible()
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    page.click("form button[type=submit]")
    page.get_by_role("heading", name="Check your inbox").wait_for()
    page.click("[data-mailbox-link]")
    page.wait_for_url("**/dev/mailbox")
    message = page.locator("article.mailbox-message", has_text=email).filter(
        has_text="Confirm your SAMALink e-mail address").first
    message.locator("a[href*='/confirm/']").click()
    page.wait_for_url("**/keys")


def _create_key(page: Page) -> str:
    page.fill("#name", "first key")
    page.click("#keys-section form button[type=submit]")
    shown = page.locator("#new-key-value")
    expect(shown).to_be_visible()
    return shown.inner_text().strip()


def test_a_newcomer_gets_an_answer_and_sees_it_metered(demo_portal_url, browser):
    base = demo_portal_url
    email = f"newcomer-{uuid.uuid4().hex[:10]}@example.com"
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="UTC")
    page = context.new_page()
    watch = PageWatch(base).attach(page)
    started = time.monotonic()
    try:
        _confirm_through_the_mailbox(page, base, email)
        expect(page.locator(".balance-pill strong")).to_have_text(format_p(DEMO_CREDIT_MICRO_P))
        key = _create_key(page)
        watch.assert_clean("signing up through the mailbox and creating a key")

        page.click("#sidebar >> text=Dashboard")
        page.wait_for_url("**/dashboard")
        api_base = page.inner_text("#dash-base-url").strip()
        client = openai.OpenAI(base_url=api_base, api_key=key, max_retries=0, timeout=60)
        raw = client.chat.completions.with_raw_response.create(
            model="deepseek-v3.2", messages=[{"role": "user", "content": "Hello from a newcomer"}])
        answer = raw.parse()
        print(f"first answer {time.monotonic() - started:.1f} s after the sign-up form")
        assert raw.headers["x-samalink-simulated"] == "true"
        assert answer.choices[0].message.content.startswith("(Simulated answer")
        cost_micro_p = round(answer.usage.cost * 1_000_000)
        assert cost_micro_p > 0

        balance = format_p(DEMO_CREDIT_MICRO_P - cost_micro_p)
        deadline = time.monotonic() + 20
        while True:
            page.goto(base + "/dashboard")
            if page.inner_text(".balance-pill strong").strip() == balance or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        expect(page.locator(".balance-pill strong")).to_have_text(balance)

        page.click("#sidebar >> text=Request Log")
        page.wait_for_url("**/requests")
        row = page.locator("#log-rows tr").first
        expect(row).to_contain_text("deepseek-v3.2")
        expect(row).to_contain_text(re.compile(r"\b200\b"))
        watch.assert_clean("reading the balance and the request log")

        page.click("#sidebar >> text=Usage")
        page.wait_for_url("**/usage")
        for kind in ("cost-by-model", "daily-usage"):
            page.wait_for_selector(f"canvas[data-chart-kind={kind}][data-chart-ready=true]")
            drawn = page.evaluate(
                "(kind) => Chart.getChart(document.querySelector(`canvas[data-chart-kind=${kind}]`))"
                ".data.datasets.length", kind)
            assert drawn >= 1, f"the {kind} chart has no data"
        watch.assert_clean("reading the usage charts")
    finally:
        context.close()
