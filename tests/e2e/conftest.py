"""Browser tests: the real product (``python app.py``) driven by Debian's Chromium.

One product process serves the whole e2e session: a temporary instance directory, free
ports, the fake upstream as every provider, and a fake Stripe whose hosted Checkout page
can be paid in the browser. With ``DATABASE_URL`` / ``GATEWAY_DATABASE_URL`` set (the
PostgreSQL run), dedicated ``<name>_e2e`` databases are created on the same server,
dropped first, so nothing is shared with the other test folders.

Chromium must be Debian's (``/usr/bin/chromium``); Playwright never downloads one. In CI
(``CI=true``) a missing Chromium fails these tests; elsewhere they are skipped.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import requests

from fixtures.gateway import free_port
from fixtures.stripe import FakeStripe
from fixtures.upstream import UNCONFIGURED_KEY_ENV, UPSTREAM_KEYS

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
START_TIMEOUT = 90.0
# The environment that must not leak from the developer's shell into the product under test.
_OWN_SETTINGS = ("DATABASE_URL", "GATEWAY_DATABASE_URL", "GATEWAY_URL", "GATEWAY_PUBLIC_URL", "PUBLIC_URL",
                 "INTERNAL_API_TOKEN", "SECRET_KEY", "PORT", "GATEWAY_PORT", "GATEWAY_HOST", "HOST",
                 "GATEWAY_INTERNAL_PORT", "GATEWAY_INTERNAL_HOST",
                 "PROVIDERS_FILE", "SAMALINK_INSTANCE_DIR", "SMTP_HOST", "GATEWAY_WORKERS")


# -- the fake Stripe, with a Checkout page a person can pay on ---------------------------------


class CheckoutFakeStripe(FakeStripe):
    """``FakeStripe`` whose hosted Checkout page has a working "Pay" button.

    Paying completes the session the way a delayed payment method does (complete, not yet
    paid) and sends the browser to the session's ``success_url``; the test then settles
    it with ``confirm_payment``, which is when Stripe would send its webhook. So the
    success page is seen waiting first and has to pick the credit up by itself.
    """

    def __init__(self) -> None:
        super().__init__()
        self._server.RequestHandlerClass = _checkout_handler(self._server.RequestHandlerClass, self)

    def confirm_payment(self, session_id: str, portal_url: str) -> requests.Response:
        """The bank confirmed: mark the session paid and deliver the signed webhook."""
        session = self.pay(session_id)
        body, headers = self.signed(self.event("checkout.session.async_payment_succeeded", session))
        return requests.post(f"{portal_url}/stripe/webhook", data=body, headers=headers, timeout=30)


def _checkout_handler(base: type, fake: CheckoutFakeStripe) -> type:
    class CheckoutHandler(base):
        def _checkout_page(self, session_id: str) -> None:
            session = fake.sessions.get(session_id)
            if session is None:
                self._html(404, "<p>No such session</p>")
                return
            dollars = f"${session['amount_total'] / 100:,.2f}"
            self._html(200, (
                f"<h1>Fake Stripe Checkout</h1><p id=amount>{session['amount_total']} {session['currency']}</p>"
                f"<form method=post action='/pay/{session_id}'><button id=pay type=submit>Pay {dollars}</button></form>"
                f"<p><a id=cancel href='{session['cancel_url']}'>Cancel</a></p>"))

        def _html(self, status: int, body: str) -> None:
            data = ("<!doctype html><html><head><meta charset=utf-8><title>Checkout</title>"
                    "<link rel=icon href='data:,'></head><body>" + body + "</body></html>").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            match = re.fullmatch(r"/pay/([^/?]+)", urlsplit(self.path).path)
            if not match:
                super().do_POST()
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            session_id = match.group(1)
            if session_id not in fake.sessions:
                self._html(404, "<p>No such session</p>")
                return
            session = fake.complete_pending(session_id)
            self.send_response(303)
            self.send_header("Location", session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id))
            self.send_header("Content-Length", "0")
            self.end_headers()

    return CheckoutHandler


# -- databases for the PostgreSQL run --------------------------------------------------------------


def _fresh_postgres_database(url: str, name: str) -> str:
    """Drop and create database ``name`` on the server of ``url``; the URL of the new database."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return parsed.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


