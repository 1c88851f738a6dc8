"""``python app.py``: both processes start on SQLite under instance/, and stop together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from fixtures.gateway import free_port

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "GATEWAY_DATABASE_URL", "GATEWAY_URL", "GATEWAY_PUBLIC_URL",
                        "INTERNAL_API_TOKEN", "SECRET_KEY", "PORT", "GATEWAY_PORT", "GATEWAY_INTERNAL_PORT",
                        "GATEWAY_INTERNAL_HOST", "PROVIDERS_FILE")}
    env.update(SAMALINK_INSTANCE_DIR=str(tmp_path / "instance"), PYTHONPATH=str(REPO), **extra)
    return env


def test_app_starts_both_and_stops_both_on_sigterm(tmp_path):
    port, gateway_port, internal_port = free_port(), free_port(), free_port()
    env = _env(tmp_path, PORT=str(port), GATEWAY_PORT=str(gateway_port), GATEWAY_INTERNAL_PORT=str(internal_port))
    process = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("SAMALink gateway:"):
                break
        output = "".join(lines)
        assert f"SAMALink portal:  http://127.0.0.1:{port}" in output, output
        assert f"SAMALink gateway: http://127.0.0.1:{gateway_port}/v1" in output, output
        assert f"internal API: http://127.0.0.1:{internal_port}" in output, output
        page = requests.get(f"http://127.0.0.1:{port}/pricing", timeout=10)
        assert page.status_code == 200 and "deepseek-v3.2" in page.text
        assert "usage service unavailable" not in page.text.lower()
        signup = requests.get(f"http://127.0.0.1:{port}/signup", timeout=10)
        assert 'name="csrf_token"' in signup.text
        for name in ("portal.db", "gateway.db", "secret_key", "internal_api_token"):
            assert (tmp_path / "instance" / name).exists(), name
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0
    refused = False
    try:
        requests.get(f"http://127.0.0.1:{internal_port}/internal/health", timeout=2)
    except requests.ConnectionError:
        refused = True
    assert refused, "the gateway child is still running"


def test_bad_setting_fails_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "app.py")], cwd=tmp_path, capture_output=True, text=True,
                            env=_env(tmp_path, PORT="eighty"), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["samalink: PORT must be an integer, got 'eighty'"]


def test_bad_gateway_setting_is_caught_before_start(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "app.py")], cwd=tmp_path, capture_output=True, text=True,
                            env=_env(tmp_path, PROVIDERS_FILE=str(tmp_path / "missing.toml")), timeout=60)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("samalink: PROVIDERS_FILE")


CHILD = """
import pathlib, signal, sys, time
mark = pathlib.Path(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: mark.write_text("term") if sys.argv[2] == "ignore" else sys.exit(0))
pathlib.Path(sys.argv[1] + ".ready").touch()
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    time.sleep(0.05)
"""


def _child(mark: Path, mode: str, seconds: str) -> subprocess.Popen:
    """Start CHILD and wait until its SIGTERM handler is in place (a loaded machine starts Python slowly)."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(mark), mode, seconds])
    ready = Path(f"{mark}.ready")
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert child.poll() is None and time.monotonic() < deadline, "the child did not start"
        time.sleep(0.02)
    return child


def test_a_gateway_child_stopping_after_ctrl_c_gets_no_second_signal(tmp_path):
    import app as launcher

    mark = tmp_path / "mark"
    # Already stopping (as after the terminal's SIGINT): it ends by itself within a second.
    child = _child(mark, "ignore", "1")
    launcher._stop(child, child_signalled=True)
    assert child.returncode == 0 and not mark.exists()


def test_a_gateway_child_that_does_not_stop_is_killed_after_the_timeout(tmp_path, monkeypatch):
    import app as launcher

    monkeypatch.setattr(launcher, "GATEWAY_STOP_TIMEOUT", 1.0)
    mark = tmp_path / "mark"
    child = _child(mark, "ignore", "60")
    started = time.monotonic()
    launcher._stop(child)
    assert child.returncode == -signal.SIGKILL and mark.read_text() == "term"
    assert time.monotonic() - started < 10


def _report(tmp_path: Path, **env: str) -> list[str]:
    import app as launcher
    from gateway.config import Settings
    from portal.config import Config

    base = {"SECRET_KEY": "s" * 32, "INTERNAL_API_TOKEN": "t" * 32, **env}
    config = Config(env=base, instance_dir=tmp_path)
    settings = Settings.from_env({**base, "GATEWAY_DATABASE_URL": base.get("GATEWAY_DATABASE_URL", "sqlite:///g.db")})
    return launcher.startup_report(config, settings)


def test_the_start_says_which_providers_have_keys_and_what_is_configured(tmp_path):
    lines = _report(tmp_path, DEEPSEEK_API_KEY="sk-secret-deepseek", ANTHROPIC_API_KEY="sk-secret-anthropic",
                    DATABASE_URL="postgresql://ops:hunter2@db.example/portal")
    providers = next(line for line in lines if line.startswith("Providers with keys:"))
    assert providers.startswith("Providers with keys: deepseek, anthropic; without: qwen")
    assert "Stripe: not configured" in lines[1]
    smtp = next(line for line in lines if line.startswith("SMTP:"))
    assert "not configured" in smtp and "mail goes to the log" in smtp and "[mail]" in smtp
    databases = next(line for line in lines if line.startswith("Databases:"))
    assert "db.example/portal" in databases and "hunter2" not in databases and "g.db" in databases
    assert not any("sk-secret" in line for line in lines)
    assert len(lines) == 4


def test_the_start_in_demo_mode_points_at_the_mailbox(tmp_path):
    lines = _report(tmp_path, SAMALINK_DEMO="1", STRIPE_SECRET_KEY="sk_test_x", SMTP_HOST="",
                    PORT="8123")
    assert lines[0].startswith("Demo mode:") and "1,000 P of demo credit" in lines[0]
    assert "simulated provider" in lines[1]
    assert lines[2] == "Stripe: configured"
    assert "http://127.0.0.1:8123/dev/mailbox" in lines[3]


def test_unknown_arguments_are_refused_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "app.py"), "--dmeo"], cwd=tmp_path, capture_output=True,
                            text=True, env=_env(tmp_path), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["samalink: unknown argument '--dmeo' (the only option is --demo)"]


def test_a_logged_mail_has_a_prefix_and_its_link_alone_on_a_line(caplog):
    import logging

    from portal.mail import send_mail

    link = "http://127.0.0.1:8000/confirm/abc.def"
    with caplog.at_level(logging.WARNING, logger="portal.mail"):
        assert send_mail("who@example.com", "Confirm", f"Open this:\n{link}\n\nThanks.", config={}) is False
    [record] = caplog.records
    text = record.getMessage()
    assert text.startswith("[mail] SMTP is not configured; mail to who@example.com not sent.")
    assert link in text.splitlines()
