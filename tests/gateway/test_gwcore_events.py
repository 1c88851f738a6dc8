"""Balance thresholds and the event outbox: each fall below a threshold is recorded once,
in the transaction that crossed it, and listed on GET /internal/events."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from gateway.accounting.events import set_threshold, thresholds
from gateway.accounting.ledger import UsageCharge, create_account, debit_usage, post_entry
from gateway.db import account_events
from gwapi_helpers import cost

SPEC = OpenAPI.from_file_path(str(Path(__file__).resolve().parents[2] / "gateway" / "openapi.yaml"))
P = 1_000_000


def call(gateway, method: str, path: str, **kw):
    response = gateway.internal(method, path, **kw)
    SPEC.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
    return response


def new_account(db, balance: int) -> str:
    def work(conn):
        row, _ = create_account(conn, "t@example.com", None)
        post_entry(conn, row.id, "credit", balance, f"seed-{uuid.uuid4()}")
        return row.id

    return db.transaction_sync(work)


def events_of(db, account_id: str) -> list:
    return db.read_sync(lambda conn: list(conn.execute(
        sa.select(account_events).where(account_events.c.account_id == account_id).order_by(account_events.c.id))))


def spend(db, account_id: str, amount: int) -> None:
    db.transaction_sync(debit_usage, [UsageCharge(account_id, f"req-{uuid.uuid4()}", amount, "m /v1/x")])


def test_a_fall_below_is_recorded_once_and_a_top_up_rearms_it(gateway_db):
    account_id = new_account(gateway_db, 10 * P)
    gateway_db.transaction_sync(set_threshold, account_id, "low_balance", 5 * P)
    spend(gateway_db, account_id, 4 * P)
    assert events_of(gateway_db, account_id) == []
    spend(gateway_db, account_id, 2 * P)  # 4 P: below
    spend(gateway_db, account_id, 1 * P)  # still below: nothing new
    crossed = events_of(gateway_db, account_id)
    assert [(e.kind, e.balance_micro_p, e.threshold_micro_p) for e in crossed] == [("low_balance", 4 * P, 5 * P)]
    assert gateway_db.read_sync(thresholds, account_id)["low_balance"] == {"threshold_micro_p": 5 * P, "below": True}

    gateway_db.transaction_sync(post_entry, account_id, "credit", 10 * P, f"top-{uuid.uuid4()}")
    assert gateway_db.read_sync(thresholds, account_id)["low_balance"]["below"] is False
    spend(gateway_db, account_id, 9 * P)  # 4 P again: a second crossing
    assert len(events_of(gateway_db, account_id)) == 2


def test_a_new_threshold_above_the_balance_is_a_crossing_at_once(gateway_db):
    account_id = new_account(gateway_db, 3 * P)
    gateway_db.transaction_sync(set_threshold, account_id, "auto_top_up", 5 * P)
    gateway_db.transaction_sync(set_threshold, account_id, "auto_top_up", 5 * P)  # unchanged: no second event
    assert [e.kind for e in events_of(gateway_db, account_id)] == ["auto_top_up"]
    gateway_db.transaction_sync(set_threshold, account_id, "auto_top_up", None)
    spend(gateway_db, account_id, 1 * P)
    assert len(events_of(gateway_db, account_id)) == 1
    assert gateway_db.read_sync(thresholds, account_id)["auto_top_up"] == {"threshold_micro_p": None, "below": False}


def test_many_concurrent_debits_crossing_together_record_one_event(gateway_db):
    account_id = new_account(gateway_db, 10 * P)
    gateway_db.transaction_sync(set_threshold, account_id, "low_balance", 5 * P)
    barrier = threading.Barrier(8)

    def debit(i: int) -> None:
        barrier.wait()
        gateway_db.transaction_sync(post_entry, account_id, "debit", -P, f"d-{uuid.uuid4()}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(debit, range(8)))
    assert len(events_of(gateway_db, account_id)) == 1


@settings(max_examples=30, derandomize=True, deadline=None)
@given(moves=st.lists(st.integers(min_value=-4, max_value=4).filter(bool), min_size=1, max_size=12))
def test_one_event_per_fall_below_for_any_sequence_of_moves(gateway_db, moves):
    account_id = new_account(gateway_db, 5 * P)
    gateway_db.transaction_sync(set_threshold, account_id, "low_balance", 5 * P)
    balance, falls = 5 * P, 0
    for move in moves:
        before = balance
        balance += move * P
        falls += before >= 5 * P > balance
        gateway_db.transaction_sync(post_entry, account_id, "adjustment", move * P, f"a-{uuid.uuid4()}")
    assert len(events_of(gateway_db, account_id)) == falls


def wait_events(gateway, account_id: str, count: int, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found, after = [], 0
        while True:
            page = call(gateway, "GET", "/events", params={"after": after, "limit": 500}).json()
            found += [e for e in page["data"] if e["account_id"] == account_id]
            if not page["data"]:
                break
            after = page["next_cursor"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_parallel_api_calls_crossing_the_threshold_list_one_event(gateway):
    one_call = cost("deepseek-v3.2")
    start = 1000 * P
    threshold = start - 5 * one_call - one_call // 2  # crossed by the sixth of ten calls
    account_id = gateway.create_account(start)
    answer = call(gateway, "PATCH", f"/accounts/{account_id}", json={"low_balance_threshold_micro_p": threshold})
    assert answer.status_code == 200, answer.text
    assert answer.json()["thresholds"]["low_balance"] == {"threshold_micro_p": threshold, "below": False}
    key = gateway.create_key(account_id)["key"]

    def chat(_):
        return requests.post(f"{gateway.url}/v1/chat/completions", timeout=30, headers={"Authorization": f"Bearer {key}"},
                             json={"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "Hi"}]}).status_code

    with ThreadPoolExecutor(10) as pool:
        assert set(pool.map(chat, range(10))) == {200}
    deadline = time.monotonic() + 30
    while gateway.balance(account_id) != start - 10 * one_call:
        assert time.monotonic() < deadline, "the ten calls were not all charged"
        time.sleep(0.05)
    events = wait_events(gateway, account_id, 1)
    time.sleep(1.5)
    events = wait_events(gateway, account_id, 2, timeout=0)
    assert len(events) == 1
    assert events[0]["kind"] == "low_balance" and events[0]["threshold_micro_p"] == threshold
    assert events[0]["balance_micro_p"] < threshold
    shown = call(gateway, "GET", f"/accounts/{account_id}").json()["thresholds"]
    assert shown["low_balance"]["below"] is True and shown["auto_top_up"]["threshold_micro_p"] is None


def test_the_cursor_skips_what_was_handled(gateway):
    account_id = gateway.create_account(P)
    call(gateway, "PATCH", f"/accounts/{account_id}", json={"low_balance_threshold_micro_p": 2 * P})
    [event] = wait_events(gateway, account_id, 1)
    later = call(gateway, "GET", "/events", params={"after": event["id"]}).json()
    assert all(e["id"] > event["id"] for e in later["data"])
    assert later["next_cursor"] >= event["id"]


@pytest.mark.parametrize("params", [{"after": "abc"}, {"after": "-1"}, {"limit": "0"}, {"limit": "501"}])
def test_a_malformed_cursor_or_limit_is_a_400(gateway, params):
    answer = gateway.internal("GET", "/events", params=params)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_query"


@pytest.mark.parametrize("value", [0, -5, "5", 1.5, True, 10**16])
def test_a_bad_threshold_is_a_422(gateway, value):
    account_id = gateway.create_account()
    answer = gateway.internal("PATCH", f"/accounts/{account_id}", json={"low_balance_threshold_micro_p": value})
    assert answer.status_code == 422, answer.text


def test_the_events_need_the_internal_token(gateway):
    answer = gateway.internal("GET", "/events", headers={"Authorization": "Bearer wrong"})
    assert answer.status_code == 401
