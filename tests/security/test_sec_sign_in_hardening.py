"""Sign-in hardening: module layout, links from PUBLIC_URL and trusted hosts, server-side
sign-out, atomic throttling, reset links voided by a reset, support-sender verification.
"""

from __future__ import annotations

import ast
import logging
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.portal import DEFAULT_PASSWORD, login, mail_log
from sec_common import enrol_two_factor

AUTH = Path(__file__).resolve().parents[2] / "portal" / "auth"
NEW_PASSWORD = "a fresh and unusual passphrase 7"


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
            names.update(f"{node.module or ''}.{alias.name}".lstrip(".") for alias in node.names)
    return names


def _wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def _links(mail, email: str, kind: str) -> list[str]:
    return [m.group(0) for to, _subject, body in list(mail.messages) if to == email.lower()
            for m in re.finditer(rf"https?://[^/\s]+/{kind}/[A-Za-z0-9_.\-]+", body)]


# 1. start_session lives in sessions; the two route modules do not import each other.

def test_route_modules_do_not_import_each_other():
    from portal.auth import routes, sessions

    assert not any("twofactor_routes" in name for name in _imported_modules(AUTH / "routes.py"))
    assert not any(name.endswith("routes") or ".routes." in name or name == "routes.start_session"
                   for name in _imported_modules(AUTH / "twofactor_routes.py"))
    assert routes.start_session is sessions.start_session


# 2. E-mailed links come from PUBLIC_URL; other Host headers are refused.

def _app_with_env(portal_database_url, gateway, instance_dir, **env):
    from portal import create_app
    from portal.config import TestingConfig

    base = {"DATABASE_URL": portal_database_url, "GATEWAY_URL": gateway.url, "INTERNAL_API_TOKEN": gateway.token,
            "SECRET_KEY": "test-secret-" + uuid.uuid4().hex}
    return create_app(TestingConfig(env={**base, **env}, instance_dir=instance_dir))


def test_reset_link_uses_public_url_and_foreign_hosts_are_refused(portal_database_url, gateway, tmp_path, user):
    app = _app_with_env(portal_database_url, gateway, tmp_path, PUBLIC_URL="https://portal.example.com",
                        TRUSTED_HOSTS="www.portal.example.com")
    client = app.test_client()
    poisoned = client.post("/reset", data={"email": user.email}, headers={"Host": "attacker.example"})
    assert poisoned.status_code == 400
    with mail_log() as mail:
        for host in ("portal.example.com", "www.portal.example.com", "localhost", "127.0.0.1:8000"):
            assert client.post("/reset", data={"email": user.email}, headers={"Host": host}).status_code == 200
        links = _wait_for(lambda: len(_links(mail, user.email, "reset")) >= 4 and _links(mail, user.email, "reset"))
    assert all(link.startswith("https://portal.example.com/reset/") for link in links)


@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(host=st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,8}){0,2}(:[0-9]{2,5})?", fullmatch=True))
def test_any_untrusted_host_gets_400(portal_app, host):
    if host.split(":")[0] in ("localhost", "127.0.0.1"):
        return
    assert portal_app.test_client().get("/login", headers={"Host": host}).status_code == 400


def test_smtp_without_public_url_stops_the_start(tmp_path):
    from portal.config import Config, ConfigError

    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        Config(env={"SMTP_HOST": "mail.example.com", "SECRET_KEY": "x" * 32}, instance_dir=tmp_path)
    listen = Config(env={"SECRET_KEY": "x" * 32, "PORT": "8123"}, instance_dir=tmp_path)
    assert listen.LINK_BASE_URL == "http://127.0.0.1:8123"


# 4. Signing out ends the session on the server: a copied cookie is worthless after.

def _cookie(client) -> str:
    return client.get_cookie("session").value


def test_a_cookie_copied_before_sign_out_no_longer_opens_settings(portal_app, user):
    client = portal_app.test_client()
    assert login(client, user.email, user.password).status_code == 303
    stolen = _cookie(client)
    thief = portal_app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/settings").status_code == 200
    assert client.post("/logout").status_code == 303
    replay = portal_app.test_client()
    replay.set_cookie("session", stolen)
    assert replay.get("/settings").status_code == 302


