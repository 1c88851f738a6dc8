"""What an operator needs to keep the Support page's promise: whether mail leaves at all, and
how long the oldest unanswered message has waited."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa


def _send_support(client, subject: str) -> int:
    from portal.extensions import db
    from portal.models import SupportMessage

    response = client.post("/support", data={"email": "waiting@example.com", "topic": "billing",
                                             "subject": subject, "message": "Where is my top-up?"})
    assert response.status_code == 200
    with client.application.app_context():
        return db.session.scalar(sa.select(SupportMessage.id).where(SupportMessage.subject.like(f"%{subject}")))


def test_health_says_smtp_is_off_and_where_mail_goes(operator_client, portal_app):
    html = operator_client.get("/operator/health").get_data(as_text=True)
    assert 'id="smtp-state">off<' in html
    assert "SMTP_HOST is unset" in html and "[mail]" in html
    portal_app.config["SMTP_HOST"] = "smtp.example.com"
    assert 'id="smtp-state">on<' in operator_client.get("/operator/health").get_data(as_text=True)


def test_the_console_shows_how_old_the_oldest_unanswered_message_is(operator_client, portal_app):
    from portal.extensions import db
    from portal.models import SupportMessage
    from portal.timeutil import utcnow

    subject = f"waiting {uuid.uuid4().hex[:8]}"
    message_id = _send_support(portal_app.test_client(), subject)
    with portal_app.app_context():
        db.session.execute(sa.update(SupportMessage).where(SupportMessage.id == message_id)
                           .values(created_at=utcnow() - timedelta(days=6, hours=1)))
        db.session.commit()
    health = operator_client.get("/operator/health").get_data(as_text=True)
    assert 'id="oldest-unanswered-age"><time' in health and "6 days ago" in health
    inbox = operator_client.get("/operator/support").get_data(as_text=True)
    notice = inbox[inbox.index('id="oldest-unanswered"'):]
    assert "6 days ago" in notice[:600] and subject in notice[:600]
    answered = operator_client.post(f"/operator/support/{message_id}/state", data={"state": "answered"})
    assert answered.status_code in (200, 303)
    inbox = operator_client.get("/operator/support").get_data(as_text=True)
    notice = inbox[inbox.index('id="oldest-unanswered"'):]
    assert subject not in notice[:600]


def test_the_support_page_shows_the_configured_support_address(portal_app):
    portal_app.config["SUPPORT_EMAIL"] = "care@example.org"
    html = portal_app.test_client().get("/support").get_data(as_text=True)
    assert 'href="mailto:care@example.org"' in html
    assert "help@samalink.ai" not in html
