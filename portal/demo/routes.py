"""Route: /dev/mailbox, the local mailbox of demo mode (404 in any other mode)."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import Blueprint, abort
from markupsafe import Markup, escape

from ..extensions import db
from ..htmx import render
from ..models import MailboxMessage
from . import is_demo

bp = Blueprint("demo", __name__)

MAILBOX_LIMIT = 200
_LINK = re.compile(r"https?://[^\s<>\"']+")


def linked_body(body: str) -> Markup:
    """A message body as HTML: escaped, with every web address a link."""
    parts = []
    last = 0
    for match in _LINK.finditer(body):
        parts.append(escape(body[last:match.start()]))
        url = match.group(0)
        parts.append(Markup('<a href="{0}" rel="noreferrer">{0}</a>').format(url))
        last = match.end()
    parts.append(escape(body[last:]))
    return Markup("").join(parts)


@bp.route("/dev/mailbox", methods=["GET"])
def mailbox():
    """Every message the portal would have sent, newest first, links clickable."""
    if not is_demo():
        abort(404)
    messages = db.session.scalars(
        sa.select(MailboxMessage).order_by(MailboxMessage.id.desc()).limit(MAILBOX_LIMIT)).all()
    response = render("demo/mailbox.html", messages=messages, linked_body=linked_body)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
