"""Budget alerts: when a key's spend reaches 80 % and 100 % of its budget, the account's users
get one e-mail each per budget period (through the event worker and an SMTP sink here),
saying which key, the budget, the spend and when it resets in their own zone."""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timezone
from email import message_from_string, policy
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

import pytest
import requests
from test_portal_balance_alerts import (  # noqa: F401 - fixtures
    Sink, mail_queued_by_one_more_pass, own_url, run_worker, sink, smtp_app)

from fixtures.portal import DEFAULT_PASSWORD
from gateway.accounting.budgets import add_budget_spend

P = 1_000_000
OUTPUT_PRICE = 420  # deepseek-v3.2, micro-P per output token
ONE_CALL = 3000 * OUTPUT_PRICE  # a call billed 3000 output tokens and no input


def add_user(app, account_id: str, tz: str) -> str:
    from portal.auth.passwords import hash_password
    from portal.extensions import db
    from portal.models import User
    from portal.timeutil import utcnow

    email = f"budget-{uuid.uuid4().hex[:8]}@example.com"
    with app.app_context():
        db.session.add(User(email=email, password_hash=hash_password(DEFAULT_PASSWORD), email_confirmed_at=utcnow(),
                            account_id=account_id, timezone=tz))
        db.session.commit()
    return email


def readable(content: str) -> str:
    """The subject line and the decoded body of a received message."""
    message = message_from_string(content, policy=policy.default)
    return f"Subject: {message['Subject']}\n\n{message.get_content()}"


def mails_to(sink, email: str, words: str) -> list[str]:
    mails = [readable(content) for to, content in sink.received if to == [email]]
    return [mail for mail in mails if words in mail]


def chat(gateway, key: str) -> int:
    return requests.post(f"{gateway.url}/v1/chat/completions", timeout=30, headers={"Authorization": f"Bearer {key}"},
                         json={"model": "deepseek-v3.2", "max_tokens": 3000,
                               "messages": [{"role": "user", "content": "[[usage:0:3000]] Hi"}]}).status_code


def spent_of(gateway, account_id: str, key_id: str) -> int:
    keys = gateway.internal("GET", f"/accounts/{account_id}/keys").json()
    return next(k for k in keys["data"] if k["id"] == key_id)["budget_spent_micro_p"]


def settle_spend(gateway, account_id: str, key_id: str, spent: int) -> None:
    deadline = time.monotonic() + 15
    while spent_of(gateway, account_id, key_id) != spent:
        assert time.monotonic() < deadline, f"the batch writer did not charge the budget: {spent_of(gateway, account_id, key_id)} != {spent}"
        time.sleep(0.05)


def test_a_keys_budget_mails_once_at_80_and_once_at_100_percent(own_url, gateway, gateway_db, tmp_path, sink):
    account_id = gateway.create_account(1000 * P)
    budget = 10 * ONE_CALL
    created = gateway.create_key(account_id, name="build server", budget_micro_p=budget, budget_period="month")
    app = smtp_app(own_url, gateway, tmp_path, sink.port)
    auckland = add_user(app, account_id, "Pacific/Auckland")
    stranger = add_user(app, gateway.create_account(P), "UTC")

    # Nine calls at once: 80 % is reached by the eighth.
    with ThreadPoolExecutor(9) as pool:
        assert set(pool.map(lambda _: chat(gateway, created["key"]), range(9))) == {200}
    settle_spend(gateway, account_id, created["id"], 9 * ONE_CALL)
    run_worker(app, lambda: mails_to(sink, auckland, "80% reached"))

    [mail] = mails_to(sink, auckland, "80% reached")
    assert "has used 80% of its budget" in mail  # the subject
    assert "build server" in mail and created["masked"] in mail
    assert re.search(r"has spent (10\.08|11\.34) P of its", mail)  # the batch that crossed: 8 or 9 calls
    assert "monthly budget of 12.60 P" in mail
    key = next(k for k in gateway.internal("GET", f"/accounts/{account_id}/keys").json()["data"]
               if k["id"] == created["id"])
    resets = key["budget_resets_at"].replace("Z", "+00:00")
    local = datetime.fromisoformat(resets).astimezone(ZoneInfo("Pacific/Auckland"))
    assert f"resets on {local.strftime('%a %-d %b %Y, %H:%M')} (Pacific/Auckland)" in mail
    assert f"https://portal.example.com/keys/{created['id']}" in mail

    # The last of the budget: a charge the batch writer settles (a call's output bound is
    # lowered to what the budget has left, so calls alone stop just short of 100 %).
    now = datetime.now(timezone.utc)
    gateway_db.transaction_sync(
        lambda conn: add_budget_spend(conn, {created["id"]: [(now, budget - 9 * ONE_CALL)]}, now))
    run_worker(app, lambda: mails_to(sink, auckland, "100% reached"))
    [full] = mails_to(sink, auckland, "100% reached")
    assert "has used up its budget" in full and "refused with 402 until it resets" in full

    time.sleep(1.5)
    assert mail_queued_by_one_more_pass(app) == []
    assert len(mails_to(sink, auckland, "80% reached")) == 1
    assert len(mails_to(sink, auckland, "100% reached")) == 1
    assert not [to for to, _ in sink.received if to == [stranger]]


