"""Run SAMALink locally: the gateway as a child process and the portal under waitress.

    python app.py            # portal on :8000, gateway on :8001 (internal API :8002), SQLite under instance/

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


def main() -> int:
    """Start both processes, print their URLs, stop both on Ctrl-C or SIGTERM."""
    load_dotenv(override=False)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = Config()
        if not os.environ.get("GATEWAY_URL"):
            from gateway.config import Settings

            Settings.from_env(_gateway_env(config))
    except ConfigError as exc:
        return _fail(str(exc))

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
