"""``flask --app app verify-ledger`` and the console's health page recompute every account's
books and report a balance that does not match its ledger; the page keeps its check for a
minute, says how old it is, and runs it again on "Check again"."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
import time_machine

from gateway.db import accounts
from portal.operator.ledger_check import LedgerCheckCache


def test_a_tampered_balance_is_reported_by_the_command_and_on_the_health_page(portal_app, operator_client, customer,
                                                                                gateway_db):
    runner = portal_app.test_cli_runner()
    before = runner.invoke(args=["verify-ledger"])
    assert customer.account_id not in before.output
    assert "accounts checked" in before.output or "difference(s)" in before.output

    gateway_db.transaction_sync(lambda conn: conn.execute(
        accounts.update().where(accounts.c.id == customer.account_id).values(balance_micro_p=accounts.c.balance_micro_p + 7)))
    try:
        after = runner.invoke(args=["verify-ledger"])
        assert after.exit_code == 1
        assert f"{customer.account_id}: balance_micro_p is 1000000007, its entries say 1000000000" in after.output
        health = operator_client.get("/operator/health").get_data(as_text=True)
        assert "data-ledger-differences" in health and customer.account_id in health
    finally:
        gateway_db.transaction_sync(lambda conn: conn.execute(
            accounts.update().where(accounts.c.id == customer.account_id).values(balance_micro_p=1_000_000_000)))
    assert customer.account_id not in runner.invoke(args=["verify-ledger"]).output


def test_the_command_says_so_when_the_gateway_cannot_be_asked(down_portal_app):
    result = down_portal_app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 2 and "could not check the ledger" in result.output


def shift_balance(gateway_db, account_id: str, micro_p: int) -> None:
    gateway_db.transaction_sync(lambda conn: conn.execute(
        accounts.update().where(accounts.c.id == account_id).values(balance_micro_p=accounts.c.balance_micro_p + micro_p)))


def test_the_health_page_keeps_the_check_a_minute_and_check_again_runs_it_now(operator_client, customer, gateway_db):
    def health() -> str:
        return operator_client.get("/operator/health").get_data(as_text=True)

    with time_machine.travel(datetime.now(timezone.utc), tick=False) as clock:
        first = health()
        # Other tests share the gateway database: only this customer's account is looked for.
        assert customer.account_id not in first and "Checked <time" in first and ">0 s ago<" in first
        shift_balance(gateway_db, customer.account_id, 7)
        try:
            clock.shift(40)
            kept = health()
            assert customer.account_id not in kept and ">40 s ago<" in kept  # not recomputed yet

            # "Check again" with htmx: the section alone, recomputed now.
            again = operator_client.post("/operator/health/ledger-check", headers={"HX-Request": "true"})
            section = again.get_data(as_text=True)
            assert again.status_code == 200 and section.lstrip().startswith('<section class="card" id="ledger-check"')
            assert "data-ledger-differences" in section and customer.account_id in section and ">0 s ago<" in section
            clock.shift(5)
            assert customer.account_id in health()  # the fresh answer is kept in turn
        finally:
            shift_balance(gateway_db, customer.account_id, -7)

        clock.shift(56)  # over a minute since the check: the next view runs it again
        later = health()
        assert customer.account_id not in later and ">0 s ago<" in later

        # Without JavaScript the button posts the form and comes back to the page.
        plain = operator_client.post("/operator/health/ledger-check")
        assert plain.status_code == 303 and plain.headers["Location"].endswith("/operator/health")


def test_viewers_arriving_together_share_one_check():
    cache = LedgerCheckCache()
    runs = []
    started, release = threading.Event(), threading.Event()

    def slow_check() -> dict:
        runs.append(1)
        started.set()
        release.wait(5)
        return {"ok": True, "accounts_checked": 3, "differences": []}

    answers = []
    first = threading.Thread(target=lambda: answers.append(cache.get(slow_check)))
    first.start()
    started.wait(5)
    others = [threading.Thread(target=lambda: answers.append(cache.get(slow_check))) for _ in range(4)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join()
    assert len(runs) == 1 and len({id(answer) for answer in answers}) == 1


def test_a_failed_check_is_not_kept():
    cache = LedgerCheckCache()

    def failing() -> dict:
        raise RuntimeError("gateway down")

    with pytest.raises(RuntimeError):
        cache.get(failing)
    assert cache.get(lambda: {"ok": True}).report == {"ok": True}