NIGHTLY_KEY = {"id": "k-1", "name": "nightly jobs", "masked": "sk-sama-ab…wxyz", "budget_period": "month"}


def full_budget_event(spent_micro_p: int) -> dict:
    """A ``budget_100`` event of NIGHTLY_KEY's 25 P budget, resetting at midnight UTC on 1 December."""
    return {"kind": "budget_100", "account_id": "a", "subject_kind": "key", "subject_id": "k-1",
            "budget_micro_p": 25 * P, "spent_micro_p": spent_micro_p, "resets_at": "2026-12-01T00:00:00Z"}


def test_the_mail_says_when_the_budget_resets_in_the_readers_zone(portal_app):
    from portal.keys.budget_alerts import budget_alert_body, budget_alert_subject

    event, key = full_budget_event(25_500_000), NIGHTLY_KEY
    with portal_app.app_context():
        auckland = budget_alert_body(event, key, "Pacific/Auckland")
        los_angeles = budget_alert_body(event, key, "America/Los_Angeles")
    assert auckland.startswith('Your key "nightly jobs" (sk-sama-ab…wxyz) has spent 25.50 P of its monthly '
                               'budget of 25.00 P (100% reached).')
    # Midnight UTC on 1 December is 13:00 the same day in Auckland (summer) and 16:00 the day before in LA.
    assert "resets on Tue 1 Dec 2026, 13:00 (Pacific/Auckland)." in auckland
    assert "resets on Mon 30 Nov 2026, 16:00 (America/Los_Angeles)." in los_angeles
    with portal_app.app_context():
        assert "resets on Tue 1 Dec 2026, 00:00 (UTC)." in budget_alert_body(event, key, "Not/A_Zone")
    assert budget_alert_subject(80, "nightly jobs") == 'Your SAMALink key "nightly jobs" has used 80% of its budget'
    assert budget_alert_subject(100, "nightly jobs") == 'Your SAMALink key "nightly jobs" has used up its budget'


@pytest.mark.parametrize("kind", ["budget_80", "budget_100"])
def test_both_budget_kinds_have_a_handler(kind):
    from portal.events import HANDLERS
    from portal.keys.budget_alerts import mail_budget_alert

    assert HANDLERS[kind] is mail_budget_alert


def test_a_budget_used_up_short_of_its_end_says_what_is_left(portal_app):
    from portal.keys.budget_alerts import budget_alert_body

    with portal_app.app_context():
        body = budget_alert_body(full_budget_event(24_500_000), NIGHTLY_KEY, "UTC")
    assert "has spent 24.50 P of its monthly budget of 25.00 P (used up: the 0.50 P left is less than a call " \
           "needs)." in body
    assert "refused with 402 until it resets" in body
