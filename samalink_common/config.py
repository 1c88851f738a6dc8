"""Settings helpers both processes use: the error they raise, the shared token file,
and the database-URL rule."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["ConfigError", "database_url", "demo_mode", "instance_secret", "instance_token", "trusted_proxy_hops"]

DEMO_ENV = "SAMALINK_DEMO"


def demo_mode(env: dict) -> bool:
    """True when ``SAMALINK_DEMO`` asks for demo mode (simulated answers, demo credit, local mailbox)."""
    return (env.get(DEMO_ENV) or "").strip().lower() in ("1", "true", "yes", "on")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


def instance_secret(instance_dir: Path, name: str, nbytes: int) -> str:
    """Return the secret kept in ``instance_dir/name``, creating it on first use.

    The file is created exclusively with mode 0600, so two processes started together
    never write two different secrets and no other user can read it.
    """
    instance_dir.mkdir(parents=True, exist_ok=True)
    path = instance_dir / name
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # the other process created it between our check and our open
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(nbytes))
    return path.read_text().strip()


def instance_token(instance_dir: Path) -> str:
    """Return the internal API token stored under instance/, creating it on first use.

    Only for local runs where ``INTERNAL_API_TOKEN`` is unset: portal and gateway
    started from the same directory then share the same secret.
    """
    return instance_secret(instance_dir, "internal_api_token", 32)


def database_url(env: dict, name: str, default: str) -> str:
    """The SQLAlchemy URL in ``env[name]`` (or ``default``), with ``postgres://`` and
    ``postgresql://`` turned into the psycopg 3 driver's spelling.

    Raises ``ConfigError`` for anything but SQLite or PostgreSQL.
    """
    url = env.get(name) or default
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not (url.startswith("sqlite") or url.startswith("postgresql")):
        raise ConfigError(f"{name} must be a sqlite:// or postgresql+psycopg:// URL")
    return url


def trusted_proxy_hops(env: dict) -> int:
    """``TRUST_PROXY``: how many proxies in front of the process add ``X-Forwarded-For``
    (default 0, trusting none). ``true``/``yes``/``on`` mean one; raises ``ConfigError``
    for anything else that is not a whole number from 0 to 10."""
    raw = (env.get("TRUST_PROXY") or "").strip().lower()
    if raw in ("", "false", "no", "off"):
        return 0
    if raw in ("true", "yes", "on"):
        return 1
    if not raw.isdigit() or int(raw) > 10:
        raise ConfigError(f"TRUST_PROXY must be the number of trusted proxy hops (0 to 10), got {raw[:20]!r}")
    return int(raw)
