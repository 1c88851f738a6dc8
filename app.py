"""Run SAMALink locally: the gateway as a child process and the portal under waitress.

    python app.py            # portal on :8000, gateway on :8001 (internal API :8002), SQLite under instance/
    python app.py --demo     # the same, in demo mode (SAMALINK_DEMO=1): simulated answers, demo credit

Set GATEWAY_URL (the gateway's internal listener) to use a gateway that is already
running instead of starting one.
``flask --app app`` finds ``create_app`` here for the Flask CLI (``flask --app app db upgrade``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import requests
from dotenv import load_dotenv

from portal import create_app
from portal.config import Config, ConfigError
from samalink_common.config import DEMO_ENV

__all__ = ["create_app", "main"]

log = logging.getLogger("samalink")
GATEWAY_START_TIMEOUT = 30.0
# The gateway's own shutdown: requests in flight, then the final flush (each bounded).
GATEWAY_STOP_TIMEOUT = 45.0


def _fail(message: str) -> int:
    print(f"samalink: {message}", file=sys.stderr)
    return 2


def _gateway_env(config: Config) -> dict[str, str]:
    """What the gateway child needs: the shared token and its ports, plus the caller's settings."""
    env = dict(os.environ)
    env["INTERNAL_API_TOKEN"] = config.INTERNAL_API_TOKEN
    env["GATEWAY_PORT"] = str(config.GATEWAY_PORT)
    # The portal calls GATEWAY_URL, which defaults to this port.
    env["GATEWAY_INTERNAL_PORT"] = str(config.GATEWAY_INTERNAL_PORT)
    env["SAMALINK_INSTANCE_DIR"] = str(config.INSTANCE_DIR)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _database_place(url: str) -> str:
    """Where a database is, with any password left out."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot read is reported as unreadable
        return "(unreadable URL)"


def startup_report(config: Config, gateway_settings=None) -> list[str]:
    """One line each: demo mode, which providers have keys, Stripe, SMTP (and where mail goes), the databases."""
    lines = []
    demo = bool(config.DEMO)
    if demo:
        lines.append("Demo mode: every model answers with simulated text, each new account gets "
                     f"{config.DEMO_CREDIT_MICRO_P // 1_000_000:,} P of demo credit, the first user to sign up "
                     "is an operator. Nothing here is real money.")
    if gateway_settings is None:
        lines.append(f"Providers: decided by the gateway at {config.GATEWAY_URL} (GATEWAY_URL is set)")
    elif demo:
        lines.append("Providers: all served by the simulated provider (demo mode); no keys needed")
    else:
        from gateway.catalog import SIMULATED_API, load_catalog

        catalog = load_catalog(gateway_settings.providers_file)
        keyed = [name for name, p in catalog.providers.items()
                 if p.api == SIMULATED_API or gateway_settings.upstream_keys.get(p.api_key_env)]
        missing = [name for name in catalog.providers if name not in keyed]
        lines.append(f"Providers with keys: {', '.join(keyed) or 'none'}"
                     + (f"; without: {', '.join(missing)} (their models answer 503)" if missing else ""))
    lines.append("Stripe: configured" if config.STRIPE_SECRET_KEY
                 else "Stripe: not configured (STRIPE_SECRET_KEY unset): Billing says card top-ups are off")
    link_base = config.LINK_BASE_URL
    if config.SMTP_HOST:
        lines.append(f"SMTP: configured ({config.SMTP_HOST}:{config.SMTP_PORT})")
    elif demo:
        lines.append(f"SMTP: not configured: mail goes to the local mailbox {link_base}/dev/mailbox "
                     "and to the log (lines with [mail])")
    else:
        lines.append("SMTP: not configured (SMTP_HOST unset): mail goes to the log, in lines with [mail] "
                     "and each link alone on its line")
    gateway_db = _database_place(gateway_settings.database_url) if gateway_settings else "(the running gateway's)"
    lines.append(f"Databases: portal {_database_place(config.SQLALCHEMY_DATABASE_URI)}; gateway {gateway_db}")
    return lines


def _wait_for_gateway(url: str, child: subprocess.Popen | None, token: str) -> bool:
    """Poll the gateway's health endpoint (on its internal listener, ``url``) until it answers,
    the child dies, or time runs out."""
    deadline = time.monotonic() + GATEWAY_START_TIMEOUT
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            return False
        try:
            response = requests.get(f"{url}/internal/health", timeout=1,
                                    headers={"Authorization": f"Bearer {token}"})
            if response.status_code < 500:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def _terminal_sent_it_to_the_group() -> bool:
    """True when we are the foreground job of a terminal: its Ctrl-C reached our whole
    process group, the gateway child included."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


