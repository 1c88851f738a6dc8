"""Sessions and response headers: time-outs, cookies behind HTTPS, CSP and friends, htmx settings."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from sec_common import make_app

from fixtures.portal import login

START = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
PAGES = ["/dashboard", "/quickstart", "/models", "/keys", "/billing", "/pricing", "/usage", "/requests",
         "/payments", "/settings", "/support", "/docs", "/settings/2fa"]


@pytest.fixture
def timed_app(portal_database_url, gateway, tmp_path):
    """Production time-outs: 30 minutes idle, 12 hours in all."""
    return make_app(portal_database_url, gateway, tmp_path / "instance", SESSION_IDLE_MINUTES=30, SESSION_MAX_HOURS=12)


def test_an_idle_session_ends_after_30_minutes(timed_app, user):
    with time_machine.travel(START, tick=False) as clock:
        client = timed_app.test_client()
        assert login(client, user.email, user.password).status_code == 303
        for _ in range(4):  # in use every 29 minutes: stays signed in
            clock.shift(timedelta(minutes=29))
            assert client.get("/settings").status_code == 200
        clock.shift(timedelta(minutes=31))
        expired = client.get("/settings")
        assert expired.status_code == 302 and expired.headers["Location"].startswith("/login")
        assert "Your session expired. Sign in again." in client.get("/login").get_data(as_text=True)
        assert login(client, user.email, user.password).status_code == 303
        assert client.get("/settings").status_code == 200


def test_a_busy_session_still_ends_after_12_hours(timed_app, user):
    with time_machine.travel(START, tick=False) as clock:
        client = timed_app.test_client()
        login(client, user.email, user.password)
        for _ in range(23):  # every 30 minutes until 11:30 in
            clock.shift(timedelta(minutes=30))
            assert client.get("/keys").status_code == 200
        clock.shift(timedelta(minutes=31))
        assert client.get("/keys").status_code == 302


def test_time_outs_are_configurable_and_checked(tmp_path):
    from portal.config import Config, ConfigError

    config = Config(env={"SESSION_IDLE_MINUTES": "5", "SESSION_MAX_HOURS": "1"}, instance_dir=tmp_path)
    assert (config.SESSION_IDLE_MINUTES, config.SESSION_MAX_HOURS) == (5, 1)
    with pytest.raises(ConfigError, match="SESSION_IDLE_MINUTES must be"):
        Config(env={"SESSION_IDLE_MINUTES": "soon"}, instance_dir=tmp_path)
    with pytest.raises(ConfigError, match="SESSION_MAX_HOURS must be positive"):
        Config(env={"SESSION_MAX_HOURS": "0"}, instance_dir=tmp_path)


def test_sign_in_issues_a_new_session_cookie(portal_app, user):
    client = portal_app.test_client()
    client.get("/login")
    with client.session_transaction() as session:
        session["visitor"] = "before sign-in"
    before = client.get_cookie("session").value
    login(client, user.email, user.password)
    after = client.get_cookie("session").value
    assert before != after
    with client.session_transaction() as session:
        assert "visitor" not in session


def test_settings_offers_sign_out_everywhere_with_confirmation(logged_in_client):
    page = logged_in_client.get("/settings").get_data(as_text=True)
    form = page[page.index('action="/logout-everywhere"') - 200:page.index('action="/logout-everywhere"') + 700]
    assert "hx-confirm=" in form and "Sign out everywhere" in form


def test_behind_https_cookies_are_secure_host_prefixed_and_hsts_is_sent(portal_database_url, gateway, tmp_path, user):
    app = make_app(portal_database_url, gateway, tmp_path / "instance", SESSION_COOKIE_SECURE=True,
                   REMEMBER_COOKIE_SECURE=True, TRUST_PROXY=True)
    from werkzeug.middleware.proxy_fix import ProxyFix

    assert isinstance(app.wsgi_app, ProxyFix)
    client = app.test_client()
    https = {"X-Forwarded-Proto": "https"}
    answer = client.post("/login", data={"email": user.email, "password": user.password}, headers=https)
    cookies = answer.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("__Host-session="))
    for flag in ("Secure", "HttpOnly", "Path=/", "SameSite=Lax"):
        assert flag in session_cookie
    assert "Domain=" not in session_cookie
    assert client.get("/pricing", headers=https).headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_forwarded_proto_is_ignored_unless_the_proxy_is_trusted(portal_app):
    client = portal_app.test_client()
    answer = client.get("/pricing", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in answer.headers  # plain http, untrusted header


@pytest.mark.parametrize("headers", [{}, {"HX-Request": "true"}, {"HX-Request": "true", "HX-Boosted": "true"}])
def test_every_page_and_fragment_carries_the_security_headers_and_never_fails(logged_in_client, headers):
    for path in PAGES + ["/no-such-page", "/static/css/app.css", "/login/2fa"]:
        answer = logged_in_client.get(path, headers=headers)
        assert answer.status_code < 500, (path, headers, answer.status_code)
        csp = answer.headers["Content-Security-Policy"]
        for directive in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "script-src 'self'"):
            assert directive in csp, (path, directive)
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"]


def test_pages_hold_no_inline_script_or_style(logged_in_client):
    for path in PAGES:
        body = logged_in_client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), path
        assert not re.search(r"\son[a-z]+=\"", body), path
        assert " style=" not in body and "<style" not in body, path


def test_htmx_is_locked_down(client):
    page = client.get("/pricing").get_data(as_text=True)
    meta = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", page)
    config = json.loads(meta.group(1))
    assert config["selfRequestsOnly"] is True
    assert config["allowScriptTags"] is False
    assert config["allowEval"] is False
    assert config["historyCacheSize"] == 0


def test_the_new_key_page_stays_out_of_history_and_caches(logged_in_client):
    created = logged_in_client.post("/keys", data={"name": "history check"})
    body = created.get_data(as_text=True)
    key = re.search(r"sama_[0-9a-f-]{36}", body).group(0)
    panel = body[:body.index(key)]
    assert 'hx-history="false"' in panel[panel.rindex("<div"):] or 'hx-history="false"' in body[:body.index(key)]
    assert created.headers.get("Cache-Control") == "no-store"
    assert key not in logged_in_client.get("/keys").get_data(as_text=True)
