"""A team of four in a real browser: the owner creates it and invites an admin, a developer
and a billing member, who sign up through their links and join; billing tops up the shared
balance, the developer's key spends it, each role meets its limits, and removing the
developer stops their key at once."""

from __future__ import annotations

import re
import time
import uuid
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import openai
from playwright.sync_api import Browser, Page, expect

from e2e_browser import PageWatch, confirmation_link, sign_up

PASSWORD = "team passphrase for a long afternoon 77"
TEAM = "Acme Research"
TOPUP_USD = 5
INVITE_SUBJECT = "You are invited to a team on SAMALink"


def _invitation_link(log_text: Callable[[], str], email: str, timeout: float = 30.0) -> str:
    """The newest invitation link the product mailed to ``email``, read from its log."""
    pattern = re.compile(rf"mail to {re.escape(email.lower())} not sent\.\s*\nSubject: {INVITE_SUBJECT}\n"
                         r".*?(https?://\S+/teams/invite/[A-Za-z0-9_.\-]+)", re.S)
    deadline = time.monotonic() + timeout
    while True:
        links = pattern.findall(log_text())
        if links:
            return links[-1]
        assert time.monotonic() < deadline, f"no invitation for {email} in the product's log"
        time.sleep(0.1)


def _new_page(browser: Browser, base: str) -> tuple[Page, PageWatch]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="UTC")
    page = context.new_page()
    # Removing someone asks for confirmation first.
    page.on("dialog", lambda dialog: dialog.accept())
    return page, PageWatch(base).attach(page)


def _team_of(page: Page) -> str:
    return parse_qs(urlsplit(page.url).query)["account"][0]


def _invite(page: Page, email: str, role: str) -> None:
    page.fill("#email", email)
    page.select_option("#role", role)
    page.click("#invite-form button[type=submit]")
    expect(page.locator(f"#invitation-list tr[data-invitation='{email}']")).to_be_visible()


