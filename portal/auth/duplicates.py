"""Sign-up with an address that already has an account, answered like any other sign-up.

Telling the visitor "this address is taken" would let anyone test which addresses are
customers. Instead the answer is the same redirect a new account gets, after the same
amount of password hashing; the owner of the address is told by e-mail (through the
outbox, so a slow mail server does not show in the timing) with links to sign in or
reset the password.
"""

from __future__ import annotations

from ..extensions import db
from ..mail import public_link, queue_mail
from ..models import User


def _notice(login_url: str, reset_url: str) -> str:
    return (
        "Someone tried to create a SAMALink account with this e-mail address, which already has one.\n\n"
        f"If it was you, sign in here: {login_url}\n"
        f"Forgot your password? Choose a new one here: {reset_url}\n\n"
        "If it was not you, you can ignore this message; nothing has changed.\n"
    )


def notify_owner(user: User) -> None:
    """E-mail the account's owner that someone tried to sign up with the address."""
    body = _notice(public_link("auth.login"), public_link("auth.reset_request"))
    queue_mail(user.email, "Sign-up attempt with your SAMALink address", body)
    db.session.commit()
