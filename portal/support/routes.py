"""Routes: /support (public)."""

from __future__ import annotations

from flask import Blueprint, current_app
from flask_login import current_user

from ..extensions import db
from ..htmx import render
from ..mail import queue_mail
from ..models import SupportMessage
from .forms import TOPICS, SupportForm

bp = Blueprint("support", __name__)


def store_and_forward(form: SupportForm) -> SupportMessage:
    """Keep the message, and queue its copy to the support address, in one transaction.

    Only a message sent signed in is attached to an account; any other carries just the
    address typed in, which anyone could have typed, and counts as an unverified sender.
    """
    topic = dict(TOPICS).get(form.topic.data, "Other")
    signed_in = current_user.is_authenticated
    message = SupportMessage(
        user_id=current_user.id if signed_in else None,
        email=form.email.data.lower(), subject=f"[{topic}] {form.subject.data}", body=form.message.data,
    )
    db.session.add(message)
    db.session.flush()
    sender = f"account {current_user.account_id or current_user.email}" if signed_in else "not signed in (unverified sender)"
    body = f"From: {message.email}\nAccount: {sender}\nTopic: {topic}\n\n{message.body}\n"
    queue_mail(current_app.config["SUPPORT_EMAIL"], f"Support: {message.subject}", body, reply_to=message.email,
               support_message_id=message.id)
    db.session.commit()
    return message


@bp.route("/support", methods=["GET", "POST"])
def support():
    """Contact details and the form; a sent message shows a confirmation in place of the form."""
    form = SupportForm()
    if not form.is_submitted() and current_user.is_authenticated:
        form.email.data = current_user.email
    sent = False
    status = 200
    if form.validate_on_submit():
        store_and_forward(form)
        sent = True
    elif form.errors:
        status = 422
    return render("support/support.html", block="support_form", status=status, form=form, sent=sent)
