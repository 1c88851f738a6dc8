"""Budget alerts: a key's spend reaching 80 % and 100 % of its budget is recorded once per
budget period, in the batch writer's transaction, however many writers or gateway processes
charge the key at once; the events are listed on GET /internal/events."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import requests
import sqlalchemy as sa
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st
from test_gwcore_events import call, wait_events

from fixtures.gateway import start_gateway
from gateway.accounting.budgets import add_budget_spend, set_budget
from gateway.accounting.events import budget_share_at, budget_spent
from gateway.accounting.ledger import create_account, post_entry
from gateway.auth import create_key
from gateway.db import account_events, accounts
from gwapi_helpers import cost

P = 1_000_000


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def budget_key(db, budget: int, period: str = "month", zone: str = "UTC") -> tuple[str, str]:
    """A funded account in ``zone`` with one key on a ``period`` budget; (account id, key id)."""
    def work(conn):
        account, _ = create_account(conn, None, None)
        conn.execute(accounts.update().where(accounts.c.id == account.id).values(usage_tz=zone))
        post_entry(conn, account.id, "credit", 10_000 * P, f"fund:{account.id}")
        _, key = create_key(conn, account.id, "build server", None, None, budget_micro_p=budget)
        set_budget(conn, key.id, period, datetime.now(timezone.utc))
        return account.id, key.id

    return db.transaction_sync(work)


def charge(db, key_id: str, amount: int) -> None:
    """What the batch writer does for one settled request of ``amount`` on the key."""
    now = datetime.now(timezone.utc)
    db.transaction_sync(lambda conn: add_budget_spend(conn, {key_id: [(now, amount)]}, now))


def events_of(db, account_id: str) -> list:
    return db.read_sync(lambda conn: list(conn.execute(
        sa.select(account_events).where(account_events.c.account_id == account_id).order_by(account_events.c.id))))


def test_80_and_100_percent_are_recorded_once_each_and_again_next_period(gateway_db):
    with time_machine.travel(utc(2026, 4, 10, 12), tick=False) as clock:
        account_id, key_id = budget_key(gateway_db, 10 * P)
        charge(gateway_db, key_id, 7 * P)
        assert events_of(gateway_db, account_id) == []
        charge(gateway_db, key_id, 1 * P)  # 8 P: 80 %
        charge(gateway_db, key_id, 1 * P)  # 9 P: nothing new
        charge(gateway_db, key_id, 1 * P)  # 10 P: 100 %
        charge(gateway_db, key_id, 1 * P)  # past it: nothing new
        seen = events_of(gateway_db, account_id)
        assert [(e.kind, e.subject_kind, e.subject_id, e.threshold_micro_p, e.spent_micro_p, e.budget_micro_p)
                for e in seen] == [("budget_80", "key", key_id, 8 * P, 8 * P, 10 * P),
                                   ("budget_100", "key", key_id, 10 * P, 10 * P, 10 * P)]
        assert {(e.period_start, e.resets_at) for e in seen} == {(utc(2026, 4, 1), utc(2026, 5, 1))}
        assert seen[0].balance_micro_p == 10_000 * P

        # May: a new period, the alerts again.
        clock.move_to(utc(2026, 5, 2, 9))
        charge(gateway_db, key_id, 9 * P)
        newest = events_of(gateway_db, account_id)[2:]
        assert [(e.kind, e.period_start, e.resets_at) for e in newest] == [("budget_80", utc(2026, 5, 1), utc(2026, 6, 1))]


def test_a_share_of_the_budget_is_rounded_up():
    assert budget_share_at(10 * P, 80) == 8 * P
    assert budget_share_at(1, 80) == 1  # rounded up: never 0


def test_one_charge_from_half_to_past_the_budget_sends_only_budget_100(gateway_db):
    account_id, key_id = budget_key(gateway_db, 10 * P, "week")
    charge(gateway_db, key_id, 5 * P)
    charge(gateway_db, key_id, 7 * P)
    assert [e.kind for e in events_of(gateway_db, account_id)] == ["budget_100"]


def test_a_key_without_a_budget_records_nothing(gateway_db):
    def work(conn):
        account, _ = create_account(conn, None, None)
        _, key = create_key(conn, account.id, "no budget")
        return account.id, key.id

    account_id, key_id = gateway_db.transaction_sync(work)
    charge(gateway_db, key_id, 50 * P)
    assert events_of(gateway_db, account_id) == []


@settings(max_examples=30, derandomize=True, deadline=None)
@given(charges=st.lists(st.integers(min_value=1, max_value=4 * P), min_size=1, max_size=12))
def test_each_share_is_recorded_once_for_any_sequence_of_charges(gateway_db, charges):
    budget = 7 * P
    account_id, key_id = budget_key(gateway_db, budget, "day")
    spent, expected = 0, []
    for amount in charges:
        before, spent = spent, spent + amount
        reached = [share for share in (80, 100) if before < budget_share_at(budget, share) <= spent]
        if reached:
            expected.append(f"budget_{max(reached)}")
        charge(gateway_db, key_id, amount)
    assert [e.kind for e in events_of(gateway_db, account_id)] == expected


def test_many_batch_writers_charging_at_once_record_each_share_once(gateway_db):
    account_id, key_id = budget_key(gateway_db, 20 * P)
    barrier = threading.Barrier(8)

    def writer(_):
        barrier.wait()
        for _ in range(4):  # 8 writers x 4 charges x 1 P: 32 P against a 20 P budget
            charge(gateway_db, key_id, P)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(writer, range(8)))
    assert sorted(e.kind for e in events_of(gateway_db, account_id)) == ["budget_100", "budget_80"]


def test_the_same_crossing_recorded_twice_at_once_is_kept_once(gateway_db):
    """A member's budget has no key row to lock: the unique index alone keeps one event."""
    account_id, _ = budget_key(gateway_db, 10 * P)
    member_id = str(uuid.uuid4())
    start = utc(2026, 11, 1)
    barrier = threading.Barrier(6)

    def record(_):
        barrier.wait()
        return gateway_db.transaction_sync(budget_spent, account_id, "member", member_id, 10 * P, 7 * P, 9 * P, start)

    with ThreadPoolExecutor(6) as pool:
        recorded = list(pool.map(record, range(6)))
    assert recorded.count("budget_80") == 1 and recorded.count(None) == 5
    assert [(e.kind, e.subject_kind, e.subject_id) for e in events_of(gateway_db, account_id)] == [
        ("budget_80", "member", member_id)]


