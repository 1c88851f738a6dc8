"""Gateway settings, read once from the environment.

Every setting has a safe default for a local run; a malformed value raises
``ConfigError`` whose message is one line naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import load_dotenv

from samalink_common.config import ConfigError, database_url, demo_mode, instance_token, trusted_proxy_hops

INSTANCE_DIR = Path(os.environ.get("SAMALINK_INSTANCE_DIR", Path.cwd() / "instance"))
DEFAULT_PROVIDERS_FILE = Path(__file__).with_name("providers.toml")


def _int(env: dict, name: str, default: int, low: int = 0, high: int = 2**31) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: dict, name: str, default: float, low: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= low:
        raise ConfigError(f"{name} must be greater than {low}, got {value}")
    return value


def _secrets_key(env: dict) -> str | None:
    raw = (env.get("SECRETS_KEY") or "").strip()
    if not raw:
        return None
    from cryptography.fernet import Fernet

    try:
        Fernet(raw.encode())
    except (ValueError, TypeError):
        raise ConfigError("SECRETS_KEY must be a Fernet key (32 bytes, URL-safe base64): "
                          "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'") from None
    return raw


def _log_format(env: dict) -> str:
    raw = (env.get("LOG_FORMAT") or "text").strip().lower()
    if raw not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT must be text or json, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    """Everything the gateway reads from its environment."""

    host: str = "127.0.0.1"
    port: int = 8001
    # The internal and admin APIs' own listener: never the public /v1 port.
    internal_host: str = "127.0.0.1"
    internal_port: int = 8002
    database_url: str = ""
    internal_api_token: str = ""
    providers_file: Path = DEFAULT_PROVIDERS_FILE
    upstream_connect_timeout: float = 10.0
    upstream_timeout: float = 300.0
    # How long a disconnected client's stream keeps being read for its usage.
    drain_timeout: float = 30.0
    # Open upstream connections at most (0: no cap, so every client's stream gets its own).
    upstream_connections: int = 0
    max_body_bytes: int = 4 * 1024 * 1024
    flush_interval: float = 0.2
    # Health answers 503 when flushes have kept failing for longer than this.
    flush_alert_seconds: float = 30.0
    # Settled requests waiting to be written above which new requests wait (and are
    # turned away with 503 after a while): the memory a saturated process holds stays bounded.
    writer_backlog: int = 5_000
    # The batch writer commits in a child process (off the event loop's interpreter lock);
    # False, or a SQLite database in memory: on a database thread of the serving process.
    writer_process: bool = True
    key_refresh_interval: float = 0.5
    workers: int = 1
    # A request whose limits cannot cover its worst case is served with a lower output
    # bound, but never one below this (a smaller max_tokens of the client's own counts).
    min_output_tokens: int = 1024
    # Proxies in front of the public listener whose X-Forwarded-For entry is believed
    # (TRUST_PROXY, shared with the portal); 0: the socket peer is the client.
    trust_proxy: int = 0
    upstream_keys: dict[str, str] = field(default_factory=dict)
    # Demo mode: every catalogue provider is served by the simulated provider.
    demo: bool = False
    # Card top-ups are on (the portal has a Stripe key): a 402 then points to Billing.
    top_ups: bool = False
    # How fast simulated streams arrive (0 tokens per second: at once).
    simulated_first_token_seconds: float = 0.0
    simulated_tokens_per_second: float = 0.0
    # A channel failing this many times in a row is skipped for breaker_cooldown seconds;
    # every process learns of it within about two channel_poll_interval.
    breaker_failures: int = 3
    breaker_cooldown: float = 30.0
    channel_poll_interval: float = 1.0
    log_format: str = "text"  # or "json": one object per line
    # Encrypts provider keys entered in the console; None switches console key entry off.
    secrets_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        """Build settings from ``env`` (default: ``os.environ`` plus a ``.env`` file)."""
        if env is None:
            load_dotenv(override=False)
            env = dict(os.environ)
        token = env.get("INTERNAL_API_TOKEN") or instance_token(INSTANCE_DIR)
        if len(token) < 16:
            raise ConfigError("INTERNAL_API_TOKEN must be at least 16 characters")
        providers_file = Path(env.get("PROVIDERS_FILE") or DEFAULT_PROVIDERS_FILE)
        if not providers_file.is_file():
            raise ConfigError(f"PROVIDERS_FILE points at {providers_file}, which is not a file")
        default_db = f"sqlite:///{INSTANCE_DIR / 'gateway.db'}"
        port = _int(env, "GATEWAY_PORT", 8001, 0, 65535)
        # A real port: the listener is told apart from the public one by its number.
        internal_port = _int(env, "GATEWAY_INTERNAL_PORT", 8002, 1, 65535)
        if internal_port == port:
            raise ConfigError(f"GATEWAY_INTERNAL_PORT must differ from GATEWAY_PORT (both {port})")
        return cls(
            host=env.get("GATEWAY_HOST") or "127.0.0.1",
            port=port,
            internal_host=env.get("GATEWAY_INTERNAL_HOST") or "127.0.0.1",
            internal_port=internal_port,
            database_url=database_url(env, "GATEWAY_DATABASE_URL", default_db),
            internal_api_token=token,
            providers_file=providers_file,
            upstream_connect_timeout=_float(env, "UPSTREAM_CONNECT_TIMEOUT", 10.0),
            upstream_timeout=_float(env, "UPSTREAM_TIMEOUT", 300.0),
            drain_timeout=_float(env, "STREAM_DRAIN_TIMEOUT", 30.0),
            upstream_connections=_int(env, "UPSTREAM_CONNECTIONS", 0, 0, 1_000_000),
            max_body_bytes=_int(env, "GATEWAY_MAX_BODY_BYTES", 4 * 1024 * 1024, 1024),
            flush_interval=_float(env, "GATEWAY_FLUSH_INTERVAL", 0.2),
            flush_alert_seconds=_float(env, "GATEWAY_FLUSH_ALERT_SECONDS", 30.0),
            writer_backlog=_int(env, "GATEWAY_WRITER_BACKLOG", 5_000, 1, 10_000_000),
            writer_process=_int(env, "GATEWAY_WRITER_PROCESS", 1, 0, 1) == 1,
            key_refresh_interval=_float(env, "GATEWAY_KEY_REFRESH_INTERVAL", 0.5),
            workers=_int(env, "GATEWAY_WORKERS", 1, 1, 64),
            min_output_tokens=_int(env, "GATEWAY_MIN_OUTPUT_TOKENS", 1024, 1, 1_000_000),
            log_format=_log_format(env),
            secrets_key=_secrets_key(env),
            breaker_failures=_int(env, "GATEWAY_BREAKER_FAILURES", 3, 1, 1000),
            breaker_cooldown=_float(env, "GATEWAY_BREAKER_COOLDOWN", 30.0),
            channel_poll_interval=_float(env, "GATEWAY_CHANNEL_POLL_INTERVAL", 1.0),
            trust_proxy=trusted_proxy_hops(env),
            upstream_keys={k: v for k, v in env.items() if k.endswith("_API_KEY") and v},
            demo=demo_mode(env),
            top_ups=bool(env.get("STRIPE_SECRET_KEY")),
            simulated_first_token_seconds=_int(env, "SIMULATED_FIRST_TOKEN_MS", 400, 0, 60_000) / 1000,
            simulated_tokens_per_second=_int(env, "SIMULATED_TOKENS_PER_SECOND", 60, 0, 1_000_000),
        )
