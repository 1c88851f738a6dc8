"""Portal settings, read from the environment once at start.

A missing or malformed setting raises ``ConfigError`` with one line naming it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from samalink_common.config import (
    ConfigError, database_url, demo_mode, instance_secret, instance_token, trusted_proxy_hops,
)

INSTANCE_DIR = Path(os.environ.get("SAMALINK_INSTANCE_DIR", Path.cwd() / "instance"))

__all__ = ["Config", "TestingConfig", "ConfigError", "INSTANCE_DIR"]


def instance_secret_key(instance_dir: Path) -> str:
    """Return the session signing key kept under instance/, creating it on first use."""
    return instance_secret(instance_dir, "secret_key", 48)


def _http_url(env: dict, name: str, default: str) -> str:
    url = (env.get(name) or default).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {url!r}")
    return url


def _port(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name} must be between 0 and 65535, got {value}")
    return value


def _positive(env: dict, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _host_list(env: dict, name: str) -> list[str]:
    hosts = [part.strip().lower() for part in (env.get(name) or "").split(",") if part.strip()]
    for host in hosts:
        if any(char in host for char in "/@ ") or host.startswith(("http:", "https:")):
            raise ConfigError(f"{name} must be comma-separated host names (no scheme, path or port), got {host!r}")
    return hosts


def _listen_url(host: str, port: int) -> str:
    """The address the portal itself listens on, as a URL a browser on this machine can open."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _flag(env: dict, name: str) -> bool:
    return (env.get(name) or "").strip().lower() in ("1", "true", "yes", "on")


