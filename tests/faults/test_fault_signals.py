"""Stop signals in any number and order: every answered call is recorded and charged.

Ctrl-C in a terminal sends SIGINT to the whole process group, and a launcher may then
send SIGTERM as well; the first signal starts the shutdown, and no later one may cut
its final flush short. The gateways here never flush on their own
(``GATEWAY_FLUSH_INTERVAL`` of an hour), so only the shutdown flush can record the calls.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from fault_common import ONE_P, assert_ledger_sums, chat, logged_requests

from fixtures.gateway import start_gateway

CALLS = 12
USAGE = "[[usage:1000:500]]"
COST = 1000 * 280 + 500 * 420  # deepseek-v3.2: 280 / 420 P per 1M tokens
GAP_SECONDS = 0.05


def _send(process, name: str) -> None:
    """SIGINT as a terminal sends it (to the process group); SIGTERM to the process alone."""
    if name == "INT":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGTERM)


def _answered_calls_survive(gateway, gateway_env, sequence: list[str], workers: int) -> None:
    lazy = start_gateway(dict(gateway_env, GATEWAY_FLUSH_INTERVAL="3600", GATEWAY_WORKERS=str(workers)),
                         new_session=True)
    account_id = gateway.create_account(100 * ONE_P)
    key = gateway.create_key(account_id)["key"]
    try:
        answers = [chat(lazy.url, key, f"call {n} {USAGE}") for n in range(CALLS)]
        assert [a.status_code for a in answers] == [200] * CALLS, answers[0].text
        answered = {a.headers["x-request-id"] for a in answers}
        assert logged_requests(gateway, account_id) == []  # nothing flushed yet
        for n, name in enumerate(sequence):
            if n:
                time.sleep(GAP_SECONDS)
            _send(lazy.process, name)
        assert lazy.process.wait(timeout=90) == 0, lazy.log_text()[-3000:]
    finally:
        if lazy.process.poll() is None:
            lazy.process.kill()
            lazy.process.wait()
    rows = logged_requests(gateway, account_id)
    assert {row["request_id"] for row in rows} == answered
    assert all(row["cost_micro_p"] == COST for row in rows)
    assert assert_ledger_sums(gateway, account_id) == 100 * ONE_P - CALLS * COST
    account = gateway.internal("GET", f"/accounts/{account_id}").json()
    assert account["reserved_micro_p"] == 0  # leases returned after the flush
    if len(sequence) > 1:
        assert "ignored" in lazy.log_text()


@pytest.mark.parametrize("sequence", [["INT"], ["INT", "INT"], ["INT", "TERM"], ["TERM", "TERM", "INT"]],
                         ids=lambda s: "-".join(s))
def test_any_signal_sequence_keeps_every_answered_call(gateway, gateway_env, fake_upstream, sequence):
    _answered_calls_survive(gateway, gateway_env, sequence, workers=1)


@pytest.mark.parametrize("sequence", [["INT", "TERM"], ["TERM", "INT", "INT"]], ids=lambda s: "-".join(s))
def test_several_workers_keep_every_answered_call(gateway, gateway_env, fake_upstream, sequence):
    # The group's SIGINT reaches the parent and every worker; the parent forwards once more.
    _answered_calls_survive(gateway, gateway_env, sequence, workers=2)
