"""Monthly statements on Billing: months in the customer's zone, a printable page and a CSV
that reconcile to the gateway's ledger to the micro-P."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine

from fixtures.portal import login
from gateway.accounting.ledger import post_entry
from gateway.accounting.metering import RequestRecord, write_batch
from gateway.db import ledger_entries

P = 1_000_000
UTC = timezone.utc
NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)


def post_at(db, when, account_id, kind, amount, description="test"):
    with time_machine.travel(when, tick=False):
        db.transaction_sync(post_entry, account_id, kind, amount, f"{kind}-{uuid.uuid4()}", description)


def use_at(db, when, account_id, cost, model="deepseek-v3.2", key_id=""):
    record = RequestRecord(
        request_id=f"req-{uuid.uuid4()}", account_id=account_id, key_id=key_id, model=model, provider="deepseek",
        endpoint="/v1/chat/completions", stream=False, input_tokens=100, output_tokens=20, cost_micro_p=cost,
        latency_ms=5, ttft_ms=None, status=200, error_class=None, estimated=False, created_at=when,
    )
    with time_machine.travel(when, tick=False):
        db.transaction_sync(write_batch, [(record, None)])


def ledger_before(db, account_id, before):
    return int(db.read_sync(lambda conn: conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(ledger_entries.c.amount_micro_p), 0))
        .where(ledger_entries.c.account_id == account_id, ledger_entries.c.created_at < before)).scalar_one()))


@pytest.fixture
def customer(make_user, gateway, gateway_db):
    """A Berlin customer since September with a key, top-ups, usage, a refund and an adjustment."""
    user = make_user(timezone="Europe/Berlin", created_at=datetime(2026, 9, 10, 8))
    key = gateway.create_key(user.account_id, name="=build server")
    post_at(gateway_db, datetime(2026, 9, 20, 10, tzinfo=UTC), user.account_id, "credit", 50 * P, "Card top-up $50.00")
    post_at(gateway_db, datetime(2026, 10, 2, 10, tzinfo=UTC), user.account_id, "credit", 20 * P, "Card top-up $20.00")
    use_at(gateway_db, datetime(2026, 10, 10, 10, tzinfo=UTC), user.account_id, 3 * P + 17, key_id=key["id"])
    use_at(gateway_db, datetime(2026, 10, 11, 10, tzinfo=UTC), user.account_id, 1_234_567, model="glm-5")
    post_at(gateway_db, datetime(2026, 10, 12, 10, tzinfo=UTC), user.account_id, "refund", -5 * P, "Refund")
    post_at(gateway_db, datetime(2026, 10, 13, 10, tzinfo=UTC), user.account_id, "adjustment", -3, "Correction")
    # 23:30 UTC on 31 October is already November in Berlin.
    post_at(gateway_db, datetime(2026, 10, 31, 23, 30, tzinfo=UTC), user.account_id, "credit", 9 * P, "Late top-up")
    return user


def signed_in(app, user):
    client = app.test_client()
    assert login(client, user.email, user.password).status_code == 303
    return client


def test_the_list_runs_from_sign_up_to_this_month_which_is_in_progress(portal_app, customer):
    with time_machine.travel(NOW, tick=False):
        client = signed_in(portal_app, customer)
        html = client.get("/billing/statements").get_data(as_text=True)
        assert re.findall(r'/billing/statements/(\d{4}-\d{2})"', html) == ["2026-11", "2026-10", "2026-09"]
        assert "in progress" in client.get("/billing/statements/2026-11").get_data(as_text=True)
        assert "data-in-progress" not in client.get("/billing/statements/2026-10").get_data(as_text=True)
        for month in ("2026-12", "2026-13", "abc", "2026-1"):
            assert client.get(f"/billing/statements/{month}").status_code == 404
            assert client.get(f"/billing/statements/{month}.csv").status_code == 404


def test_the_page_reconciles_to_the_ledger_to_the_micro_p(portal_app, customer, gateway_db):
    with time_machine.travel(NOW, tick=False):
        html = signed_in(portal_app, customer).get("/billing/statements/2026-10").get_data(as_text=True)
    figures = {name: int(re.search(rf'data-{name}="(-?\d+)"', html).group(1))
               for name in ("opening", "credits", "debits", "closing")}
    assert figures["opening"] + figures["credits"] - figures["debits"] == figures["closing"]
    assert figures["opening"] == ledger_before(gateway_db, customer.account_id, datetime(2026, 9, 30, 22, tzinfo=UTC))
    assert figures["closing"] == ledger_before(gateway_db, customer.account_id, datetime(2026, 10, 31, 23, tzinfo=UTC))
    assert figures == {"opening": 50 * P, "credits": 20 * P, "debits": 3 * P + 17 + 1_234_567 + 5 * P + 3,
                       "closing": 50 * P + 20 * P - (3 * P + 17 + 1_234_567 + 5 * P + 3)}
    assert "60.765413 P" in html  # the closing balance, every micro-P shown
    assert "Late top-up" not in html and "glm-5" in html and "=build server" in html
    assert "statement" in html and "no-print" in html
    css = (Path(__file__).resolve().parents[2] / "static" / "css" / "app.css").read_text()
    assert "@media print" in css and ".statement" in css.split("@media print", 1)[1]


def test_the_csv_has_a_kind_column_and_balance_rows_that_add_up(portal_app, customer, gateway_db):
    with time_machine.travel(NOW, tick=False):
        answer = signed_in(portal_app, customer).get("/billing/statements/2026-10.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "samalink-statement-2026-10.csv" in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    kinds = [row["kind"] for row in rows]
    assert kinds[0] == "opening" and kinds[-1] == "closing"
    assert kinds.count("usage") == 1 and {"credit", "refund", "adjustment", "usage_model", "usage_key"} <= set(kinds)
    opening, closing = int(rows[0]["balance_micro_p"]), int(rows[-1]["balance_micro_p"])
    moved = sum(int(r["amount_micro_p"]) for r in rows if r["kind"] in ("credit", "debit", "refund", "adjustment", "usage"))
    assert opening + moved == closing == ledger_before(gateway_db, customer.account_id, datetime(2026, 10, 31, 23, tzinfo=UTC))
    usage = next(int(r["amount_micro_p"]) for r in rows if r["kind"] == "usage")
    for kind in ("usage_model", "usage_key"):
        assert sum(int(r["amount_micro_p"]) for r in rows if r["kind"] == kind) == usage
    for row in rows:
        if row["amount_p"]:
            assert Decimal(row["amount_p"]) * P == int(row["amount_micro_p"])
    # A key named like a formula stays text in a spreadsheet.
    assert any(r["key"] == "'=build server" for r in rows)


def test_statements_need_a_signed_in_customer(portal_app):
    answer = portal_app.test_client().get("/billing/statements/2026-10.csv")
    assert answer.status_code in (302, 303) and "/login" in answer.headers["Location"]
