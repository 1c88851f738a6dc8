"""Two-factor sign-in: enrolment by QR code, the second sign-in step, recovery codes, turning it off."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
import time_machine
from sec_common import CODE_RE, SECRET_RE, enrol_two_factor

from fixtures.portal import login

START = datetime(2026, 11, 25, 10, 0, 5, tzinfo=timezone.utc)


def _signed_in(portal_app, user):
    client = portal_app.test_client()
    assert login(client, user.email, user.password).status_code == 303
    return client


def test_enrolment_page_shows_an_inline_svg_qr_code_and_stays_out_of_caches(portal_app, user):
    client = _signed_in(portal_app, user)
    page = client.get("/settings")
    assert "/settings/2fa" in page.get_data(as_text=True)
    answer = client.get("/settings/2fa")
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200
    svg = body[body.index("<svg"):body.index("</svg>")]
    assert "<path" in svg and "style=" not in svg and "<script" not in svg
    assert "<script>" not in body and " style=" not in body  # the strict CSP still holds
    assert "unsafe-inline" not in answer.headers["Content-Security-Policy"]
    assert answer.headers["Cache-Control"] == "no-store"
    assert 'hx-history="false"' in body
    # Reloading keeps the same secret, so a half-finished scan still works.
    reloaded = client.get("/settings/2fa").get_data(as_text=True)
    assert SECRET_RE.search(reloaded).group(1) == SECRET_RE.search(body).group(1)


def test_a_wrong_first_code_does_not_turn_it_on(portal_app, user):
    client = _signed_in(portal_app, user)
    client.get("/settings/2fa")
    refused = client.post("/settings/2fa/enable", data={"code": "000000"})
    assert refused.status_code == 422
    assert "That code does not match" in refused.get_data(as_text=True)
    client.post("/logout")
    assert login(client, user.email, user.password).headers["Location"] == "/dashboard"


def test_ten_recovery_codes_are_shown_once_and_stored_hashed(portal_app, user):
    client = _signed_in(portal_app, user)
    _, codes = enrol_two_factor(client)
    assert len(codes) == 10 == len(set(codes))
    with portal_app.app_context():
        from portal.extensions import db

        stored = " ".join(row[0] for row in db.session.execute(sa.text(
            "SELECT code_hash FROM recovery_codes WHERE user_id = :u"), {"u": user.id}))
    assert stored.count(" ") == 9
    for code in codes:
        assert code not in stored and code.replace("-", "") not in stored
    page = client.get("/settings/2fa").get_data(as_text=True)
    assert "Two-factor sign-in is on" in page and "10 unused recovery codes left" in page
    assert not CODE_RE.findall(page)


def test_sign_in_asks_for_the_code_on_a_second_step(portal_app, user):
    with time_machine.travel(START, tick=False) as clock:
        totp, _ = enrol_two_factor(_signed_in(portal_app, user))
        clock.shift(timedelta(seconds=30))
        client = portal_app.test_client()
        first = client.post("/login?next=/keys", data={"email": user.email, "password": user.password})
        assert first.status_code == 303 and first.headers["Location"] == "/login/2fa"
        # The password alone opens nothing.
        assert client.get("/keys").status_code == 302
        form = client.get("/login/2fa")
        assert form.status_code == 200 and "6-digit code" in form.get_data(as_text=True)
        wrong = client.post("/login/2fa", data={"code": "123456"})
        assert wrong.status_code == 422 and "That code is not valid" in wrong.get_data(as_text=True)
        assert client.get("/keys").status_code == 302
        done = client.post("/login/2fa", data={"code": totp.now()})
        assert done.status_code == 303 and done.headers["Location"] == "/keys"
        assert client.get("/keys").status_code == 200


def test_a_code_works_only_once(portal_app, user):
    with time_machine.travel(START, tick=False) as clock:
        totp, _ = enrol_two_factor(_signed_in(portal_app, user))
        clock.shift(timedelta(seconds=30))
        code = totp.now()
        first, second = portal_app.test_client(), portal_app.test_client()
        for client in (first, second):
            login(client, user.email, user.password)
        assert first.post("/login/2fa", data={"code": code}).status_code == 303
        replay = second.post("/login/2fa", data={"code": code})
        assert replay.status_code == 422
        assert second.get("/dashboard").status_code == 302


def test_codes_from_the_neighbouring_step_are_accepted_but_older_ones_are_not(portal_app, user):
    with time_machine.travel(START, tick=False) as clock:
        totp, _ = enrol_two_factor(_signed_in(portal_app, user))
        clock.shift(timedelta(minutes=5))
        client = portal_app.test_client()
        login(client, user.email, user.password)
        stale = totp.at(time.time() - 90)
        assert client.post("/login/2fa", data={"code": stale}).status_code == 422
        previous = totp.at(time.time() - 30)  # a phone a little behind
        assert client.post("/login/2fa", data={"code": previous}).status_code == 303


def test_a_recovery_code_signs_in_once(portal_app, user):
    client = _signed_in(portal_app, user)
    _, codes = enrol_two_factor(client)
    first = portal_app.test_client()
    login(first, user.email, user.password)
    typed = codes[0].upper().replace("-", " ")  # however the user types it
    assert first.post("/login/2fa", data={"code": typed}).status_code == 303
    assert first.get("/dashboard").status_code == 200
    again = portal_app.test_client()
    login(again, user.email, user.password)
    assert again.post("/login/2fa", data={"code": codes[0]}).status_code == 422
    assert again.post("/login/2fa", data={"code": codes[1]}).status_code == 303
    assert "8 unused recovery codes left" in client.get("/settings/2fa").get_data(as_text=True)


def test_guessing_codes_is_slowed_down(portal_app, user):
    with time_machine.travel(START, tick=False):
        enrol_two_factor(_signed_in(portal_app, user))
        client = portal_app.test_client()
        login(client, user.email, user.password)
        for guess in range(5):
            assert client.post("/login/2fa", data={"code": f"{guess:06d}"}).status_code == 422
        blocked = client.post("/login/2fa", data={"code": "999999"})
        assert blocked.status_code == 429
        assert "Too many failed attempts" in blocked.get_data(as_text=True)


def test_the_code_step_expires(portal_app, user):
    with time_machine.travel(START, tick=False) as clock:
        totp, _ = enrol_two_factor(_signed_in(portal_app, user))
        client = portal_app.test_client()
        login(client, user.email, user.password)
        clock.shift(timedelta(minutes=6))
        late = client.post("/login/2fa", data={"code": totp.now()})
        assert late.status_code == 303 and late.headers["Location"] == "/login"
        assert client.get("/dashboard").status_code == 302


def test_turning_it_off_needs_the_password_and_a_current_code(portal_app, user):
    with time_machine.travel(START, tick=False) as clock:
        client = _signed_in(portal_app, user)
        totp, _ = enrol_two_factor(client)
        clock.shift(timedelta(seconds=30))
        wrong_password = client.post("/settings/2fa/disable", data={"password": "not mine at all", "code": totp.now()})
        assert wrong_password.status_code == 422
        assert "That is not your current password." in wrong_password.get_data(as_text=True)
        wrong_code = client.post("/settings/2fa/disable", data={"password": user.password, "code": "000000"})
        assert wrong_code.status_code == 422 and "That code is not valid." in wrong_code.get_data(as_text=True)
        assert "Two-factor sign-in is on" in client.get("/settings/2fa").get_data(as_text=True)
        off = client.post("/settings/2fa/disable", data={"password": user.password, "code": totp.now()})
        assert off.status_code == 303
        fresh = portal_app.test_client()
        assert login(fresh, user.email, user.password).headers["Location"] == "/dashboard"


def test_two_factor_pages_need_a_sign_in(client):
    for path in ("/settings/2fa",):
        assert client.get(path).status_code == 302
    for path in ("/settings/2fa/enable", "/settings/2fa/disable"):
        assert client.post(path, data={"code": "123456"}).status_code == 302
    assert client.get("/login/2fa").headers["Location"] == "/login"