def _drop_postgres_database(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


@pytest.fixture(scope="session")
def e2e_database_urls() -> Iterator[dict[str, str]]:
    """``DATABASE_URL`` / ``GATEWAY_DATABASE_URL`` for the product: fresh ``*_e2e`` databases, or none (SQLite)."""
    from sqlalchemy.engine import make_url

    urls: dict[str, str] = {}
    for variable in ("DATABASE_URL", "GATEWAY_DATABASE_URL"):
        given = os.environ.get(variable)
        # A SQLite URL would be a file shared with other tests: the instance directory's own is used.
        if not given or not given.startswith("postgres"):
            continue
        name = f"{make_url(given).database}_e2e"
        if name in (make_url(u).database for u in urls.values()):
            name = f"{name}_{variable.split('_')[0].lower()}"
        urls[variable] = _fresh_postgres_database(given, name)
    yield urls
    for url in urls.values():
        _drop_postgres_database(url)


# -- the product ------------------------------------------------------------------------------------


@dataclass
class Product:
    """A running ``python app.py`` and what the tests need to reach it."""

    portal_url: str
    gateway_url: str  # the public listener (/v1)
    internal_url: str  # the gateway's internal API
    token: str
    stripe: CheckoutFakeStripe
    process: subprocess.Popen
    log_path: Path
    session: requests.Session = field(default_factory=requests.Session)

    def internal(self, method: str, path: str, **kw: Any) -> requests.Response:
        """Call the gateway's ``/internal{path}`` with the shared token (test setup and checks)."""
        kw.setdefault("timeout", 30)
        return self.session.request(method, f"{self.internal_url}/internal{path}",
                                    headers={"Authorization": f"Bearer {self.token}"}, **kw)

    def log_text(self) -> str:
        """What the product printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _product_env(instance: Path, port: int, gateway_port: int, internal_port: int, token: str, providers_file: Path,
                 stripe: FakeStripe, database_urls: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OWN_SETTINGS}
    env.update(UPSTREAM_KEYS)
    env.update({
        UNCONFIGURED_KEY_ENV: "",
        "SAMALINK_INSTANCE_DIR": str(instance),
        "PORT": str(port),
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_INTERNAL_PORT": str(internal_port),
        "INTERNAL_API_TOKEN": token,
        "SECRET_KEY": "e2e-secret-" + secrets.token_hex(16),
        "PROVIDERS_FILE": str(providers_file),
        "STRIPE_SECRET_KEY": stripe.secret_key,
        "STRIPE_WEBHOOK_SECRET": stripe.webhook_secret,
        "STRIPE_API_BASE": stripe.base_url,
        "GATEWAY_FLUSH_INTERVAL": "0.05",
        "GATEWAY_KEY_REFRESH_INTERVAL": "0.2",
        "UPSTREAM_TIMEOUT": "10",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "PYTHONUNBUFFERED": "1",
    })
    env.update(database_urls)
    return env


def _wait_until_serving(product: Product) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if product.process.poll() is not None:
            raise RuntimeError(f"app.py exited with {product.process.returncode}:\n{product.log_text()[-4000:]}")
        try:
            portal = requests.get(f"{product.portal_url}/login", timeout=2)
            if portal.status_code == 200 and product.internal("GET", "/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"app.py did not start serving:\n{product.log_text()[-4000:]}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def product(chromium_path, tmp_path_factory, providers_file, e2e_database_urls) -> Iterator[Product]:
    """``python app.py`` for the whole e2e session, wired to the fake upstream and fake Stripe.

    Asks for Chromium first, so a machine without it skips (or fails) before anything starts.
    """
    stripe = CheckoutFakeStripe().start()
    instance = tmp_path_factory.mktemp("e2e-instance")
    port, gateway_port, internal_port = free_port(), free_port(), free_port()
    token = "e2e-internal-" + secrets.token_hex(16)
    env = _product_env(instance, port, gateway_port, internal_port, token, providers_file, stripe, e2e_database_urls)
    log_path = instance / "app.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=instance, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    handle = Product(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{gateway_port}",
                     f"http://127.0.0.1:{internal_port}", token, stripe, process, log_path)
    try:
        _wait_until_serving(handle)
        yield handle
    finally:
        _stop(process)
        handle.session.close()
        stripe.stop()


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    """Where page screenshots go (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
