"""Sign-up with an address that already has an account, answered like any other sign-up.

Telling the visitor "this address is taken" would let anyone test which addresses are
customers. Instead the answer is the same redirect a new account gets, after the same
amount of password hashing; the owner of the address is told by e-mail (sent off the
request thread, so a slow mail server does not show in the timing) with links to sign
in or reset the password.
"""

from __future__ import annotations

import logging
import threading

from flask import current_app, url_for

from ..mail import send_mail
from ..models import User

log = logging.getLogger(__name__)


def _notice(login_url: str, reset_url: str) -> str:
    return (
        "Someone tried to create a SAMALink account with this e-mail address, which already has one.\n\n"
        f"If it was you, sign in here: {login_url}\n"
        f"Forgot your password? Choose a new one here: {reset_url}\n\n"
        "If it was not you, you can ignore this message; nothing has changed.\n"
    )


def notify_owner(user: User) -> None:
    """E-mail the account's owner that someone tried to sign up with the address."""
    app = current_app._get_current_object()
    to = user.email
    body = _notice(url_for("auth.login", _external=True), url_for("auth.reset_request", _external=True))

    def deliver() -> None:
        with app.app_context():
            send_mail(to, "Sign-up attempt with your SAMALink address", body)

    threading.Thread(target=deliver, name="duplicate-signup-mail", daemon=True).start()
