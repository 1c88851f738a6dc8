"""Outgoing mail: sent with smtplib when SMTP_HOST is set, written to the log otherwise."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from flask import current_app

log = logging.getLogger(__name__)


def smtp_configured() -> bool:
    """True when an SMTP server is configured."""
    return bool(current_app.config.get("SMTP_HOST"))


def send_mail(to: str, subject: str, body: str, reply_to: str | None = None) -> bool:
    """Send a plain-text message; True when it went to an SMTP server.

    Without SMTP the message is logged so a local run still shows reset links.
    Delivery failures are logged (without credentials) and reported as False.
    """
    config = current_app.config
    if not smtp_configured():
        log.warning("SMTP is not configured; mail to %s not sent.\nSubject: %s\n%s", to, subject, body)
        return False
    message = EmailMessage()
    message["From"] = config["SMTP_FROM"]
    message["To"] = to
    message["Subject"] = subject
    if reply_to:
        message["Reply-To"] = reply_to
    message.set_content(body)
    try:
        with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=10) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls()
                smtp.ehlo()
            if config.get("SMTP_USER"):
                smtp.login(config["SMTP_USER"], config["SMTP_PASSWORD"])
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("could not send mail to %s: %s", to, type(exc).__name__)
        return False
    return True
