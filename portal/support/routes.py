"""Routes: /support (public)."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app
from flask_login import current_user

from ..extensions import db
from ..htmx import render
from ..mail import send_mail
from ..models import SupportMessage
from ..timeutil import utcnow
from .forms import TOPICS, SupportForm

bp = Blueprint("support", __name__)
log = logging.getLogger(__name__)


def store_and_forward(form: SupportForm) -> SupportMessage:
    """Keep the message in the database first, then mail it to the support address."""
    topic = dict(TOPICS).get(form.topic.data, "Other")
    message = SupportMessage(
        user_id=current_user.id if current_user.is_authenticated else None,
        email=form.email.data.lower(), subject=f"[{topic}] {form.subject.data}", body=form.message.data,
    )
    db.session.add(message)
    db.session.commit()
    account = current_user.account_id if current_user.is_authenticated else None
    body = (f"From: {message.email}\nAccount: {account or 'not signed in'}\nTopic: {topic}\n\n{message.body}\n")
    if send_mail(current_app.config["SUPPORT_EMAIL"], f"Support: {message.subject}", body, reply_to=message.email):
        message.mailed_at = utcnow()
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
