"""Sign up, sign in, sign out, slowing of password guessing, password change and reset."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
import time_machine

from fixtures.portal import DEFAULT_PASSWORD, login, mail_log
from portal.auth.reset import SUBJECT as RESET_SUBJECT
from portal.auth.passwords import common_passwords
from portal.extensions import db
from portal.models import User

HTMX = {"HX-Request": "true"}


def _signup(client, email, password, confirm=None, **headers):
    return client.post("/signup", data={"email": email, "password": password,
                                        "confirm": password if confirm is None else confirm}, headers=headers)


def _user(app, email) -> User:
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == email))
        db.session.expunge(user)
        return user


@pytest.mark.parametrize("password, message", [
    ("short", "Use at least 8 characters."),
    ("password", "This password is too common."),
    ("qwerty123", "This password is too common."),
    ("x" * 129, "Use at most 128 characters."),
])
def test_signup_refuses_weak_passwords(client, password, message):
    response = _signup(client, "weak@example.com", password)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_signup_accepts_long_passphrases_without_composition_rules(client, portal_app):
    phrase = "all lowercase words are fine here " * 2  # 68 characters, no digits or symbols
    response = _signup(client, "Long.Phrase@Example.com", phrase)
    assert response.status_code == 303
    assert _user(portal_app, "long.phrase@example.com").password_hash.startswith("$argon2id$")


def test_common_password_list_is_substantial():
    assert len(common_passwords()) >= 200
    assert {"123456", "password", "iloveyou", "qwerty"} <= common_passwords()


def test_signup_mismatch_and_bad_email(client):
    body = _signup(client, "m@example.com", DEFAULT_PASSWORD, "something else entirely").get_data(as_text=True)
    assert "The passwords do not match." in body
    body = _signup(client, "not-an-address", DEFAULT_PASSWORD).get_data(as_text=True)
    assert "Enter a valid e-mail address." in body


def test_signup_duplicate_email_creates_nothing_and_reveals_nothing(client, make_user, portal_app, caplog):
    caplog.set_level(logging.WARNING)
    existing = make_user()
    response = _signup(client, existing.email.upper(), "another long passphrase 7")
    assert response.status_code == 303 and response.headers["Location"] == "/signup/sent"
    assert client.get("/dashboard").status_code == 302  # not signed in to someone else's account
    assert _user(portal_app, existing.email).password_hash  # the original account is untouched
    assert login(portal_app.test_client(), existing.email, existing.password).status_code == 303


def test_signup_errors_come_back_as_an_inline_fragment(client):
    response = _signup(client, "frag@example.com", "short", **HTMX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200  # htmx swaps it in place
    assert "<html" not in body and body.lstrip().startswith("<form")
    assert "Use at least 8 characters." in body


def test_signup_creates_the_gateway_account_idempotently(portal_app, gateway, make_user):
    user = make_user()
    assert user.account_id
    account = gateway.internal("GET", f"/accounts/{user.account_id}").json()
    assert account["balance_micro_p"] == 0
    replay = gateway.internal("POST", "/accounts", json={"external_id": str(user.id)})
    assert replay.status_code == 200 and replay.json()["id"] == user.account_id


def test_signup_with_htmx_redirects_the_whole_page(client):
    response = _signup(client, "hx@example.com", DEFAULT_PASSWORD, **HTMX)
    assert response.headers["HX-Redirect"] == "/signup/sent"


def test_signup_while_the_gateway_is_down_completes_later(down_portal_app, portal_app):
    down = down_portal_app.test_client()
    with mail_log() as mail:
        assert _signup(down, "later@example.com", DEFAULT_PASSWORD).status_code == 303
        link = mail.confirmation_link("later@example.com")
    confirmed = down.get(link)
    assert confirmed.status_code == 303 and confirmed.headers["Location"] == "/dashboard"
    assert _user(portal_app, "later@example.com").account_id is None
    up = portal_app.test_client()
    assert login(up, "later@example.com").status_code == 303
    assert up.get("/dashboard").status_code == 200
    assert _user(portal_app, "later@example.com").account_id


def test_login_wrong_password_and_unknown_email_answer_alike(client, user):
    wrong = login(client, user.email, "not the password at all")
    unknown = login(client, "nobody-here@example.com", "not the password at all")
    assert wrong.status_code == unknown.status_code == 422
    assert "Wrong e-mail or password." in wrong.get_data(as_text=True)
    assert "Wrong e-mail or password." in unknown.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302


def test_login_starts_a_fresh_session_and_honours_safe_next(client, user):
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
    response = client.post("/login?next=/usage", data={"email": user.email, "password": user.password})
    assert response.headers["Location"] == "/usage"
    with client.session_transaction() as session:
        assert "planted" not in session
    client.post("/logout")
    evil = client.post("/login?next=//evil.example/x", data={"email": user.email, "password": user.password})
    assert evil.headers["Location"] == "/dashboard"


def test_logout_needs_a_post(logged_in_client):
    assert logged_in_client.get("/logout").status_code == 200  # only asks
    assert logged_in_client.get("/dashboard").status_code == 200
    assert logged_in_client.post("/logout").status_code == 303
    assert logged_in_client.get("/dashboard").status_code == 302


def test_repeated_failures_slow_down_but_never_lock_out_for_long(client, user):
    start = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(5):
            assert login(client, user.email, "wrong password guess").status_code == 422
        # Now the account must wait; even the right password is not checked.
        blocked = login(client, user.email, user.password)
        assert blocked.status_code == 429
        assert "Too many failed attempts. Try again in" in blocked.get_data(as_text=True)
        clock.shift(timedelta(seconds=2))
        assert login(client, user.email, "wrong again").status_code == 422
        for _ in range(20):  # keep failing: the wait grows but stays capped
            clock.shift(timedelta(minutes=6))
            login(client, user.email, "wrong again")
        seconds = int(re.search(r"Try again in (\d+) seconds", login(client, user.email, user.password)
                                .get_data(as_text=True)).group(1))
        assert 0 < seconds <= 301
        clock.shift(timedelta(seconds=seconds + 1))
        assert login(client, user.email, user.password).status_code == 303


def test_change_password_signs_out_other_sessions(portal_app, user):
    here, elsewhere = portal_app.test_client(), portal_app.test_client()
    assert login(here, user.email, user.password).status_code == 303
    assert login(elsewhere, user.email, user.password).status_code == 303
    wrong = here.post("/settings/password", data={
        "current_password": "not my password", "password": "a brand new passphrase", "confirm": "a brand new passphrase"})
    assert "That is not your current password." in wrong.get_data(as_text=True)
    ok = here.post("/settings/password", data={
        "current_password": user.password, "password": "a brand new passphrase", "confirm": "a brand new passphrase"})
    assert ok.status_code == 303
    assert here.get("/settings").status_code == 200
    assert elsewhere.get("/settings").status_code == 302
    fresh = portal_app.test_client()
    assert login(fresh, user.email, user.password).status_code == 422
    assert login(fresh, user.email, "a brand new passphrase").status_code == 303


def test_sign_out_everywhere(portal_app, user):
    one, two = portal_app.test_client(), portal_app.test_client()
    login(one, user.email, user.password)
    login(two, user.email, user.password)
    assert one.post("/logout-everywhere").status_code == 303
    assert one.get("/keys").status_code == 302 and two.get("/keys").status_code == 302


def test_reset_answers_the_same_for_unknown_addresses(client, user):
    with mail_log() as mail:
        known = client.post("/reset", data={"email": user.email}).get_data(as_text=True)
        unknown = client.post("/reset", data={"email": "nobody@example.com"}).get_data(as_text=True)
    assert "If an account exists for that address" in known
    assert known.replace(user.email, "") == unknown.replace("nobody@example.com", "")
    assert [(to, subject) for to, subject, _ in mail.messages] == [(user.email, RESET_SUBJECT)]


def test_reset_link_is_single_use_and_ends_sessions(portal_app, user):
    signed_in = portal_app.test_client()
    login(signed_in, user.email, user.password)
    client = portal_app.test_client()
    with mail_log() as mail:
        client.post("/reset", data={"email": user.email})
    link = mail.link(user.email, "reset", RESET_SUBJECT)
    assert client.get(link).status_code == 200
    mismatch = client.post(link, data={"password": "new passphrase here", "confirm": "other"})
    assert "The passwords do not match." in mismatch.get_data(as_text=True)
    done = client.post(link, data={"password": "new passphrase here", "confirm": "new passphrase here"})
    assert done.status_code == 303 and done.headers["Location"] == "/login"
    again = client.post(link, data={"password": "another passphrase", "confirm": "another passphrase"})
    assert again.status_code == 410
    assert "This link no longer works" in again.get_data(as_text=True)
    assert signed_in.get("/keys").status_code == 302
    assert login(portal_app.test_client(), user.email, "new passphrase here").status_code == 303


def test_reset_link_expires_after_an_hour(portal_app, user):
    start = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
    client = portal_app.test_client()
    with time_machine.travel(start, tick=False) as clock, mail_log() as mail:
        client.post("/reset", data={"email": user.email})
        link = mail.link(user.email, "reset", RESET_SUBJECT)
        clock.shift(timedelta(minutes=59))
        assert client.get(link).status_code == 200
        clock.shift(timedelta(minutes=2))
        expired = client.post(link, data={"password": "late passphrase 1", "confirm": "late passphrase 1"})
        assert expired.status_code == 410
    assert login(portal_app.test_client(), user.email, user.password).status_code == 303


def test_reset_page_for_a_made_up_token(client):
    response = client.get("/reset/not-a-real-token")
    assert response.status_code == 410
