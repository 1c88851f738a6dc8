"""Running the real agent CLIs against a gateway, and what their runs cost.

Each run gets a throwaway HOME and work directory, so nothing of the machine's own
configuration (or a real key) takes part, and the CLIs' own files vanish with the test.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from agent_upstream import AgentUpstream, Seen, expected_usage

from gateway.accounting.pricing import cost_micro_p
from gateway.catalog import Catalog, load_catalog
from portal.docs.agent_setups import CODEX_KEY_ENV, codex_config

# Only what a CLI needs from the outer environment; nothing that could point it elsewhere.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TERM", "TMPDIR")
TESTS = Path(__file__).resolve().parents[1]
NODE_BIN = TESTS / "node_modules" / ".bin"
SHIPPED_PROVIDERS = TESTS.parent / "gateway" / "providers.toml"
ONE_P = 1_000_000
# One CLI run: start-up, a tool round trip and the side requests take a few seconds.
CLI_TIMEOUT_SECONDS = 60


def in_ci() -> bool:
    """Whether this is a CI run, where a missing CLI is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@dataclass(frozen=True)
class Cli:
    """An installed agent CLI: its executable and the version it reports."""

    path: Path
    version: str


def installed_cli(name: str) -> Cli:
    """The CLI ``name`` from tests/node_modules; missing skips the test, or fails it in CI."""
    path = NODE_BIN / name
    problem = None
    if not path.exists():
        problem = f"{path} is missing"
    else:
        try:
            run = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30,
                                 stdin=subprocess.DEVNULL)
            if run.returncode != 0:
                problem = f"`{name} --version` exited with {run.returncode}: {run.stderr.strip()[-300:]}"
        except (OSError, subprocess.TimeoutExpired) as error:
            problem = f"`{name} --version` failed: {error}"
    if problem is None:
        return Cli(path, run.stdout.strip())
    reason = f"{problem}: install the agent CLIs with `npm ci --prefix tests` (.ci/run does)"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@dataclass
class Run:
    """One CLI run: what it printed and which requests reached the fake model meanwhile."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    seen: list[Seen]

    def describe(self) -> str:
        """Enough of the run to see why an assertion failed."""
        return (f"exit {self.returncode} after {self.seconds:.1f}s\n--- stdout\n{self.stdout[-2000:]}\n"
                f"--- stderr\n{self.stderr[-3000:]}\n--- upstream saw: {[(s.path, s.action) for s in self.seen]}")


def nonce_prompt() -> tuple[str, str]:
    """A prompt asking for the scripted check, and the tool output that proves the command ran."""
    nonce = secrets.token_hex(5)
    return (f"Run the shell check for samalink-nonce-{nonce} and tell me what it printed.",
            f"samalink-tool-{nonce}")


def _base_env(home: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"))
    return env


def _run(argv: list[str], env: dict[str, str], work: Path, upstream: AgentUpstream) -> Run:
    position = upstream.mark()
    started = time.monotonic()
    try:
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=CLI_TIMEOUT_SECONDS)
        returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as expired:
        returncode = -1
        stdout = (expired.stdout or b"").decode(errors="replace") if isinstance(expired.stdout, bytes) else expired.stdout or ""
        stderr = f"timed out after {CLI_TIMEOUT_SECONDS}s\n" + (
            (expired.stderr or b"").decode(errors="replace") if isinstance(expired.stderr, bytes) else expired.stderr or "")
    return Run(returncode, stdout, stderr, time.monotonic() - started, upstream.since(position))


def run_claude(cli: Cli, upstream: AgentUpstream, setup: dict[str, str], model: str, prompt: str, tmp: Path) -> Run:
    """``claude -p PROMPT --model MODEL`` in the environment ``setup`` (a customer's set-up)."""
    home, work = tmp / "home", tmp / "work"
    home.mkdir()
    work.mkdir()
    env = _base_env(home)
    env.update(setup)
    env.update(
        DISABLE_TELEMETRY="1", DISABLE_AUTOUPDATER="1", DISABLE_ERROR_REPORTING="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        # Claude Code retries a failed call for minutes; a failure should show at once.
        CLAUDE_CODE_MAX_RETRIES="1", API_TIMEOUT_MS=str(CLI_TIMEOUT_SECONDS * 1000),
    )
    argv = [str(cli.path), "-p", prompt, "--model", model, "--allowedTools", "Bash"]
    return _run(argv, env, work, upstream)


def run_codex(cli: Cli, upstream: AgentUpstream, gateway_url: str, key: str, model: str, prompt: str,
              tmp: Path) -> Run:
    """``codex exec PROMPT`` with the Quick Start's ``config.toml`` for the gateway and ``model``."""
    home, work = tmp / "home", tmp / "work"
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True)
    work.mkdir()
    (codex_home / "config.toml").write_text(codex_config(f"{gateway_url}/v1", model).code)
    env = _base_env(home)
    env.update({"CODEX_HOME": str(codex_home), CODEX_KEY_ENV: key})
    # Codex's own sandbox needs kernel features a test container may lack; the work dir is throwaway.
    argv = [str(cli.path), "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
            "--color", "never", prompt]
    return _run(argv, env, work, upstream)