def test_an_unknown_scope_is_refused(gateway_db):
    with pytest.raises(ValueError):
        gateway_db.transaction_sync(budget_spent, str(uuid.uuid4()), "team", "x", 10, 0, 9, utc(2026, 1, 1))


@pytest.fixture(scope="module")
def second_gateway(gateway):
    """Another gateway process on the session's database."""
    handle = start_gateway(gateway.env)
    yield handle
    assert handle.stop() == 0


def test_parallel_calls_on_two_processes_list_one_budget_80_event(gateway, second_gateway):
    # Each call is billed 3000 output tokens (and reserves no more), so ten fit in the budget
    # at once; 80 % is reached by the 9th of them, the budget itself is not.
    one_call = cost("deepseek-v3.2", 0, 3000)
    budget = 11 * one_call
    account_id = gateway.create_account(1000 * P)
    created = gateway.create_key(account_id, budget_micro_p=budget, budget_period="month")
    urls = [gateway.url, second_gateway.url]

    def chat(i):
        return requests.post(f"{urls[i % 2]}/v1/chat/completions", timeout=30,
                             headers={"Authorization": f"Bearer {created['key']}"},
                             json={"model": "deepseek-v3.2", "max_tokens": 3000,
                                   "messages": [{"role": "user", "content": "[[usage:0:3000]] Hi"}]}).status_code

    with ThreadPoolExecutor(10) as pool:
        assert set(pool.map(chat, range(10))) == {200}
    deadline = time.monotonic() + 30
    while gateway.balance(account_id) != 1000 * P - 10 * one_call:
        assert time.monotonic() < deadline, "the ten calls were not all charged"
        time.sleep(0.05)
    wait_events(gateway, account_id, 1)
    time.sleep(1.5)
    events = wait_events(gateway, account_id, 2, timeout=0)
    assert [(e["kind"], e["subject_kind"], e["subject_id"]) for e in events] == [("budget_80", "key", created["id"])]
    [event] = events
    assert event["budget_micro_p"] == budget and event["threshold_micro_p"] == budget_share_at(budget, 80)
    assert budget_share_at(budget, 80) <= event["spent_micro_p"] < budget
    assert event["resets_at"] > event["period_start"]


def test_balance_events_show_null_budget_fields(gateway):
    account_id = gateway.create_account(P)
    call(gateway, "PATCH", f"/accounts/{account_id}", json={"low_balance_threshold_micro_p": 2 * P})
    [event] = wait_events(gateway, account_id, 1)
    assert event["kind"] == "low_balance"
    assert all(event[field] is None for field in ("subject_kind", "subject_id", "budget_micro_p", "spent_micro_p",
                                                  "period_start", "resets_at"))