def _stop(child: subprocess.Popen | None, child_signalled: bool = False) -> None:
    """Stop the gateway child and wait for its final flush; kill it only if it hangs.

    ``child_signalled``: the child already got the terminal's SIGINT, so it is stopping
    and needs no second signal.
    """
    if child is None or child.poll() is not None:
        return
    if not child_signalled:
        child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=GATEWAY_STOP_TIMEOUT)
        return
    except subprocess.TimeoutExpired:
        pass
    if child_signalled:
        # Perhaps the SIGINT never reached it after all: ask once more, briefly.
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            pass
    print("samalink: the gateway did not stop in time; killing it", file=sys.stderr, flush=True)
    child.kill()
    child.wait()


_received: list[int] = []


def _interrupt(signum, frame) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Start both processes, print their URLs, stop both on Ctrl-C or SIGTERM."""
    load_dotenv(override=False)
    args = sys.argv[1:] if argv is None else argv
    unknown = [arg for arg in args if arg != "--demo"]
    if unknown:
        return _fail(f"unknown argument {unknown[0]!r} (the only option is --demo)")
    if "--demo" in args:
        # The gateway child inherits it: both processes run in demo mode.
        os.environ[DEMO_ENV] = "1"
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gateway_settings = None
    try:
        config = Config()
        if not os.environ.get("GATEWAY_URL"):
            from gateway.config import Settings

            gateway_settings = Settings.from_env(_gateway_env(config))
    except ConfigError as exc:
        return _fail(str(exc))
    for line in startup_report(config, gateway_settings):
        print(line, flush=True)

    host = os.environ.get("HOST") or "127.0.0.1"
    app = create_app(config)
    try:
        from flask_migrate import upgrade

        with app.app_context():
            upgrade()
    except Exception as exc:  # the database URL may be right but the server unreachable
        return _fail(f"DATABASE_URL: cannot migrate the portal database ({type(exc).__name__}: {exc})")

    child = None
    if not os.environ.get("GATEWAY_URL"):
        child = subprocess.Popen([sys.executable, "-m", "gateway"], env=_gateway_env(config))
    # SIGTERM ends the portal the same way Ctrl-C does, so both paths clean up.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        if not _wait_for_gateway(config.GATEWAY_URL, child, config.INTERNAL_API_TOKEN):
            if child is not None and child.poll() is not None:
                return _fail(f"the gateway exited with code {child.returncode} during start (see its message above)")
            print(f"samalink: warning: gateway at {config.GATEWAY_URL} is not answering; "
                  "pages will show 'usage service unavailable' until it does", file=sys.stderr)

        from waitress.server import create_server

        server = create_server(app, host=host, port=config.PORT, threads=int(os.environ.get("PORTAL_THREADS", "8")))
        print(f"SAMALink portal:  http://{host}:{server.effective_port}", flush=True)
        print(f"SAMALink gateway: {config.GATEWAY_PUBLIC_URL}  (Base URL for clients; internal API: {config.GATEWAY_URL})",
              flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        try:
            server.run()
        finally:
            server.close()
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
    finally:
        # Later signals must not cut the wait for the gateway's final flush short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        first = _received[0] if _received else None
        _stop(child, child_signalled=first == signal.SIGINT and _terminal_sent_it_to_the_group())
    return 0


if __name__ == "__main__":
    sys.exit(main())
