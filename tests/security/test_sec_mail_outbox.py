"""Mail leaves through the outbox: a request only queues it; the background sender delivers
it once (several senders on one database), to a real SMTP server, and retries a failure.
"""

from __future__ import annotations

import smtplib
import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from fixtures.gateway import free_port
from fixtures.portal import mail_log

aiosmtpd = pytest.importorskip("aiosmtpd.controller")


class Sink:
    """A tiny SMTP server on 127.0.0.1 that refuses the first ``refuse`` messages with 451."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.received: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):
        if self.refuse > 0:
            self.refuse -= 1
            return "451 Try again later"
        self.received.append((list(envelope.rcpt_tos), envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture
def sink_server():
    """Start a sink; yields (sink, port) and stops it after."""
    servers = []

    def start(refuse: int = 0):
        sink = Sink(refuse)
        port = free_port()
        controller = aiosmtpd.Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()
        servers.append(controller)
        return sink, port

    yield start
    for controller in servers:
        controller.stop()


@pytest.fixture
def own_database(tmp_path, gateway):
    """A separate migrated SQLite database, so no other test's sender touches its outbox."""
    from flask_migrate import upgrade

    from fixtures.portal import portal_config
    from portal import create_app

    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    app = create_app(portal_config(url, gateway.url, gateway.token, tmp_path / "instance"))
    with app.app_context():
        upgrade()
    return url


def _smtp_app(url, gateway, tmp_path, port: int):
    from fixtures.portal import portal_config
    from portal import create_app

    return create_app(portal_config(url, gateway.url, gateway.token, tmp_path / "instance-smtp",
                                    SMTP_HOST="127.0.0.1", SMTP_PORT=port, PUBLIC_URL="https://portal.example.com",
                                    LINK_BASE_URL="https://portal.example.com"))


def _outbox(app):
    from portal.extensions import db
    from portal.models import OutboxMessage

    with app.app_context():
        return [(row.to_address, row.subject, row.attempts) for row in db.session.scalars(sa.select(OutboxMessage))]


def _signup_user(app, email: str, password: str = "a long and unusual passphrase 42") -> None:
    from portal.auth.passwords import hash_password
    from portal.extensions import db
    from portal.models import User
    from portal.timeutil import utcnow

    with app.app_context():
        db.session.add(User(email=email, password_hash=hash_password(password), email_confirmed_at=utcnow()))
        db.session.commit()


def test_a_reset_request_only_queues_and_the_sender_delivers_it(own_database, gateway, tmp_path, sink_server,
                                                                monkeypatch):
    from portal.mail import MailSender

    sink, port = sink_server()
    app = _smtp_app(own_database, gateway, tmp_path, port)
    app.extensions["mail_sender"].stop()  # hold delivery back to look at the queue
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    _signup_user(app, email)
    connects = []
    real_smtp = smtplib.SMTP

    class WatchedSMTP(real_smtp):
        def __init__(self, *args, **kwargs):
            connects.append(threading.current_thread().name)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(smtplib, "SMTP", WatchedSMTP)
    assert app.test_client().post("/reset", data={"email": email}).status_code == 200
    assert app.test_client().post("/reset", data={"email": "nobody-" + email}).status_code == 200
    assert connects == []  # no mail server was contacted while answering
    assert _outbox(app) == [(email, "Reset your SAMALink password", 0)]

    sender = MailSender(own_database, poll_seconds=0.05)
    sender.use_config(app.config)
    sender.start()
    try:
        _wait = time.monotonic() + 30
        while not sink.received and time.monotonic() < _wait:
            time.sleep(0.02)
    finally:
        sender.stop()
    [(recipients, content)] = sink.received
    assert recipients == [email] and "https://portal.example.com/reset/" in content
    assert connects and all(name.startswith("mail-sender-") for name in connects)
    assert _outbox(app) == []


def test_a_refused_message_is_retried_until_it_is_delivered(own_database, gateway, tmp_path, sink_server):
    from portal.extensions import db
    from portal.mail import MailSender, queue_mail

    sink, port = sink_server(refuse=2)
    app = _smtp_app(own_database, gateway, tmp_path, port)
    app.extensions["mail_sender"].stop()
    with app.test_request_context():
        queue_mail("retry@example.com", "Retry me", "Body of the message.")
        db.session.commit()
    sender = MailSender(own_database, poll_seconds=0.05, retry_seconds=0.1)
    sender.use_config(app.config)
    sender.drain()
    assert sink.received == [] and _outbox(app) == [("retry@example.com", "Retry me", 1)]
    sender.start()
    try:
        deadline = time.monotonic() + 30
        while not sink.received and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sender.stop()
    assert [recipients for recipients, _ in sink.received] == [["retry@example.com"]]
    assert _outbox(app) == []


def test_several_senders_on_one_database_send_each_message_once(portal_app):
    """Three senders (as three portal processes would run) drain one outbox together."""
    from portal.extensions import db
    from portal.mail import MailSender, queue_mail

    tag = uuid.uuid4().hex[:8]
    senders = [MailSender(portal_app.config["SQLALCHEMY_DATABASE_URI"]) for _ in range(3)]
    for sender in senders:
        sender.use_config({"SMTP_HOST": ""})
    with mail_log() as mail:
        with portal_app.test_request_context():
            for n in range(30):
                queue_mail(f"once-{tag}-{n}@example.com", f"Once {tag} {n}", "Hello.")
            db.session.commit()
        threads = [threading.Thread(target=sender.drain) for sender in senders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        deadline = time.monotonic() + 30
        while sum(tag in subject for _, subject, _ in list(mail.delivered)) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        subjects = [subject for _, subject, _ in list(mail.delivered) if tag in subject]
    assert sorted(subjects) == sorted(f"Once {tag} {n}" for n in range(30))
