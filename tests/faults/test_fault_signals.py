"""Stop signals in any number and order: every answered call is recorded and charged.

Ctrl-C in a terminal sends SIGINT to the whole process group, and a launcher may then
send SIGTERM as well; the first signal starts the shutdown, and no later one may cut
its final flush short. The gateways here never flush on their own
(``GATEWAY_FLUSH_INTERVAL`` of an hour), so only the shutdown flush can record the calls.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import requests
from fault_common import ONE_P, assert_ledger_sums, chat, logged_requests

from fixtures.gateway import start_gateway

CALLS = 12
USAGE = "[[usage:1000:40]]"  # output within the max_tokens of 50 that chat() sends
COST = 1000 * 280 + 40 * 420  # deepseek-v3.2: 280 / 420 P per 1M tokens
GAP_SECONDS = 0.05


def _send(process, name: str) -> None:
    """SIGINT as a terminal sends it (to the process group); SIGTERM to the process alone."""
    if name == "INT":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGTERM)


class _SlowStream(threading.Thread):
    """A streamed call of several seconds, read to its end; ``started`` once bytes arrive."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.started = threading.Event()
        self.request_id = ""

    def run(self) -> None:
        body = {"model": "deepseek-v3.2", "max_tokens": 50, "stream": True,
                "messages": [{"role": "user", "content": f"slow [[slow]] {USAGE}"}]}
        with requests.post(f"{self.url}/v1/chat/completions", json=body, stream=True, timeout=60,
                           headers={"Authorization": f"Bearer {self.key}"}) as response:
            self.request_id = response.headers["x-request-id"]
            for _ in response.iter_content(chunk_size=None):
                self.started.set()
        self.started.set()


def _stream_in_flight(url: str, key: str) -> _SlowStream:
    stream = _SlowStream(url, key)
    stream.start()
    assert stream.started.wait(30), "the slow stream never started"
    return stream


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
        # A slow stream keeps the shutdown busy for seconds, so every later signal
        # arrives while the gateway is stopping (and must be ignored).
        in_flight = _stream_in_flight(lazy.url, key)
        for n, name in enumerate(sequence):
            if n:
                time.sleep(GAP_SECONDS)
            _send(lazy.process, name)
        assert lazy.process.wait(timeout=90) == 0, lazy.log_text()[-3000:]
        in_flight.join(30)
        answered.add(in_flight.request_id)
    finally:
        if lazy.process.poll() is None:
            lazy.process.kill()
            lazy.process.wait()
    rows = logged_requests(gateway, account_id)
    assert {row["request_id"] for row in rows} == answered
    assert all(row["cost_micro_p"] == COST for row in rows)
    assert assert_ledger_sums(gateway, account_id) == 100 * ONE_P - (CALLS + 1) * COST
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