def test_a_password_reset_ends_every_session_with_copied_cookies(portal_app, user):
    one, two = portal_app.test_client(), portal_app.test_client()
    login(one, user.email, user.password)
    login(two, user.email, user.password)
    copies = [_cookie(one), _cookie(two)]
    with mail_log() as mail:
        portal_app.test_client().post("/reset", data={"email": user.email})
        link = _wait_for(lambda: _links(mail, user.email, "reset"))[-1]
    path = link.split("://", 1)[1].split("/", 1)[1]
    assert portal_app.test_client().post("/" + path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
                                         ).status_code == 303
    for copy in copies:
        replay = portal_app.test_client()
        replay.set_cookie("session", copy)
        assert replay.get("/settings").status_code == 302


# 5. Forty parallel wrong passwords: no more than five are checked.

def test_forty_parallel_guesses_check_at_most_five_passwords(portal_app, user, monkeypatch):
    import portal.auth.routes as routes

    checked = []
    real_verify = routes.verify_password

    def counting_verify(password_hash, password):
        checked.append(password)
        return real_verify(password_hash, password)

    monkeypatch.setattr(routes, "verify_password", counting_verify)
    start = threading.Barrier(40)
    statuses = []

    def guess(n: int) -> None:
        client = portal_app.test_client()
        start.wait()
        response = client.post("/login", data={"email": user.email, "password": f"wrong guess {n}"},
                               environ_base={"REMOTE_ADDR": "192.0.2.77"})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
    # The clock stands still at the present: on a busy machine the forty requests may take
    # longer than the delay the first failures earn, which would rightly let another through.
    with time_machine.travel(datetime.now(timezone.utc), tick=False):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert len(statuses) == 40 and set(statuses) <= {422, 429}
    assert 1 <= len(checked) <= 5
    assert statuses.count(422) == len(checked)


# 6. A reset (or a password change) voids every link sent before it.

def _reset_links(portal_app, email: str, count: int) -> list[str]:
    with mail_log() as mail:
        for _ in range(count):
            portal_app.test_client().post("/reset", data={"email": email})
        links = _wait_for(lambda: len(_links(mail, email, "reset")) >= count and _links(mail, email, "reset"))
    return ["/" + link.split("://", 1)[1].split("/", 1)[1] for link in links]


def test_using_the_newest_reset_link_voids_the_older_ones(portal_app, user):
    older, newest = _reset_links(portal_app, user.email, 2)
    client = portal_app.test_client()
    assert client.post(newest, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}).status_code == 303
    late = client.post(older, data={"password": "the attackers passphrase", "confirm": "the attackers passphrase"})
    assert late.status_code == 410
    assert login(portal_app.test_client(), user.email, NEW_PASSWORD).status_code == 303


def test_a_password_change_voids_outstanding_reset_links(portal_app, user):
    [link] = _reset_links(portal_app, user.email, 1)
    client = portal_app.test_client()
    login(client, user.email, user.password)
    changed = client.post("/settings/password", data={"current_password": user.password, "password": NEW_PASSWORD,
                                                      "confirm": NEW_PASSWORD})
    assert changed.status_code == 303
    assert portal_app.test_client().get(link).status_code == 410


# 7. Support messages: attached to an account only when sent signed in.