def priced_charges(log: list[dict]) -> list[dict]:
    """The request log rows that cost something (count_tokens is free)."""
    return [row for row in log if row["cost_micro_p"]]


def expected_cost(catalog: Catalog, model_id: str) -> int:
    """What one answer of the fake costs on ``model_id``, by the gateway's own price rules."""
    model = catalog.resolve(model_id)
    return cost_micro_p(model, expected_usage(catalog.provider_of(model).api))


def assert_charged_exactly(customer: "Customer", catalog: Catalog, run: Run, start_balance: int) -> int:
    """Every answer the fake gave during ``run`` is logged at its exact price, and the balance fell by their sum.

    Returns the total charged, in micro-P.
    """
    answered = [s for s in run.seen if s.action != "count"]
    # Rows the upstream never saw (count_tokens answered by the gateway itself) count towards
    # len(run.seen) too: wait for every charge, not for that many rows.
    deadline = time.monotonic() + 30
    while True:
        log = customer.log(len(run.seen))
        charged = priced_charges(log)
        if len(charged) >= len(answered) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(charged) == len(answered), f"{len(answered)} answers, log: {log}"
    assert [row["cost_micro_p"] for row in charged] == [expected_cost(catalog, row["model"]) for row in charged], log
    total = sum(row["cost_micro_p"] for row in charged)
    assert customer.balance() == start_balance - total
    return total


def priced_chat_models() -> list[str]:
    """Every priced chat model of the shipped catalogue, in catalogue order (an unpriced one
    is refused by design)."""
    return [m.id for m in load_catalog(SHIPPED_PROVIDERS).models.values() if m.kind == "chat" and m.priced]


@dataclass
class Customer:
    """An account with one key on the agents' gateway."""

    gateway: object
    account_id: str
    key: str

    def balance(self) -> int:
        """The balance in micro-P."""
        return self.gateway.balance(self.account_id)

    def log(self, rows: int, timeout: float = 30) -> list[dict]:
        """The request log, oldest first, once at least ``rows`` requests have been written."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.gateway.internal("GET", f"/accounts/{self.account_id}/requests", params={"limit": 200})
            assert answer.status_code == 200, answer.text
            found = answer.json()["data"]
            if len(found) >= rows:
                return found[::-1]
            assert time.monotonic() < deadline, f"only {len(found)} of {rows} requests were logged"
            time.sleep(0.05)


def new_customer(gateway, balance_micro_p: int = 1000 * ONE_P) -> Customer:
    """A fresh account credited with ``balance_micro_p`` and one key."""
    account_id = gateway.create_account(balance_micro_p)
    return Customer(gateway, account_id, gateway.create_key(account_id, name="agent")["key"])
