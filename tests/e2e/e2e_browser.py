"""What the browser tests share: a watch on each page for console errors, CSP violations and
failed requests, and the few steps (sign up, sign in) that several tests take."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

from playwright.sync_api import ConsoleMessage, Page, Request, Response

CSP_MARKERS = ("Refused to", "violates the following Content Security Policy directive")


@dataclass
class PageWatch:
    """Everything that went wrong on the portal's own pages since the last ``reset``."""

    origin: str
    problems: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> "PageWatch":
        """Listen on ``page``; returns self."""
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught error on {page.url}: {error}"))
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)
        return self

    def _ours(self, url: str) -> bool:
        return url.startswith(self.origin)

    def _console(self, message: ConsoleMessage) -> None:
        where = (message.location or {}).get("url", "") or (message.page.url if message.page else "")
        csp = any(marker in message.text for marker in CSP_MARKERS)
        if (message.type == "error" or csp) and (self._ours(where) or csp):
            self.problems.append(f"console {message.type} at {where}: {message.text}")

    def _request_failed(self, request: Request) -> None:
        # ERR_ABORTED is the browser cancelling what a page still loaded (its favicon, a poll)
        # because the person moved on to the next page; anything else is a real failure.
        if self._ours(request.url) and request.failure != "net::ERR_ABORTED":
            self.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        if self._ours(response.url) and response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def reset(self) -> None:
        """Forget what was seen so far."""
        self.problems.clear()

    def assert_clean(self, what: str) -> None:
        """Fail with every problem seen while doing ``what``."""
        problems, self.problems = list(self.problems), []
        assert problems == [], f"{what}:\n" + "\n".join(problems)


def confirmation_link(log_text: Callable[[], str], email: str, timeout: float = 30.0) -> str:
    """The newest confirmation link the product mailed to ``email``, read from its log.

    Without an SMTP server the portal writes each message to its log; the link is the
    first line after the subject line that starts with http.
    """
    pattern = re.compile(
        rf"mail to {re.escape(email.lower())} not sent\.\s*\nSubject: Confirm your SAMALink e-mail address\n"
        r".*?(https?://\S+/confirm/[A-Za-z0-9_.\-]+)", re.S)
    deadline = time.monotonic() + timeout
    while True:
        links = pattern.findall(log_text())
        if links:
            return links[-1]
        assert time.monotonic() < deadline, f"no confirmation link for {email} in the product's log"
        time.sleep(0.1)


def sign_up(page: Page, base_url: str, email: str, password: str, log_text: Callable[[], str],
            landing: str = "/keys") -> None:
    """Create an account through the sign-up form, confirm it by the mailed link, land on ``landing``.

    After the form the browser shows "Check your inbox"; the link is read from the
    product's log (``log_text``) and opened in the same browser, which signs it in.
    The first page after that reports the browser's time zone; the dashboard and usage
    pages then reload themselves, so the landing page is one that does not (API Keys).
    """
    page.goto(f"{base_url}/signup?next={landing}")
    page.fill("#email", email)
    page.fill("#password", password)
    page.fill("#confirm", password)
    page.click("form button[type=submit]")
    page.wait_for_url(lambda url: urlsplit(url).path == "/signup/sent")
    page.get_by_role("heading", name="Check your inbox").wait_for()
    link = confirmation_link(log_text, email)
    page.goto(base_url + urlsplit(link).path)
    page.wait_for_url(lambda url: urlsplit(url).path == landing)
    page.wait_for_function("() => !document.body.hasAttribute('data-tz-detect')")


def log_in(page: Page, base_url: str, email: str, password: str) -> None:
    """Sign in through the login form and land on the dashboard."""
    page.goto(base_url + "/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form button[type=submit]")
    page.wait_for_url("**/dashboard")


def account_id_of(page: Page) -> str:
    """The signed-in customer's account id, as Settings shows it under Account Info."""
    html = page.evaluate("fetch('/settings', {credentials: 'same-origin'}).then(r => r.text())")
    match = re.search(r'<dt>Account ID</dt><dd><code class="mono">([^<]+)</code>', html)
    assert match, "Settings shows no account id"
    return match.group(1)


def pay_preset_top_up(page: Page, stripe_base_url: str, usd: int) -> str:
    """From Billing, pick a preset amount and pay on the Checkout page; the session id.

    The browser ends on the success page, still waiting for Stripe's confirmation.
    """
    page.click(f".topup-presets form:has(input[name=amount_usd][value='{usd}']) button")
    page.wait_for_url(stripe_base_url + "/pay/**")
    page.click("#pay")
    page.wait_for_url("**/billing/success?session_id=*")
    return page.url.split("session_id=", 1)[1]
