"""Support page: the promised text, the contact form stored, and mailed when SMTP is set."""

from __future__ import annotations

import smtplib
import time
import uuid

import sqlalchemy as sa

from portal.extensions import db
from portal.models import SupportMessage

TEXT = ("Having issues with billing, API access, or your account? Contact us and we'll get back to you "
        "within 24 hours.")


def _messages(app, email):
    with app.app_context():
        rows = db.session.scalars(sa.select(SupportMessage).where(SupportMessage.email == email)).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def test_support_page_is_public_with_contact_details(client):
    body = client.get("/support").get_data(as_text=True).replace("&#39;", "'")
    assert TEXT in body and "help@samalink.ai" in body


def test_message_is_stored_and_errors_are_shown(client, portal_app):
    bad = client.post("/support", data={"email": "nope", "topic": "billing", "subject": "", "message": "hi"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert "Enter a valid e-mail address." in text and "Add a short subject." in text
    assert "Write between 10 and 10,000 characters." in text
    visitor = f"visitor-{uuid.uuid4().hex[:8]}@example.com"  # the database is shared across tests
    ok = client.post("/support", data={"email": visitor, "topic": "api",
                                       "subject": "Key refused", "message": "My key gets a 401 since today."})
    assert "your message is with us" in ok.get_data(as_text=True)
    [row] = _messages(portal_app, visitor)
    assert row.subject == "[API access] Key refused" and row.mailed_at is None


def test_message_is_mailed_when_smtp_is_configured(portal_app, monkeypatch, logged_in_client):
    sent = []

    class FakeSMTP:
        def __init__(self, host, port, timeout):
            sent.append(("connect", host, port))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def ehlo(self):
            pass

        def has_extn(self, name):
            return False

        def login(self, user, password):
            sent.append(("login", user))

        def send_message(self, message):
            sent.append(("message", message["To"], message["Reply-To"], message["Subject"], message.get_content()))

    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    portal_app.config.update(SMTP_HOST="mail.test", SMTP_PORT=2525, SMTP_USER="portal", SMTP_PASSWORD="pw",
                             SUPPORT_EMAIL="team@samalink.test")
    email = logged_in_client.user.email
    response = logged_in_client.post("/support", data={"email": email, "topic": "billing",
                                                       "subject": "Top-up missing", "message": "I paid but see 0 P."},
                                     headers={"HX-Request": "true"})
    assert "your message is with us" in response.get_data(as_text=True)
    deadline = time.monotonic() + 30  # the copy leaves through the outbox, off the request
    while not any(item[0] == "message" and item[1] == "team@samalink.test" for item in sent):
        assert time.monotonic() < deadline, "the support copy was not sent"
        time.sleep(0.02)
    assert ("connect", "mail.test", 2525) in sent and ("login", "portal") in sent
    message = next(item for item in sent if item[0] == "message" and item[1] == "team@samalink.test")
    assert message[1] == "team@samalink.test" and message[2] == email
    assert "[Billing] Top-up missing" in message[3]
    assert logged_in_client.user.account_id in message[4]
    while (row := _messages(portal_app, email)[0]).mailed_at is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert row.mailed_at is not None


def test_signed_in_users_get_their_address_filled_in(logged_in_client):
    body = logged_in_client.get("/support").get_data(as_text=True)
    assert f'value="{logged_in_client.user.email}"' in body