class Config:
    """Everything the portal reads from its environment (``os.environ`` by default)."""

    TESTING = False
    WTF_CSRF_ENABLED = True
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    MAX_CONTENT_LENGTH = 1024 * 1024
    RESET_TOKEN_MAX_AGE = 3600

    def __init__(self, env: dict | None = None, instance_dir: Path | None = None) -> None:
        env = dict(os.environ) if env is None else env
        instance_dir = instance_dir or INSTANCE_DIR
        self.INSTANCE_DIR = str(instance_dir)
        self.SECRET_KEY = env.get("SECRET_KEY") or instance_secret_key(instance_dir)
        if len(self.SECRET_KEY) < 16:
            raise ConfigError("SECRET_KEY must be at least 16 characters")
        self.PORT = _port(env, "PORT", 8000)
        self.GATEWAY_PORT = _port(env, "GATEWAY_PORT", 8001)
        # GATEWAY_URL is the gateway's internal listener; customers use its public port.
        self.GATEWAY_INTERNAL_PORT = _port(env, "GATEWAY_INTERNAL_PORT", 8002)
        self.GATEWAY_URL = _http_url(env, "GATEWAY_URL", f"http://127.0.0.1:{self.GATEWAY_INTERNAL_PORT}")
        self.GATEWAY_PUBLIC_URL = _http_url(env, "GATEWAY_PUBLIC_URL", f"http://127.0.0.1:{self.GATEWAY_PORT}/v1")
        self.INTERNAL_API_TOKEN = env.get("INTERNAL_API_TOKEN") or instance_token(instance_dir)
        if len(self.INTERNAL_API_TOKEN) < 16:
            raise ConfigError("INTERNAL_API_TOKEN must be at least 16 characters")
        self.SQLALCHEMY_DATABASE_URI = database_url(
            env, "DATABASE_URL", f"sqlite:///{Path(instance_dir).resolve() / 'portal.db'}"
        )
        # Demo mode: simulated answers, demo credit, the first user an operator, a local mailbox.
        self.DEMO = demo_mode(env)
        self.DEMO_CREDIT_MICRO_P = int(_positive(env, "DEMO_CREDIT_P", 1000) * 1_000_000)
        self.SMTP_HOST = env.get("SMTP_HOST") or ""
        self.SMTP_PORT = _port(env, "SMTP_PORT", 587)
        self.SMTP_USER = env.get("SMTP_USER") or ""
        self.SMTP_PASSWORD = env.get("SMTP_PASSWORD") or ""
        self.SMTP_FROM = env.get("SMTP_FROM") or "SAMALink <no-reply@samalink.ai>"
        self.SUPPORT_EMAIL = env.get("SUPPORT_EMAIL") or "help@samalink.ai"
        # Card top-ups: without a secret key Billing says payments are not configured.
        self.STRIPE_SECRET_KEY = env.get("STRIPE_SECRET_KEY") or ""
        self.STRIPE_WEBHOOK_SECRET = env.get("STRIPE_WEBHOOK_SECRET") or ""
        self.STRIPE_API_BASE = _http_url(env, "STRIPE_API_BASE", "") if env.get("STRIPE_API_BASE") else ""
        # How often the event worker asks the gateway for balance alerts; "off" stops it
        # in this process (another process on the same database then handles them).
        self.EVENT_POLL_SECONDS = 0.0 if (env.get("EVENT_POLL_SECONDS") or "").strip() == "off" \
            else _positive(env, "EVENT_POLL_SECONDS", 5.0)
        # Where Stripe sends the customer back to; the request's own host when unset.
        self.PUBLIC_URL = _http_url(env, "PUBLIC_URL", "") if env.get("PUBLIC_URL") else ""
        if self.SMTP_HOST and not self.PUBLIC_URL:
            raise ConfigError("PUBLIC_URL must be set when SMTP_HOST is set: e-mailed links are built from it")
        self.HOST = (env.get("HOST") or "127.0.0.1").strip()
        # E-mailed links never come from the request's Host header (password-reset poisoning).
        self.LINK_BASE_URL = self.PUBLIC_URL or _listen_url(self.HOST, self.PORT)
        # Requests naming any other host are refused with 400 (Flask checks TRUSTED_HOSTS).
        trusted = ["localhost", "127.0.0.1", urlsplit(self.LINK_BASE_URL).hostname or ""]
        if self.HOST not in ("", "0.0.0.0", "::"):
            trusted.append(self.HOST.lower())
        self.TRUSTED_HOSTS = list(dict.fromkeys(host for host in trusted + _host_list(env, "TRUSTED_HOSTS") if host))
        # Cookies only travel over HTTPS when the portal is served behind it.
        self.SESSION_COOKIE_SECURE = _flag(env, "SESSION_COOKIE_SECURE") or _flag(env, "PORTAL_HTTPS")
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.PREFERRED_URL_SCHEME = "https" if self.SESSION_COOKIE_SECURE else "http"
        self.TRUST_PROXY = trusted_proxy_hops(env)
        self.SESSION_IDLE_MINUTES = _positive(env, "SESSION_IDLE_MINUTES", 30)
        self.SESSION_MAX_HOURS = _positive(env, "SESSION_MAX_HOURS", 12)
        if self.SQLALCHEMY_DATABASE_URI.startswith("sqlite"):
            self.SQLALCHEMY_ENGINE_OPTIONS = {"connect_args": {"timeout": 15}}
        else:
            self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}


class TestingConfig(Config):
    """Settings for the test suite: CSRF off by default (dedicated tests turn it on)."""

    TESTING = True
    WTF_CSRF_ENABLED = False

    def __init__(self, env: dict | None = None, instance_dir: Path | None = None) -> None:
        env = dict(os.environ) if env is None else dict(env)
        # Tests freeze and move the clock by hours or days; session time-outs have their own tests.
        env.setdefault("SESSION_IDLE_MINUTES", str(10 * 365 * 24 * 60))
        env.setdefault("SESSION_MAX_HOURS", str(10 * 365 * 24))
        # Tests run the event worker's passes themselves (portal.events.process_events).
        env.setdefault("EVENT_POLL_SECONDS", "off")
        super().__init__(env, instance_dir)
