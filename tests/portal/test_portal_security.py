"""Security headers, cookie flags, CSRF on every form (htmx included), secrets kept out of pages and logs."""

from __future__ import annotations

import logging

from fixtures.portal import DEFAULT_PASSWORD, csrf_token_in


def test_security_headers_on_every_answer(client):
    for path in ("/pricing", "/login", "/no-such-page", "/static/css/app.css"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
                          "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'"):
            assert directive in csp, (path, directive)
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_session_cookie_flags(client, user):
    response = client.post("/login", data={"email": user.email, "password": user.password})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http in tests


def test_secure_cookie_behind_https(portal_database_url, gateway, tmp_path):
    from portal.config import TestingConfig

    config = TestingConfig(env={"DATABASE_URL": portal_database_url, "GATEWAY_URL": gateway.internal_url,
                                "INTERNAL_API_TOKEN": gateway.token, "SECRET_KEY": "x" * 32,
                                "SESSION_COOKIE_SECURE": "1"}, instance_dir=tmp_path)
    assert config.SESSION_COOKIE_SECURE is True and config.PREFERRED_URL_SCHEME == "https"


def test_csrf_is_enforced_on_forms(csrf_portal_app, make_user):
    client = csrf_portal_app.test_client()
    refused = client.post("/signup", data={"email": "csrf@example.com", "password": DEFAULT_PASSWORD,
                                           "confirm": DEFAULT_PASSWORD})
    assert refused.status_code == 400
    assert "This form expired or was sent from another site." in refused.get_data(as_text=True)
    token = csrf_token_in(client.get("/signup").get_data(as_text=True))
    accepted = client.post("/signup", data={"email": "csrf@example.com", "password": DEFAULT_PASSWORD,
                                            "confirm": DEFAULT_PASSWORD, "csrf_token": token})
    assert accepted.status_code == 303


def test_csrf_header_works_for_htmx_requests(csrf_portal_app, make_user):
    user = make_user()
    client = csrf_portal_app.test_client()
    token = csrf_token_in(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"email": user.email, "password": user.password,
                                       "csrf_token": token}).status_code == 303
    page = client.get("/keys").get_data(as_text=True)
    header_token = page.split('hx-headers=\'{"X-CSRFToken": "', 1)[1].split('"', 1)[0]
    without = client.post("/keys", data={"name": "no token"}, headers={"HX-Request": "true"})
    assert without.status_code == 400
    with_header = client.post("/keys", data={"name": "with token"},
                              headers={"HX-Request": "true", "X-CSRFToken": header_token})
    assert with_header.status_code == 200 and "with token" in with_header.get_data(as_text=True)
    assert client.post("/logout").status_code == 400  # sign-out is a form too
    assert client.post("/settings/timezone", data={"timezone": "UTC"}).status_code == 400


def test_internal_token_and_keys_stay_out_of_pages_and_logs(portal_app, logged_in_client, gateway, caplog):
    caplog.set_level(logging.DEBUG)
    created = logged_in_client.post("/keys", data={"name": "secret check"}).get_data(as_text=True)
    for path in ("/dashboard", "/keys", "/docs", "/quickstart", "/settings"):
        assert gateway.token not in logged_in_client.get(path).get_data(as_text=True)
    assert gateway.token not in created
    assert gateway.token not in caplog.text
    assert "sama_" not in caplog.text
    assert repr(portal_app.extensions["gateway_client"]).count(gateway.token) == 0


def test_config_errors_name_the_setting(tmp_path):
    import pytest

    from portal.config import Config, ConfigError

    cases = {
        "PORT": ({"PORT": "eighty"}, "PORT must be an integer"),
        "GATEWAY_URL": ({"GATEWAY_URL": "ftp://x"}, "GATEWAY_URL must be an http:// or https:// URL"),
        "DATABASE_URL": ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must be a sqlite://"),
        "SECRET_KEY": ({"SECRET_KEY": "short"}, "SECRET_KEY must be at least 16 characters"),
        "INTERNAL_API_TOKEN": ({"INTERNAL_API_TOKEN": "short"}, "INTERNAL_API_TOKEN must be at least 16"),
    }
    for name, (env, message) in cases.items():
        with pytest.raises(ConfigError) as error:
            Config(env=env, instance_dir=tmp_path)
        assert message in str(error.value) and "\n" not in str(error.value), name


def test_local_run_generates_and_keeps_a_secret_key(tmp_path):
    from portal.config import Config

    first = Config(env={}, instance_dir=tmp_path)
    second = Config(env={}, instance_dir=tmp_path)
    assert len(first.SECRET_KEY) >= 32 and first.SECRET_KEY == second.SECRET_KEY
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert first.GATEWAY_PUBLIC_URL == "http://127.0.0.1:8001/v1"