def test_a_message_typed_with_someone_elses_address_is_marked_unverified(portal_app, make_user, user):
    from portal.extensions import db
    from portal.models import User

    stranger = portal_app.test_client()
    subject = f"refund please {uuid.uuid4().hex[:6]}"
    sent = stranger.post("/support", data={"email": user.email, "topic": "billing", "subject": subject,
                                            "message": "Send my balance to this other card, thanks."})
    assert sent.status_code == 200
    ops = make_user(is_operator=True)
    client = portal_app.test_client()
    login(client, ops.email, ops.password)
    _totp, codes = enrol_two_factor(client)
    client.post("/logout")
    assert login(client, ops.email, ops.password).headers["Location"] == "/login/2fa"
    assert client.post("/login/2fa", data={"code": codes[0]}).status_code == 303
    with portal_app.app_context():
        account_id = db.session.get(User, user.id).account_id
    page = client.get(f"/operator/customers/{account_id}").get_data(as_text=True)
    line = next(part for part in page.split("<li>") if subject in part)
    assert "unverified sender" in line


def test_support_page_shows_the_configured_address(portal_database_url, gateway, tmp_path):
    app = _app_with_env(portal_database_url, gateway, tmp_path, SUPPORT_EMAIL="care@samalink.test")
    page = app.test_client().get("/support").get_data(as_text=True)
    assert 'href="mailto:care@samalink.test"' in page and "help@samalink.ai" not in page


# 8. Control characters: a form error, never a 5xx, on either database.

FORMS = [
    ("/login", {"email": "x@example.com", "password": DEFAULT_PASSWORD}),
    ("/signup", {"email": "x@example.com", "password": DEFAULT_PASSWORD, "confirm": DEFAULT_PASSWORD}),
    ("/reset", {"email": "x@example.com"}),
    ("/confirm/resend", {"email": "x@example.com"}),
    ("/support", {"email": "x@example.com", "topic": "api", "subject": "Hello", "message": "A long enough message."}),
]
FIELDS = [(path, name) for path, data in FORMS for name in data]
NASTY = st.one_of(
    st.sampled_from(["\x00", "a\x00b@example.com", "\ud800", "x\u202eexample.com", "\u200f\u200e", "\x1b[2J",
                     "\x7f", "a" * 1024 * 1024, "\r\n\t"]),
    st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "Ll"]), max_size=40),
)


def _post(client, path: str, data: dict):
    body = "&".join(f"{key}={_quote(value)}" for key, value in data.items())
    return client.post(path, data=body.encode("ascii"), content_type="application/x-www-form-urlencoded")


def _quote(value: str) -> str:
    from urllib.parse import quote

    # Lone surrogates cannot be encoded as UTF-8; send their raw bytes as a browser bug would.
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=NASTY)
def test_hostile_text_in_any_field_never_gives_a_5xx(portal_app, field, value):
    path, name = field
    data = dict(dict(FORMS)[path], **{name: value})
    response = _post(portal_app.test_client(), path, data)
    assert response.status_code < 500, (path, name, repr(value[:40]))


@pytest.mark.parametrize("path, name", FIELDS)
def test_nul_in_a_field_is_a_form_error(portal_app, path, name):
    data = dict(dict(FORMS)[path], **{name: "abc\x00def@example.com"})
    response = _post(portal_app.test_client(), path, data)
    assert response.status_code == 422
    assert "Remove the control characters" in response.get_data(as_text=True)


def test_a_support_message_keeps_its_line_breaks_and_tabs(logged_in_client):
    response = logged_in_client.post("/support", data={
        "email": logged_in_client.user.email, "topic": "api", "subject": "Tabs",
        "message": "Line one\r\n\tindented line two"})
    assert "your message is with us" in response.get_data(as_text=True)


def test_logging_is_quiet_about_the_refused_text(portal_app, caplog):
    caplog.set_level(logging.WARNING)
    _post(portal_app.test_client(), "/login", {"email": "a\x00@example.com", "password": DEFAULT_PASSWORD})
    assert "Traceback" not in caplog.text


def test_the_session_table_holds_only_digests(portal_app, user):
    from portal.extensions import db
    from portal.models import UserSession

    client = portal_app.test_client()
    login(client, user.email, user.password)
    with client.session_transaction() as session:
        sid = session["sid"]
    with portal_app.app_context():
        hashes = db.session.scalars(sa.select(UserSession.token_hash).where(UserSession.user_id == user.id)).all()
    assert sid not in hashes and len(hashes) >= 1
