"""``flask --app app verify-ledger`` and the console's health page recompute every account's
books and report a balance that does not match its ledger."""

from __future__ import annotations

from gateway.db import accounts


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
