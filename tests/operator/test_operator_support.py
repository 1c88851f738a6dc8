"""The support inbox: every message newest first, replies by e-mail, open/answered state, audited."""

from __future__ import annotations

import smtplib
import uuid

import sqlalchemy as sa

from operator_helpers import audit_rows


def _listed(response) -> str:
    """The inbox's list: what follows the notice naming the oldest unanswered message (which may
    be one of the test's own)."""
    html = response.get_data(as_text=True)
    return html[html.index("</p>", html.index('id="oldest-unanswered"')):]


def _send_support(client, email: str, subject: str) -> int:
    response = client.post("/support", data={"email": email, "topic": "billing", "subject": subject,
                                             "message": "My top-up did not arrive on my balance."})
    assert response.status_code == 200
    from portal.extensions import db
    from portal.models import SupportMessage

    with client.application.app_context():
        return db.session.scalar(sa.select(SupportMessage.id).where(SupportMessage.subject.like(f"%{subject}")))


class FakeSMTP:
    """Stands in for smtplib.SMTP; keeps what would have been sent."""

    sent: list = []

    def __init__(self, host, port, timeout):
        self.host = host

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def ehlo(self):
        return None

    def has_extn(self, name):
        return False

    def login(self, user, password):
        return None

    def send_message(self, message):
        FakeSMTP.sent.append(message)


def test_inbox_lists_messages_newest_first_with_state(operator_client, customer_client, customer, portal_app):
    first = f"first {uuid.uuid4().hex[:6]}"
    second = f"second {uuid.uuid4().hex[:6]}"
    _send_support(customer_client, customer.email, first)
    _send_support(portal_app.test_client(), "visitor@example.com", second)
    html = _listed(operator_client.get("/operator/support"))
    assert html.index(second) < html.index(first)
    assert "not signed in" in html
    assert first in _listed(operator_client.get("/operator/support?state=open"))
    assert first not in _listed(operator_client.get("/operator/support?state=answered"))


def test_message_page_shows_the_customer_beside_it(operator_client, customer_client, customer):
    message_id = _send_support(customer_client, customer.email, f"context {uuid.uuid4().hex[:6]}")
    html = operator_client.get(f"/operator/support/{message_id}").get_data(as_text=True)
    assert "My top-up did not arrive" in html
    assert customer.email in html and "1,000.00 P" in html
    assert f"/operator/customers/{customer.account_id}" in html
    assert operator_client.get("/operator/support/999999999").status_code == 404


def test_reply_is_mailed_marks_answered_and_is_audited(operator_client, customer_client, customer, portal_app, monkeypatch, operator):
    portal_app.config.update(SMTP_HOST="smtp.example.com", SMTP_PORT=25)
    FakeSMTP.sent = []
    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    message_id = _send_support(customer_client, customer.email, f"reply {uuid.uuid4().hex[:6]}")
    FakeSMTP.sent = []
    response = operator_client.post(f"/operator/support/{message_id}/reply",
                                    data={"body": "Your top-up landed; sorry for the wait."})
    assert response.status_code == 303
    # The outbox sender may deliver other queued mail through the same SMTP meanwhile.
    [mail] = [sent for sent in FakeSMTP.sent if sent["Subject"].startswith("Re: ")]
    assert mail["To"] == customer.email and mail["Subject"].startswith("Re: [Billing]")
    assert "Your top-up landed" in mail.get_content()
    html = operator_client.get(f"/operator/support/{message_id}").get_data(as_text=True)
    assert 'id="message-state">answered' in html and "Your top-up landed" in html
    entry = audit_rows(portal_app, "support.reply", str(message_id))[0]
    assert entry.actor_email == operator.email
    assert entry.before == {"state": "open"} and entry.after["state"] == "answered"


def test_reply_without_smtp_says_so_and_keeps_the_message_open(operator_client, customer_client, customer, portal_app):
    message_id = _send_support(customer_client, customer.email, f"nosmtp {uuid.uuid4().hex[:6]}")
    response = operator_client.post(f"/operator/support/{message_id}/reply", data={"body": "Hello there"})
    assert response.status_code == 422
    assert "SMTP is not configured" in response.get_data(as_text=True)
    assert audit_rows(portal_app, "support.reply", str(message_id)) == []
    empty = operator_client.post(f"/operator/support/{message_id}/reply", data={"body": ""})
    assert empty.status_code == 422 and "Write the reply." in empty.get_data(as_text=True)


def test_mark_answered_and_reopen(operator_client, customer_client, customer, portal_app):
    message_id = _send_support(customer_client, customer.email, f"state {uuid.uuid4().hex[:6]}")
    url = f"/operator/support/{message_id}/state"
    assert operator_client.post(url, data={"state": "answered"}).status_code == 303
    assert 'id="message-state">answered' in operator_client.get(f"/operator/support/{message_id}").get_data(as_text=True)
    assert operator_client.post(url, data={"state": "open"}).status_code == 303
    assert 'id="message-state">open' in operator_client.get(f"/operator/support/{message_id}").get_data(as_text=True)
    actions = [e.action for e in audit_rows(portal_app, target_id=str(message_id), target_type="support_message")]
    assert actions == ["support.reopen", "support.close"]
    twice = operator_client.post(url, data={"state": "open"}, follow_redirects=True)
    assert "already open" in twice.get_data(as_text=True)
