"""E-mail confirmation at sign-up: nothing tells a visitor whether an address has an account.

A new address and a taken one get the same answer and the same next page, and neither
browser is signed in; the new account signs in only by opening the mailed link, once,
within 24 hours. An unconfirmed account with the right password is told to confirm and
gets a new link; with a wrong password it gets the ordinary error.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
import time_machine

from fixtures.portal import DEFAULT_PASSWORD, csrf_token_in, login, mail_log, portal_config

_CSRF = re.compile(r"(csrf_token\" value=\"|X-CSRFToken\": \"|name=\"csrf-token\" content=\")[^\"]+")
RESEND = "Confirm your e-mail address first; we have sent you a new link."


def _fresh_email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


def _sign_up(client, email: str, password: str = DEFAULT_PASSWORD):
    return client.post("/signup", data={"email": email, "password": password, "confirm": password})


def _user_row(app, email: str):
    from portal.extensions import db
    from portal.models import User

    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == email))
        db.session.expunge(user)
        return user


def _signed_in(client) -> bool:
    return client.get("/keys").status_code == 200


def test_new_and_taken_addresses_get_byte_identical_answers(csrf_portal_app, make_user):
    taken = make_user()
    answers = []
    for email in (taken.email, _fresh_email("fresh")):
        client = csrf_portal_app.test_client()
        token = csrf_token_in(client.get("/signup").get_data(as_text=True))
        with mail_log():
            answer = client.post("/signup", data={"email": email, "password": "another long passphrase 9",
                                                  "confirm": "another long passphrase 9", "csrf_token": token})
        following = client.get(answer.headers["Location"])
        answers.append((client, answer, following))
    (taken_client, for_taken, taken_next), (new_client, for_new, new_next) = answers

    assert for_taken.status_code == for_new.status_code == 303
    assert for_taken.headers["Location"] == for_new.headers["Location"] == "/signup/sent"
    assert for_taken.get_data() == for_new.get_data()
    # The same cookies: the session is emptied in both cases, never one that signs in.
    assert for_taken.headers.getlist("Set-Cookie") == for_new.headers.getlist("Set-Cookie")
    assert all(not re.match(r"(device|remember_token)=", c) for c in for_new.headers.getlist("Set-Cookie"))
    assert taken_next.status_code == new_next.status_code == 200
    assert _CSRF.sub("", taken_next.get_data(as_text=True)) == _CSRF.sub("", new_next.get_data(as_text=True))
    assert "Check your inbox" in new_next.get_data(as_text=True)
    assert not _signed_in(taken_client) and not _signed_in(new_client)


def test_the_confirmation_link_signs_in_once(portal_app, gateway):
    email = _fresh_email("once")
    browser = portal_app.test_client()
    with mail_log() as mail:
        assert _sign_up(browser, email).headers["Location"] == "/signup/sent"
        link = mail.confirmation_link(email)
    assert not _signed_in(browser)
    assert _user_row(portal_app, email).email_confirmed_at is None

    opened = browser.get(link)
    assert opened.status_code == 303 and opened.headers["Location"] == "/dashboard"
    assert _signed_in(browser)
    user = _user_row(portal_app, email)
    assert user.email_confirmed_at is not None and user.account_id
    assert gateway.internal("GET", f"/accounts/{user.account_id}").status_code == 200

    someone_else = portal_app.test_client()
    again = someone_else.get(link)
    assert again.status_code == 410
    assert "This link no longer works" in again.get_data(as_text=True)
    assert not _signed_in(someone_else)
    # Confirmed, the account signs in with its password like any other.
    assert login(portal_app.test_client(), email).status_code == 303


def test_the_link_lands_where_sign_up_was_headed(portal_app):
    email = _fresh_email("next")
    with mail_log() as mail:
        portal_app.test_client().post("/signup?next=/keys", data={
            "email": email, "password": DEFAULT_PASSWORD, "confirm": DEFAULT_PASSWORD})
        link = mail.confirmation_link(email)
    assert portal_app.test_client().get(link).headers["Location"] == "/keys"


def test_a_tampered_link_is_refused(portal_app):
    email = _fresh_email("tamper")
    with mail_log() as mail:
        _sign_up(portal_app.test_client(), email)
        link = mail.confirmation_link(email)
    client = portal_app.test_client()
    assert client.get(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")).status_code == 410
    assert not _signed_in(client)
    assert _user_row(portal_app, email).email_confirmed_at is None


def test_an_expired_link_is_refused_with_a_way_to_get_a_new_one(portal_app):
    email = _fresh_email("expired")
    start = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    with time_machine.travel(start, tick=False) as clock, mail_log() as mail:
        _sign_up(portal_app.test_client(), email)
        old_link = mail.confirmation_link(email)
        clock.shift(timedelta(hours=24, seconds=1))
        client = portal_app.test_client()
        expired = client.get(old_link)
        assert expired.status_code == 410
        page = expired.get_data(as_text=True)
        assert "Confirmation links work once and only for 24 hours" in page
        assert 'href="/confirm/resend"' in page
        assert not _signed_in(client)

        asked = client.post("/confirm/resend", data={"email": email})
        assert "we have sent it a new link" in asked.get_data(as_text=True)
        new_link = mail.confirmation_link(email, after=1)
        assert new_link != old_link
        assert client.get(new_link).headers["Location"] == "/dashboard"
        assert _signed_in(client)


def test_unconfirmed_sign_in_with_the_right_password_sends_a_new_link(portal_app):
    email = _fresh_email("unconfirmed")
    start = datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)
    with time_machine.travel(start, tick=False) as clock, mail_log() as mail:
        _sign_up(portal_app.test_client(), email)
        first_link = mail.confirmation_link(email)

        wrong = login(portal_app.test_client(), email, "not the password at all")
        assert wrong.status_code == 422
        assert "Wrong e-mail or password." in wrong.get_data(as_text=True)
        assert RESEND not in wrong.get_data(as_text=True)

        # Right away the link just sent is still the one to use: no new mail.
        soon = login(portal_app.test_client(), email)
        assert soon.status_code == 422
        assert "Confirm your e-mail address first" in soon.get_data(as_text=True)
        assert len(mail.confirmation_links(email)) == 1

        clock.shift(timedelta(minutes=2))
        client = portal_app.test_client()
        right = login(client, email)
        assert right.status_code == 422
        assert RESEND in right.get_data(as_text=True)
        assert not _signed_in(client)
        new_link = mail.confirmation_link(email, after=1)
        assert new_link != first_link
        assert client.get(new_link).headers["Location"] == "/dashboard"
        assert _signed_in(client)
        # One confirmation ends every outstanding link.
        assert portal_app.test_client().get(first_link).status_code == 410


def test_the_resend_form_answers_alike_for_every_address(portal_app, make_user):
    confirmed = make_user()
    waiting = _fresh_email("waiting")
    unknown = _fresh_email("unknown")
    start = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
    with time_machine.travel(start, tick=False) as clock, mail_log() as mail:
        _sign_up(portal_app.test_client(), waiting)
        mail.confirmation_link(waiting)
        clock.shift(timedelta(minutes=5))
        bodies = []
        for email in (confirmed.email, waiting, unknown):
            answer = portal_app.test_client().post("/confirm/resend", data={"email": email})
            assert answer.status_code == 200
            bodies.append(_CSRF.sub("", answer.get_data(as_text=True)))
        assert bodies[0] == bodies[1] == bodies[2]
        mail.confirmation_link(waiting, after=1)
        assert mail.confirmation_links(confirmed.email) == [] and mail.confirmation_links(unknown) == []
        # Asking again at once sends nothing more: resending is limited.
        portal_app.test_client().post("/confirm/resend", data={"email": waiting})
        assert len(mail.confirmation_links(waiting)) == 2


def test_users_from_before_the_change_count_as_confirmed(tmp_path, gateway):
    from flask_migrate import upgrade

    from portal import create_app

    url = f"sqlite:///{tmp_path / 'before.db'}"
    app = create_app(portal_config(url, gateway.internal_url, gateway.token, tmp_path / "instance", public_url=gateway.url + "/v1"))
    created = datetime(2026, 1, 2, 3, 4, 5)
    with app.app_context():
        from portal.extensions import db

        upgrade(revision="0004_security")
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO users (email, password_hash, session_version, is_operator, created_at) "
                "VALUES ('old@example.com', :hash, 1, false, :created)"),
                {"hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "created": created})
        upgrade()
        with db.engine.connect() as conn:
            confirmed_at = conn.execute(sa.text(
                "SELECT email_confirmed_at FROM users WHERE email = 'old@example.com'")).scalar_one()
        db.engine.dispose()
    assert str(confirmed_at).startswith("2026-01-02 03:04:05")
