"""Signing a benchmark user up and in through the portal's real forms."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import requests

import harness

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(html: str) -> str:
    """The form's CSRF token from a rendered page."""
    match = CSRF_RE.search(html)
    if not match:
        raise RuntimeError("no csrf_token field on the page")
    return match.group(1)


def sign_up(portal: harness.Service, email: str, password: str) -> requests.Session:
    """Create a portal user through the sign-up form and open the confirmation link it was
    mailed; returns the session that link signed in.

    Without SMTP the portal writes its mail to its log, which is where the link is read from.
    """
    session = requests.Session()
    page = session.get(portal.url + "/signup", timeout=30)
    resp = session.post(portal.url + "/signup", data={"csrf_token": csrf_token(page.text), "email": email,
                                                      "password": password, "confirm": password}, timeout=30)
    if resp.status_code >= 400 or urlsplit(resp.url).path != "/signup/sent":
        raise RuntimeError(f"sign-up of {email} failed: HTTP {resp.status_code}")
    deadline = time.monotonic() + 10
    pattern = re.compile(r"mail to " + re.escape(email) + r" not sent\.[^\n]*\n(?:.*\n)*?.*?(/confirm/[A-Za-z0-9_.\-]+)")
    while not (match := pattern.search(portal.log_path.read_text(errors="replace"))):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no confirmation link for {email} in {portal.log_path}")
        time.sleep(0.1)
    confirmed = session.get(portal.url + match.group(1), timeout=30)
    if confirmed.status_code >= 400:
        raise RuntimeError(f"confirming {email} failed: HTTP {confirmed.status_code}")
    return session


def sign_in(portal: str, email: str, password: str) -> requests.Session:
    """A fresh signed-in session (after the user's account link changed)."""
    session = requests.Session()
    page = session.get(portal + "/login", timeout=30)
    resp = session.post(portal + "/login", data={"csrf_token": csrf_token(page.text), "email": email,
                                                 "password": password}, timeout=30)
    if resp.status_code >= 400 or "/login" in urlsplit(resp.url).path:
        raise RuntimeError(f"sign-in of {email} failed: HTTP {resp.status_code}")
    return session
