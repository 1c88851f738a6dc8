"""The low-balance alert: set on Billing, noticed once per crossing by the gateway, mailed by
the portal's event worker through the outbox (to an SMTP sink here), shown on the dashboard
until topped up."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from fixtures.gateway import free_port
from fixtures.portal import DEFAULT_PASSWORD, login, portal_config

aiosmtpd = pytest.importorskip("aiosmtpd.controller")

P = 1_000_000
SUBJECT = "Your SAMALink balance is running low"


class Sink:
    """A tiny SMTP server on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((list(envelope.rcpt_tos), envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture
def sink():
    handler = Sink()
    controller = aiosmtpd.Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    yield handler
    controller.stop()


@pytest.fixture
def own_url(tmp_path, gateway):
    """A separate migrated SQLite database: its event cursor and outbox are this test's alone."""
    from flask_migrate import upgrade

    from portal import create_app

    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    app = create_app(portal_config(url, gateway.internal_url, gateway.token, tmp_path / "instance"))
    with app.app_context():
        upgrade()
    return url


def smtp_app(url, gateway, tmp_path, port):
    from portal import create_app

    app = create_app(portal_config(url, gateway.internal_url, gateway.token, tmp_path / f"instance-{uuid.uuid4().hex}",
                                   SMTP_HOST="127.0.0.1", SMTP_PORT=port, PUBLIC_URL="https://portal.example.com",
                                   LINK_BASE_URL="https://portal.example.com"))
    app.extensions["mail_sender"].use_config(app.config)
    return app


def add_user(app, account_id: str) -> str:
    from portal.auth.passwords import hash_password
    from portal.extensions import db
    from portal.models import User
    from portal.timeutil import utcnow

    email = f"alert-{uuid.uuid4().hex[:8]}@example.com"
    with app.app_context():
        db.session.add(User(email=email, password_hash=hash_password(DEFAULT_PASSWORD), email_confirmed_at=utcnow(),
                            account_id=account_id, timezone="UTC"))
        db.session.commit()
    return email


def mail_queued_by_one_more_pass(app) -> list[str]:
    """The addresses one more event-worker pass mails: none, when every event was handled once.

    Call a little after the last event could have been recorded (1.5 s: PostgreSQL lists an
    event once it is a second old)."""
    from fixtures.portal import mail_log
    from portal.events import process_events

    with mail_log() as mail:
        with app.app_context():
            process_events()
    return [to for to, _, _ in mail.messages]


def run_worker(app, until, timeout: float = 20) -> None:
    """Event worker passes (and mail delivery) until ``until()`` holds."""
    from portal.events import process_events

    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the expected mail did not arrive"
        with app.app_context():
            process_events()
        app.extensions["mail_sender"].wake()
        time.sleep(0.2)


def alert_mails(sink, email):
    return [content for to, content in sink.received if to == [email] and SUBJECT in content]


def spend_in_parallel(gateway, key: str, calls: int) -> None:
    def chat(_):
        return requests.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                             headers={"Authorization": f"Bearer {key}"},
                             json={"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "Hi"}]}).status_code

    with ThreadPoolExecutor(calls) as pool:
        assert set(pool.map(chat, range(calls))) == {200}


def settle(gateway, account_id: str, balance: int) -> None:
    deadline = time.monotonic() + 15
    while gateway.balance(account_id) != balance:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def one_call_cost() -> int:
    from fixtures.upstream import COMPLETION_TOKENS, PROMPT_TOKENS

    return PROMPT_TOKENS * 280 + COMPLETION_TOKENS * 420


def test_parallel_calls_crossing_the_threshold_send_one_mail_and_a_top_up_rearms_it(own_url, gateway, tmp_path, sink):
    cost = one_call_cost()
    start = 1000 * P
    account_id = gateway.create_account(start)
    key = gateway.create_key(account_id)["key"]
    app = smtp_app(own_url, gateway, tmp_path, sink.port)
    email = add_user(app, account_id)
    client = app.test_client()
    assert login(client, email).status_code == 303
    threshold = start - 5 * cost - cost // 2
    saved = client.post("/billing/alerts", data={"low_balance_threshold_p": f"{threshold / P:.6f}"})
    assert saved.status_code == 200 and "data-alert-saved" in saved.get_data(as_text=True)
    assert "data-low-balance" not in client.get("/dashboard").get_data(as_text=True)

    spend_in_parallel(gateway, key, 10)
    settle(gateway, account_id, start - 10 * cost)
    run_worker(app, lambda: alert_mails(sink, email))
    time.sleep(1.5)
    assert mail_queued_by_one_more_pass(app) == []
    [mail] = alert_mails(sink, email)
    assert "https://portal.example.com/billing" in mail
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "data-low-balance" in dashboard

    # A top-up past the threshold hides the banner and re-arms the alert.
    gateway.internal("POST", f"/accounts/{account_id}/ledger",
                     json={"kind": "credit", "amount_micro_p": 10 * cost, "idempotency_key": f"top-{uuid.uuid4()}"})
    assert "data-low-balance" not in client.get("/dashboard").get_data(as_text=True)
    spend_in_parallel(gateway, key, 10)
    settle(gateway, account_id, start - 10 * cost)
    run_worker(app, lambda: len(alert_mails(sink, email)) == 2)


def test_two_workers_on_one_database_mail_each_crossing_once(own_url, gateway, tmp_path, sink):
    from portal.events import process_events

    apps = [smtp_app(own_url, gateway, tmp_path, sink.port) for _ in range(2)]
    accounts = [gateway.create_account(P) for _ in range(3)]
    emails = [add_user(apps[0], account_id) for account_id in accounts]
    for account_id in accounts:
        gateway.internal("PATCH", f"/accounts/{account_id}", json={"low_balance_threshold_micro_p": 2 * P})
    time.sleep(1.2)  # settled on PostgreSQL too
    barrier = threading.Barrier(4)

    def work(app):
        barrier.wait()
        for _ in range(5):
            with app.app_context():
                process_events()

    threads = [threading.Thread(target=work, args=(apps[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run_worker(apps[0], lambda: all(alert_mails(sink, email) for email in emails))
    time.sleep(0.5)
    assert [len(alert_mails(sink, email)) for email in emails] == [1, 1, 1]


@pytest.mark.parametrize("typed, message", [
    ("abc", "Enter a number of P"),
    ("0", "Enter a positive number of P"),
    ("-5", "Enter a positive number of P"),
    ("1.1234567", "at most 6 decimal places"),
])
def test_a_bad_threshold_is_refused_on_the_form(logged_in_client, typed, message):
    answer = logged_in_client.post("/billing/alerts", data={"low_balance_threshold_p": typed})
    assert answer.status_code == 422 and message in answer.get_data(as_text=True)


def test_the_threshold_is_kept_by_the_gateway_and_empty_switches_it_off(logged_in_client, gateway):
    user = logged_in_client.user
    assert logged_in_client.post("/billing/alerts", data={"low_balance_threshold_p": "1,250.5"}).status_code == 200
    shown = gateway.internal("GET", f"/accounts/{user.account_id}").json()["thresholds"]["low_balance"]
    assert shown["threshold_micro_p"] == 1_250_500_000
    assert 'value="1250.5"' in logged_in_client.get("/billing").get_data(as_text=True)
    assert logged_in_client.post("/billing/alerts", data={"low_balance_threshold_p": ""}).status_code == 200
    shown = gateway.internal("GET", f"/accounts/{user.account_id}").json()["thresholds"]["low_balance"]
    assert shown["threshold_micro_p"] is None