def member_team(conn) -> tuple[str, str]:
    """A funded team account where member "7" has a key and a 10 P monthly budget; (account id, key id)."""
    from gateway.accounting.member_budgets import set_member_budget

    account, _ = create_account(conn, None, None)
    post_entry(conn, account.id, "credit", 10_000 * P, f"fund:{account.id}")
    _, key = create_key(conn, account.id, "laptop", None, None, member_id="7")
    set_member_budget(conn, account.id, "7", 10 * P, "month", datetime.now(timezone.utc))
    return account.id, key.id


def test_a_members_budget_is_recorded_at_80_and_100_percent_in_each_team_of_theirs(gateway_db):
    """One person (member "7") in two teams: each team's budget for them alerts once per share."""
    teams = [gateway_db.transaction_sync(member_team) for _ in range(2)]
    for account_id, key_id in teams:
        for _ in range(11):
            charge(gateway_db, key_id, 1 * P)
    for account_id, _ in teams:
        assert [(e.kind, e.subject_kind, e.subject_id, e.spent_micro_p) for e in events_of(gateway_db, account_id)] == [
            ("budget_80", "member", "7", 8 * P), ("budget_100", "member", "7", 10 * P)]


def test_a_budget_refusing_calls_near_its_end_is_used_up_once(gateway_db):
    from gateway.accounting.events import budget_used_up

    account_id, key_id = budget_key(gateway_db, 100 * P)
    charge(gateway_db, key_id, 50 * P)
    # Half spent: a big prompt refused here says so in its 402, and mails nobody.
    assert gateway_db.transaction_sync(budget_used_up, "key", key_id, 60 * P) is None
    charge(gateway_db, key_id, 43 * P)
    # 93 % spent: a call needing more than the 7 P left finds it used up; one needing less does not.
    assert gateway_db.transaction_sync(budget_used_up, "key", key_id, 7 * P) is None
    assert gateway_db.transaction_sync(budget_used_up, "key", key_id, 7 * P + 1) == "budget_100"
    assert gateway_db.transaction_sync(budget_used_up, "key", key_id, 9 * P) is None  # once per period
    [used_up] = [e for e in events_of(gateway_db, account_id) if e.kind == "budget_100"]
    assert (used_up.subject_kind, used_up.subject_id, used_up.spent_micro_p) == ("key", key_id, 93 * P)
    # Reaching 100 % later in the period records nothing more.
    charge(gateway_db, key_id, 7 * P)
    assert [e.kind for e in events_of(gateway_db, account_id)] == ["budget_80", "budget_100"]


def test_a_members_budget_refusing_calls_near_its_end_is_used_up(gateway_db):
    from gateway.accounting.events import budget_used_up
    from gateway.accounting.member_budgets import member_budget_row

    account_id, key_id = gateway_db.transaction_sync(member_team)
    charge(gateway_db, key_id, 9_500_000)
    budget_id = gateway_db.read_sync(lambda conn: member_budget_row(conn, account_id, "7").id)
    assert gateway_db.transaction_sync(budget_used_up, "member", budget_id, 1 * P) == "budget_100"
    assert [(e.kind, e.subject_kind, e.subject_id, e.spent_micro_p) for e in events_of(gateway_db, account_id)] == [
        ("budget_80", "member", "7", 9_500_000), ("budget_100", "member", "7", 9_500_000)]


def test_calls_alone_end_a_budget_with_its_100_percent_event(gateway):
    # Each call is billed 2,000 output tokens of a 3,000 bound. The last calls' bounds are
    # lowered to what the budget has left, so spend never reaches the budget: once what is
    # left cannot pay for a call's least output, calls are refused and the budget is used up.
    one_call = cost("deepseek-v3.2", 0, 2000)
    budget = 10 * one_call + cost("deepseek-v3.2", 0, 500)
    account_id = gateway.create_account(1000 * P)
    created = gateway.create_key(account_id, budget_micro_p=budget, budget_period="month")
    statuses = []
    for _ in range(20):
        answer = requests.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                               headers={"Authorization": f"Bearer {created['key']}"},
                               json={"model": "deepseek-v3.2", "max_tokens": 3000,
                                     "messages": [{"role": "user", "content": "[[usage:0:2000]] Hi"}]})
        statuses.append(answer.status_code)
        if answer.status_code != 200:
            assert answer.json()["error"]["code"] == "key_budget_exceeded"
            break
        # One call at a time, each charged before the next: the refusal comes from spend, not from reservations.
        deadline = time.monotonic() + 20
        while gateway.balance(account_id) != 1000 * P - statuses.count(200) * one_call:
            assert time.monotonic() < deadline, "the call was not charged"
            time.sleep(0.05)
    assert statuses == [200] * 10 + [402]
    events = wait_events(gateway, account_id, 2, timeout=20)
    assert [(e["kind"], e["subject_id"]) for e in events] == [("budget_80", created["id"]), ("budget_100", created["id"])]
    assert events[1]["spent_micro_p"] == 10 * one_call < budget