def _join(browser: Browser, product, email: str, team_id: str, has_account: bool) -> tuple[Page, PageWatch]:
    """Open the invitation and join: signed in with an account already, or creating the
    account through the link (confirming the address then lands in the team)."""
    base = product.portal_url
    page, watch = _new_page(browser, base)
    link = _invitation_link(product.log_text, email)
    if has_account:
        sign_up(page, base, email, PASSWORD, product.log_text, landing="/keys")
        page.goto(base + urlsplit(link).path)
        expect(page.locator("h1")).to_have_text(f"Join {TEAM}")
        page.click(f"main button:has-text('Join {TEAM}')")
    else:
        page.goto(base + urlsplit(link).path)
        expect(page.locator("h1")).to_have_text(f"Join {TEAM}")
        page.click("main a:text-is('Create account')")
        page.wait_for_url(lambda url: urlsplit(url).path == "/signup")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.fill("#confirm", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_url(lambda url: urlsplit(url).path == "/signup/sent")
        # Confirming the address lands them in the team.
        page.goto(base + urlsplit(confirmation_link(product.log_text, email)).path)
    page.wait_for_url(lambda url: urlsplit(url).path == "/dashboard" and f"account={team_id}" in url)
    expect(page.locator(".account-switcher-topbar .switcher-label")).to_have_text(TEAM)
    watch.assert_clean(f"{email} joining")
    return page, watch


def _balance(product, account_id: str) -> int:
    return product.internal("GET", f"/accounts/{account_id}").json()["balance_micro_p"]


def _refused(page: Page, watch: PageWatch, path: str) -> None:
    response = page.goto(path)
    assert response.status == 403, path
    expect(page.locator("h1")).to_have_text("Not for your role")
    watch.reset()


def test_a_team_of_four_in_four_roles(product, browser):
    base = product.portal_url
    tag = uuid.uuid4().hex[:8]
    emails = {role: f"{role}-{tag}@example.com" for role in ("owner", "admin", "developer", "billing")}

    owner, owner_watch = _new_page(browser, base)
    sign_up(owner, base, emails["owner"], PASSWORD, product.log_text, landing="/keys")
    owner.goto(base + "/teams")
    owner.fill("#name", TEAM)
    owner.click("main form button[type=submit]")
    owner.wait_for_url(lambda url: urlsplit(url).path == "/team")
    team_id = _team_of(owner)
    for role in ("admin", "developer", "billing"):
        _invite(owner, emails[role], role)
    owner_watch.assert_clean("creating the team and inviting")

    pages = {"owner": owner}
    watches = {"owner": owner_watch}
    for role in ("admin", "developer", "billing"):
        # The admin has an account already; the others create theirs through the invitation.
        pages[role], watches[role] = _join(browser, product, emails[role], team_id, has_account=role == "admin")
    owner.reload()
    expect(owner.locator("#member-list tbody tr")).to_have_count(4)
    expect(owner.locator("#invitation-list")).to_have_count(0)

    # Billing tops up the team's balance; nobody's personal balance moves.
    billing = pages["billing"]
    billing.goto(f"{base}/billing?account={team_id}")
    billing.click(f".topup-presets form:has(input[name=amount_usd][value='{TOPUP_USD}']) button")
    billing.wait_for_url(product.stripe.base_url + "/pay/**")
    billing.click("#pay")
    billing.wait_for_url(lambda url: urlsplit(url).path == "/billing/success")
    query = parse_qs(urlsplit(billing.url).query)
    assert query["account"] == [team_id]
    session_id = query["session_id"][0]
    assert product.stripe.confirm_payment(session_id, base).status_code == 200
    billing.wait_for_selector("#topup-status[data-status=paid]", timeout=30_000)
    credit = f"{TOPUP_USD * 1000:,}.00 P"
    expect(billing.locator(".balance-pill strong")).to_have_text(credit)
    assert f"account={team_id}" in billing.url
    watches["billing"].assert_clean("billing topping up the team")
    owner.goto(f"{base}/dashboard")
    expect(owner.locator(".balance-pill strong")).to_have_text("0 P")
    owner.goto(f"{base}/dashboard?account={team_id}")
    expect(owner.locator(".balance-pill strong")).to_have_text(credit)

    # The admin and the developer make keys; the developer sees only theirs.
    admin = pages["admin"]
    admin.goto(f"{base}/keys?account={team_id}")
    admin.fill("#name", "admin service")
    admin.click("#keys-section form button[type=submit]")
    expect(admin.locator("#new-key-value")).to_be_visible()
    developer = pages["developer"]
    developer.click("#sidebar >> text=API Keys")
    developer.wait_for_url(lambda url: urlsplit(url).path == "/keys" and f"account={team_id}" in url)
    developer.fill("#name", "dev laptop")
    developer.click("#keys-section form button[type=submit]")
    key = developer.locator("#new-key-value").inner_text().strip()
    developer.goto(f"{base}/keys?account={team_id}")
    expect(developer.locator("tr.key-row")).to_have_count(1)
    expect(developer.locator("tr.key-row")).to_contain_text("dev laptop")
    admin.goto(f"{base}/keys?account={team_id}")
    expect(admin.locator("tr.key-row")).to_have_count(2)
    watches["admin"].assert_clean("the admin's keys")
    watches["developer"].assert_clean("the developer's keys")

    # The developer's key spends the shared balance.
    account_id = product.internal("GET", "/admin/accounts", params={"q": f"team:{team_id}"}).json()["data"][0]["id"]
    before = _balance(product, account_id)
    assert before == TOPUP_USD * 1000 * 10**6
    client = openai.OpenAI(base_url=product.gateway_url + "/v1", api_key=key, max_retries=0)
    client.chat.completions.create(model="deepseek-v3.2", messages=[{"role": "user", "content": "hello team"}])
    deadline = time.monotonic() + 30
    while _balance(product, account_id) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _balance(product, account_id) < before

    # Each role meets its limits.
    _refused(developer, watches["developer"], f"{base}/billing?account={team_id}")
    _refused(developer, watches["developer"], f"{base}/billing/statements?account={team_id}")
    _refused(billing, watches["billing"], f"{base}/keys?account={team_id}")
    admin.goto(f"{base}/team?account={team_id}")
    expect(admin.locator("main")).not_to_contain_text("Delete the team")
    expect(admin.locator("#invite-form")).to_be_visible()
    billing.goto(f"{base}/team?account={team_id}")
    expect(billing.locator("#invite-form")).to_have_count(0)
    expect(billing.locator("#member-list form")).to_have_count(0)

    # The owner removes the developer: their key stops at once and the team is gone for them.
    owner.goto(f"{base}/team?account={team_id}")
    owner.click(f"#member-list tr[data-member='{emails['developer']}'] button:has-text('Remove')")
    expect(owner.locator("#member-list tbody tr")).to_have_count(3)
    owner_watch.assert_clean("removing the developer")
    deadline = time.monotonic() + 20
    while True:
        try:
            client.chat.completions.create(model="deepseek-v3.2", messages=[{"role": "user", "content": "again"}])
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "the removed developer's key still works"
        time.sleep(0.1)
    response = developer.goto(f"{base}/dashboard?account={team_id}")
    assert response.status == 404
