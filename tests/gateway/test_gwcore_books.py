"""Monthly statements reconcile to the ledger to the micro-P in the account's zone, and the
ledger check finds a tampered balance."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from gateway.accounting.ledger import create_account, post_entry
from gateway.accounting.metering import RequestRecord, write_batch
from gateway.db import accounts, ledger_entries

SPEC = OpenAPI.from_file_path(str(Path(__file__).resolve().parents[2] / "gateway" / "openapi.yaml"))
P = 1_000_000
UTC = timezone.utc


def call(gateway, path: str, **kw):
    response = gateway.internal("GET", path, **kw)
    SPEC.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
    return response


def new_account(db) -> str:
    return db.transaction_sync(lambda conn: create_account(conn, "books@example.com", None)[0].id)


def post_at(db, when: datetime, account_id: str, kind: str, amount: int) -> None:
    with time_machine.travel(when, tick=False):
        db.transaction_sync(post_entry, account_id, kind, amount, f"{kind}-{uuid.uuid4()}", f"test {kind}")


def use_at(db, when: datetime, account_id: str, cost: int, model: str = "deepseek-v3.2", key_id: str = "") -> None:
    record = RequestRecord(
        request_id=f"req-{uuid.uuid4()}", account_id=account_id, key_id=key_id, model=model, provider="deepseek",
        endpoint="/v1/chat/completions", stream=False, input_tokens=100, output_tokens=20, cost_micro_p=cost,
        latency_ms=5, ttft_ms=None, status=200, error_class=None, estimated=False, created_at=when,
    )
    with time_machine.travel(when, tick=False):
        db.transaction_sync(write_batch, [(record, None)])


def balance_at(db, account_id: str, before: datetime) -> int:
    return int(db.read_sync(lambda conn: conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(ledger_entries.c.amount_micro_p), 0))
        .where(ledger_entries.c.account_id == account_id, ledger_entries.c.created_at < before)).scalar_one()))


def reconciles(statement: dict) -> None:
    assert statement["opening_balance_micro_p"] + statement["credits_micro_p"] - statement["debits_micro_p"] \
        == statement["closing_balance_micro_p"]
    moved = sum(m["amount_micro_p"] for m in statement["movements"]) - statement["usage_micro_p"]
    assert statement["opening_balance_micro_p"] + moved == statement["closing_balance_micro_p"]
    for lines in (statement["usage_by_model"], statement["usage_by_key"]):
        assert sum(line["cost_micro_p"] for line in lines) == statement["usage_micro_p"]
    if statement["usage_by_member"]:
        assert sum(line["cost_micro_p"] for line in statement["usage_by_member"]) == statement["usage_micro_p"]


def test_a_month_in_berlin_reconciles_and_a_late_evening_belongs_to_the_next_month(gateway, gateway_db):
    account_id = new_account(gateway_db)
    post_at(gateway_db, datetime(2026, 9, 20, 10, tzinfo=UTC), account_id, "credit", 50 * P)
    post_at(gateway_db, datetime(2026, 10, 2, 10, tzinfo=UTC), account_id, "credit", 20 * P)
    use_at(gateway_db, datetime(2026, 10, 10, 10, tzinfo=UTC), account_id, 3 * P)
    use_at(gateway_db, datetime(2026, 10, 11, 10, tzinfo=UTC), account_id, 1_234_567, model="glm-5")
    post_at(gateway_db, datetime(2026, 10, 12, 10, tzinfo=UTC), account_id, "refund", -5 * P)
    post_at(gateway_db, datetime(2026, 10, 13, 10, tzinfo=UTC), account_id, "adjustment", 7)
    # 23:30 UTC on 31 October is 00:30 on 1 November in Berlin.
    post_at(gateway_db, datetime(2026, 10, 31, 23, 30, tzinfo=UTC), account_id, "credit", 9 * P)

    berlin = call(gateway, f"/accounts/{account_id}/statement", params={"month": "2026-10", "tz": "Europe/Berlin"}).json()
    reconciles(berlin)
    assert berlin["in_progress"] is False
    assert berlin["opening_balance_micro_p"] == 50 * P
    assert berlin["credits_micro_p"] == 20 * P + 7 and berlin["debits_micro_p"] == 3 * P + 1_234_567 + 5 * P
    assert [m["kind"] for m in berlin["movements"]] == ["credit", "refund", "adjustment"]
    assert {line["model"]: line["cost_micro_p"] for line in berlin["usage_by_model"]} == {
        "deepseek-v3.2": 3 * P, "glm-5": 1_234_567}
    assert berlin["usage_by_model"][0]["requests"] == 1 and berlin["usage_by_model"][0]["input_tokens"] == 100
    end_berlin = datetime(2026, 10, 31, 23, tzinfo=UTC)
    assert berlin["closing_balance_micro_p"] == balance_at(gateway_db, account_id, end_berlin)

    utc = call(gateway, f"/accounts/{account_id}/statement", params={"month": "2026-10", "tz": "UTC"}).json()
    reconciles(utc)
    assert utc["closing_balance_micro_p"] == berlin["closing_balance_micro_p"] + 9 * P
    november = call(gateway, f"/accounts/{account_id}/statement", params={"month": "2026-11", "tz": "Europe/Berlin"}).json()
    assert november["opening_balance_micro_p"] == berlin["closing_balance_micro_p"]
    assert [m["amount_micro_p"] for m in november["movements"]] == [9 * P]


@settings(max_examples=8, derandomize=True, deadline=None)
@given(moves=st.lists(st.tuples(st.integers(0, 60 * 24 - 1), st.sampled_from(["credit", "refund", "adjustment", "usage"]),
                                st.integers(1, 10 * P)), min_size=1, max_size=8))
def test_every_month_reconciles_for_any_movements(gateway, gateway_db, moves):
    account_id = new_account(gateway_db)
    start = datetime(2026, 9, 15, tzinfo=UTC)
    for hours, kind, amount in moves:
        when = start + timedelta(hours=hours)
        if kind == "usage":
            use_at(gateway_db, when, account_id, amount)
        else:
            post_at(gateway_db, when, account_id, kind, -amount if kind == "refund" else amount)
    for tz in ("UTC", "America/New_York", "Asia/Kathmandu"):
        closings = []
        for month in ("2026-09", "2026-10", "2026-11", "2026-12"):
            statement = gateway.internal("GET", f"/accounts/{account_id}/statement",
                                         params={"month": month, "tz": tz}).json()
            reconciles(statement)
            if closings:
                assert statement["opening_balance_micro_p"] == closings[-1]
            closings.append(statement["closing_balance_micro_p"])
        assert closings[-1] == balance_at(gateway_db, account_id, datetime(2027, 1, 2, tzinfo=UTC))


def test_a_team_statement_breaks_usage_down_by_member(gateway, gateway_db):
    from gateway.auth import create_key

    account_id = new_account(gateway_db)
    post_at(gateway_db, datetime(2026, 10, 1, 10, tzinfo=UTC), account_id, "credit", 50 * P)
    keys = gateway_db.transaction_sync(lambda conn: [
        create_key(conn, account_id, name, member_id=member)[1].id
        for name, member in (("ana laptop", "7"), ("ana ci", "7"), ("bo", "9"), ("shared", None))])
    for key_id, cost in zip(keys, (1 * P, 2 * P, 4 * P, 8 * P)):
        use_at(gateway_db, datetime(2026, 10, 5, 10, tzinfo=UTC), account_id, cost, key_id=key_id)

    statement = call(gateway, f"/accounts/{account_id}/statement", params={"month": "2026-10", "tz": "UTC"}).json()
    reconciles(statement)
    assert [(line["member_id"], line["requests"], line["cost_micro_p"]) for line in statement["usage_by_member"]] == [
        (None, 1, 8 * P), ("9", 1, 4 * P), ("7", 2, 3 * P)]

    personal = new_account(gateway_db)
    post_at(gateway_db, datetime(2026, 10, 1, 10, tzinfo=UTC), personal, "credit", 5 * P)
    use_at(gateway_db, datetime(2026, 10, 5, 10, tzinfo=UTC), personal, 1 * P)
    alone = call(gateway, f"/accounts/{personal}/statement", params={"month": "2026-10", "tz": "UTC"}).json()
    assert alone["usage_by_member"] == []  # no members: no breakdown


@pytest.mark.parametrize("params", [{"month": "2026-13"}, {"month": "26-10"}, {"month": ""}, {},
                                    {"month": "2026-10", "tz": "Mars/Base"}])
def test_a_bad_month_or_zone_is_a_400(gateway, params):
    account_id = gateway.create_account()
    assert gateway.internal("GET", f"/accounts/{account_id}/statement", params=params).status_code == 400


def test_an_unknown_account_has_no_statement(gateway):
    answer = gateway.internal("GET", f"/accounts/{uuid.uuid4()}/statement", params={"month": "2026-10"})
    assert answer.status_code == 404


def test_the_ledger_check_reports_a_tampered_balance(gateway, gateway_db):
    account_id = new_account(gateway_db)
    post_at(gateway_db, datetime(2026, 10, 2, tzinfo=UTC), account_id, "credit", 5 * P)
    use_at(gateway_db, datetime(2026, 10, 3, tzinfo=UTC), account_id, P)

    def mine(report):
        return [d for d in report["differences"] if d["account_id"] == account_id]

    assert mine(call(gateway, "/admin/verify-ledger").json()) == []
    gateway_db.transaction_sync(lambda conn: conn.execute(
        accounts.update().where(accounts.c.id == account_id).values(balance_micro_p=accounts.c.balance_micro_p + 1)))
    try:
        report = call(gateway, "/admin/verify-ledger").json()
        assert report["ok"] is False
        assert {"account_id": account_id, "field": "balance_micro_p", "stored": 4 * P + 1,
                "recomputed": 4 * P} in mine(report)
    finally:
        gateway_db.transaction_sync(lambda conn: conn.execute(
            accounts.update().where(accounts.c.id == account_id).values(balance_micro_p=4 * P)))
    assert mine(call(gateway, "/admin/verify-ledger").json()) == []
