"""Outgoing mail: queued in the database by requests, delivered by a background sender.

A request never talks to the mail server. ``queue_mail`` adds a row to ``mail_outbox`` in
the request's own transaction, so a reset request for a registered address takes as long
as one for an unknown address, and a rolled-back request sends nothing. One
``MailSender`` thread per process and database (started by ``install``) delivers the
rows: with smtplib when SMTP_HOST is set, written to the log otherwise (so a local run
still shows reset links).

Several portal processes may share one PostgreSQL database. Each row is claimed with a
conditional UPDATE (only an unclaimed, due row is taken), so exactly one sender delivers
it; a claim older than ``CLAIM_LEASE`` (a sender that died mid-send) may be taken over.
A failed delivery is retried with doubling delays; after ``MAX_ATTEMPTS`` the row is
marked failed and its body (which may hold a link) is blanked.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
import threading
import weakref
from collections.abc import Mapping
from datetime import timedelta
from email.message import EmailMessage

import sqlalchemy as sa
from flask import Flask, current_app, url_for
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from .extensions import db
from .models import MailboxMessage, OutboxMessage, SupportMessage
from .timeutil import utcnow

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 3600.0
MAX_ATTEMPTS = 10
CLAIM_LEASE = timedelta(minutes=10)
BATCH = 20

# How a message is written to the log without SMTP: a prefix to search for, then the
# subject and the body, whose links stand alone on their lines.
LOG_PREFIX = "[mail]"
LOGGED_MAIL = LOG_PREFIX + " SMTP is not configured; mail to %s not sent.\nSubject: %s\n%s"

_outbox = OutboxMessage.__table__
_support = SupportMessage.__table__


def smtp_configured(config: Mapping | None = None) -> bool:
    """True when an SMTP server is configured."""
    config = current_app.config if config is None else config
    return bool(config.get("SMTP_HOST"))


def send_mail(to: str, subject: str, body: str, reply_to: str | None = None,
              config: Mapping | None = None) -> bool:
    """Send one plain-text message now; True when it went to an SMTP server.

    Without SMTP the message is logged. Delivery failures are logged (without
    credentials) and reported as False. Requests use ``queue_mail`` instead.
    """
    config = current_app.config if config is None else config
    if not smtp_configured(config):
        log.warning(LOGGED_MAIL, to, subject, body)
        return False
    try:
        _deliver_smtp(config, to, subject, body, reply_to)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("could not send mail to %s: %s", to, type(exc).__name__)
        return False
    return True


def _deliver_smtp(config: Mapping, to: str, subject: str, body: str, reply_to: str | None) -> None:
    message = EmailMessage()
    message["From"] = config["SMTP_FROM"]
    message["To"] = to
    message["Subject"] = subject
    if reply_to:
        message["Reply-To"] = reply_to
    message.set_content(body)
    with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=10) as smtp:
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls()
            smtp.ehlo()
        if config.get("SMTP_USER"):
            smtp.login(config["SMTP_USER"], config["SMTP_PASSWORD"])
        smtp.send_message(message)


def queue_mail(to: str, subject: str, body: str, reply_to: str | None = None,
               support_message_id: int | None = None) -> OutboxMessage:
    """Add a message to the outbox in the current transaction; the caller commits.

    The sender is woken as soon as the transaction commits.
    """
    row = OutboxMessage(to_address=to, subject=subject[:300], body=body, reply_to=reply_to,
                        support_message_id=support_message_id)
    db.session.add(row)
    if current_app.config.get("DEMO"):
        # Demo mode keeps a copy for the local mailbox page (/dev/mailbox).
        db.session.add(MailboxMessage(to_address=to, subject=subject[:300], body=body))
    sender = current_app.extensions.get("mail_sender")
    if sender is not None:
        db.session.info["wake_mail_sender"] = sender
    return row


def public_link(endpoint: str, **values) -> str:
    """An absolute link for an e-mail, built from the configured public URL.

    Never from the request's Host header: a forged Host would otherwise put the attacker's
    address in front of a valid token in the victim's inbox (password-reset poisoning).
    """
    return current_app.config["LINK_BASE_URL"].rstrip("/") + url_for(endpoint, **values)


@sa.event.listens_for(Session, "after_commit")
def _wake_sender_after_commit(session: Session) -> None:
    sender = session.info.pop("wake_mail_sender", None)
    if sender is not None:
        sender.wake()


class MailSender:
    """Delivers the outbox of one database; safe to run in any number of processes at once.

    The mail settings come from the newest live app attached to it (one app per process
    in production), read at each delivery.
    """

    def __init__(self, database_uri: str, poll_seconds: float = POLL_SECONDS,
                 retry_seconds: float = RETRY_SECONDS) -> None:
        options: dict = {"poolclass": NullPool}
        if database_uri.startswith("sqlite"):
            options["connect_args"] = {"timeout": 15}
        # Its own unpooled engine: an idle sender holds no database connection.
        self.engine = sa.create_engine(database_uri, **options)
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.name = secrets.token_hex(8)
        self._apps: list[weakref.ref] = []
        self._config: Mapping | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, app: Flask) -> None:
        """Deliver with ``app``'s mail settings from now on (while it lives)."""
        self._apps = [ref for ref in self._apps if ref() is not None] + [weakref.ref(app)]

    def use_config(self, config: Mapping) -> None:
        """Deliver with ``config`` whatever apps are attached (for a sender without an app)."""
        self._config = config

    def config(self) -> Mapping | None:
        """The settings to deliver with, or None when no app is left."""
        if self._config is not None:
            return self._config
        for ref in reversed(self._apps):
            app = ref()
            if app is not None:
                return app.config
        return None

    def start(self) -> None:
        """Start the background thread (once)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"mail-sender-{self.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after the delivery in progress."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Deliver now rather than at the next poll."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.drain()
            except sa.exc.SQLAlchemyError as exc:
                # Not migrated yet, or the database is briefly away: try again at the next poll.
                log.debug("mail outbox not readable: %s", type(exc).__name__)
            except Exception:  # noqa: BLE001 - the sender must outlive any one message
                log.exception("mail sender failed; retrying at the next poll")
            self._wake.wait(self.poll_seconds)

    def drain(self) -> int:
        """Deliver every due message this sender can claim; how many were handled."""
        handled = 0
        while not self._stop.is_set():
            config = self.config()
            if config is None:
                return handled
            ids = self._due_ids()
            if not ids:
                return handled
            for message_id in ids:
                row = self._claim(message_id)
                if row is not None:
                    self._deliver(config, row)
                    handled += 1
        return handled

    def _due(self, now):
        return sa.and_(
            _outbox.c.failed_at.is_(None),
            sa.or_(_outbox.c.next_attempt_at.is_(None), _outbox.c.next_attempt_at <= now),
            sa.or_(_outbox.c.claimed_at.is_(None), _outbox.c.claimed_at < now - CLAIM_LEASE),
        )

    def _due_ids(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(conn.scalars(sa.select(_outbox.c.id).where(self._due(utcnow()))
                                     .order_by(_outbox.c.id).limit(BATCH)))

    def _claim(self, message_id: int):
        """Take one message with a conditional update; the row if this sender got it."""
        now = utcnow()
        with self.engine.begin() as conn:
            taken = conn.execute(sa.update(_outbox).where(_outbox.c.id == message_id, self._due(now))
                                 .values(claimed_at=now, claimed_by=self.name)).rowcount
            if taken != 1:
                return None
            return conn.execute(sa.select(_outbox).where(_outbox.c.id == message_id)).one()

    def _deliver(self, config: Mapping, row) -> None:
        error = None
        if not smtp_configured(config):
            log.warning(LOGGED_MAIL, row.to_address, row.subject, row.body)
        else:
            try:
                _deliver_smtp(config, row.to_address, row.subject, row.body, row.reply_to)
            except (OSError, smtplib.SMTPException) as exc:
                error = type(exc).__name__
        with self.engine.begin() as conn:
            if error is None:
                if row.support_message_id is not None and smtp_configured(config):
                    conn.execute(sa.update(_support).where(_support.c.id == row.support_message_id)
                                 .values(mailed_at=utcnow()))
                conn.execute(sa.delete(_outbox).where(_outbox.c.id == row.id, _outbox.c.claimed_by == self.name))
                return
            attempts = row.attempts + 1
            log.error("could not send mail to %s (attempt %d): %s", row.to_address, attempts, error)
            values: dict = {"attempts": attempts, "claimed_at": None, "claimed_by": None, "last_error": error}
            if attempts >= MAX_ATTEMPTS:
                # Given up: keep who and what for the record, drop the body (it may hold a link).
                values.update(failed_at=utcnow(), body="")
            else:
                delay = min(self.retry_seconds * 2 ** (attempts - 1), MAX_RETRY_SECONDS)
                values["next_attempt_at"] = utcnow() + timedelta(seconds=delay)
            conn.execute(sa.update(_outbox).where(_outbox.c.id == row.id, _outbox.c.claimed_by == self.name)
                         .values(**values))


_senders: dict[str, MailSender] = {}
_senders_lock = threading.Lock()


def install(app: Flask) -> MailSender:
    """Attach ``app`` to its database's sender, starting the sender with the first app."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    with _senders_lock:
        sender = _senders.get(uri)
        if sender is None:
            sender = _senders[uri] = MailSender(uri, poll_seconds=float(app.config.get("MAIL_POLL_SECONDS", POLL_SECONDS)),
                                                retry_seconds=float(app.config.get("MAIL_RETRY_SECONDS", RETRY_SECONDS)))
        sender.attach(app)
        sender.start()
    app.extensions["mail_sender"] = sender
    return sender
