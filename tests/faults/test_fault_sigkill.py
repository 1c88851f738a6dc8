"""The gateway killed with SIGKILL under load: what is lost is bounded by the flush window.

Requests are settled in memory and written in batches every GATEWAY_FLUSH_INTERVAL; a
batch commits as one transaction. So a SIGKILL can lose only requests that completed
within one flush interval (plus the time that flush takes) before the kill, and never
half a batch: the balance still equals the sum of the ledger entries, and a new process
serves the account at once (the dead process's lease expires on its own). Nothing of the
killed gateway lives on: its writer process ends when its pipe closes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests
from fault_common import ONE_P, assert_ledger_sums, chat, logged_requests, wait_until

from fixtures.gateway import start_gateway

FLUSH_INTERVAL = 0.5
# One flush under this load takes well under this; see docs/security.md for the bound.
FLUSH_DURATION_ALLOWANCE = 1.0
CLIENTS = 16


def _children(pid: int) -> set[int]:
    return {int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()}


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_sigkill_under_load_loses_at_most_the_last_flush_window(gateway_env, fake_upstream):
    victim = start_gateway(dict(gateway_env, GATEWAY_FLUSH_INTERVAL=str(FLUSH_INTERVAL)))
    account_id = victim.create_account(1000 * ONE_P)
    key = victim.create_key(account_id)["key"]
    completed: list[tuple[str, float]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                answer = session.post(f"{victim.url}/v1/chat/completions", timeout=10,
                                      headers={"Authorization": f"Bearer {key}"},
                                      json={"model": "deepseek-v3.2", "max_tokens": 20,
                                            "messages": [{"role": "user", "content": "load"}]})
            except requests.RequestException:
                return
            if answer.status_code == 200:
                with lock:
                    completed.append((answer.headers["x-request-id"], time.monotonic()))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    children = _children(victim.process.pid)
    assert children, "the gateway runs its batch writer in a process of its own"
    killed_at = time.monotonic()
    victim.process.kill()
    victim.process.wait()
    assert wait_until(lambda: not any(_running(pid) for pid in children), timeout=15), \
        f"still running after the gateway was killed: {[pid for pid in children if _running(pid)]}"
    stop.set()
    for thread in threads:
        thread.join(15)
    assert len(completed) > 50, "the load never got going"

    survivor = start_gateway(dict(gateway_env))
    try:
        logged = {row["request_id"] for row in logged_requests(survivor, account_id)}
        lost = [(rid, at) for rid, at in completed if rid not in logged]
        window = FLUSH_INTERVAL + FLUSH_DURATION_ALLOWANCE
        assert all(at > killed_at - window for _, at in lost), \
            f"{len(lost)} lost, oldest {killed_at - min(at for _, at in lost):.2f} s before the kill"
        assert len(lost) < len(completed)
        # Whole batches or nothing: the money agrees with the log that survived.
        balance = assert_ledger_sums(survivor, account_id)
        charged = sum(row["cost_micro_p"] for row in logged_requests(survivor, account_id))
        assert balance == 1000 * ONE_P - charged
        # The account is served again at once by the new process.
        assert chat(survivor.url, key).status_code == 200
    finally:
        survivor.stop()
