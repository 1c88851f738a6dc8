"""The gateway's database locked for a moment: requests still succeed and the flush retries.

On SQLite another connection holds the write lock (``BEGIN EXCLUSIVE``) for about a
second; on PostgreSQL another session holds ACCESS EXCLUSIVE locks on the tables a flush
writes. Either way the requests in flight are answered, their log rows and charges land
once the lock is gone, and the ledger sums.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import sqlalchemy as sa
from fault_common import ONE_P, assert_ledger_sums, chat, logged_requests, wait_until

LOCK_SECONDS = 1.2


def _hold_lock(url: str, ready: threading.Event, seconds: float) -> None:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split("sqlite:///", 1)[1], timeout=30, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        ready.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()
        return
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("LOCK TABLE request_log, ledger_entries, usage_rollups IN ACCESS EXCLUSIVE MODE"))
        ready.set()
        time.sleep(seconds)
    engine.dispose()


def test_a_locked_database_delays_the_log_but_loses_nothing(gateway, gateway_database_url, fake_upstream):
    account_id = gateway.create_account(100 * ONE_P)
    key = gateway.create_key(account_id)["key"]
    assert chat(gateway.url, key, "warm the lease").status_code == 200
    assert wait_until(lambda: len(logged_requests(gateway, account_id)) == 1)

    ready = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(gateway_database_url, ready, LOCK_SECONDS))
    holder.start()
    assert ready.wait(10)
    statuses = [chat(gateway.url, key, f"during the lock {n}").status_code for n in range(5)]
    holder.join()
    assert statuses == [200] * 5
    assert wait_until(lambda: len(logged_requests(gateway, account_id)) == 6, timeout=30)
    rows = logged_requests(gateway, account_id)
    assert all(row["status"] == 200 and row["cost_micro_p"] > 0 for row in rows)
    assert assert_ledger_sums(gateway, account_id) == 100 * ONE_P - sum(row["cost_micro_p"] for row in rows)
    health = gateway.internal("GET", "/health").json()
    assert health["status"] == "ok" and health["queue_depth"] == 0
