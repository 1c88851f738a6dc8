"""Shared pieces of the security tests: portal apps with chosen settings, 2FA enrolment."""

from __future__ import annotations

import re

import pyotp

from fixtures.portal import portal_config

SECRET_RE = re.compile(r'id="totp-secret">([A-Z2-7]+)<')
CODE_RE = re.compile(r"<li><code>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</code></li>")


def make_app(portal_database_url: str, gateway, instance_dir, **overrides):
    """A portal app on the session database with ``overrides`` applied to its config."""
    from portal import create_app

    return create_app(portal_config(portal_database_url, gateway.internal_url, gateway.token, instance_dir, public_url=gateway.url + "/v1", **overrides))


def enrol_two_factor(client) -> tuple[pyotp.TOTP, list[str]]:
    """Turn two-factor on for the signed-in ``client``; its TOTP and the recovery codes."""
    page = client.get("/settings/2fa")
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    secret = SECRET_RE.search(page.get_data(as_text=True)).group(1)
    totp = pyotp.TOTP(secret)
    shown = client.post("/settings/2fa/enable", data={"code": totp.now()})
    assert shown.status_code == 200, shown.get_data(as_text=True)[:500]
    codes = CODE_RE.findall(shown.get_data(as_text=True))
    return totp, codes
