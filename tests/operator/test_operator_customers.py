"""Customers in the console: search, the customer page, suspend, adjust, revoke — each audited."""

from __future__ import annotations

from fixtures.portal import call_api, wait_for_requests, wait_for_status
from operator_helpers import audit_rows, form_key_in


def test_search_by_email_and_by_account_id(operator_client, customer):
    part = customer.email.split("@")[0]
    page = operator_client.get(f"/operator/customers?q={part}").get_data(as_text=True)
    assert customer.email in page and customer.account_id in page
    assert "1,000.00 P" in page
    by_id = operator_client.get(f"/operator/customers?q={customer.account_id}").get_data(as_text=True)
    assert customer.email in by_id
    nothing = operator_client.get("/operator/customers?q=nobody-has-this-address").get_data(as_text=True)
    assert "No customer matches" in nothing
    fragment = operator_client.get(f"/operator/customers?q={part}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert customer.email in fragment and "<html" not in fragment


def test_customer_page_shows_balance_keys_ledger_requests_and_usage(operator_client, customer, gateway):
    assert call_api(gateway, customer.key)["status"] == 200
    wait_for_requests(gateway, customer.account_id, 1)
    page = operator_client.get(f"/operator/customers/{customer.account_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert customer.email in html
    assert "customer key" in html and customer.key not in html and customer.key[:9] in html
    assert "credit" in html                     # the ledger
    assert "deepseek-v3.2" in html              # the request log
    assert 'data-chart-kind="cost-by-model"' in html
    assert operator_client.get("/operator/customers/00000000-0000-4000-8000-00000000dead").status_code == 404
    assert operator_client.get("/operator/customers/not-an-id").status_code == 404


def test_suspending_refuses_the_keys_and_reactivating_restores_them(operator_client, portal_app, customer, gateway, operator):
    assert call_api(gateway, customer.key)["status"] == 200
    response = operator_client.post(f"/operator/customers/{customer.account_id}/status",
                                    data={"status": "suspended", "reason": "chargeback under review"})
    assert response.status_code == 303
    refused = wait_for_status(gateway, customer.key, 403)
    assert refused["status"] == 403
    assert "suspended" in refused["body"]["error"]["message"]
    entry = audit_rows(portal_app, "account.suspend", customer.account_id)[0]
    assert (entry.actor_email, entry.before, entry.after) == (operator.email, {"status": "active"}, {"status": "suspended"})
    assert entry.reason == "chargeback under review"
    page = operator_client.get(f"/operator/customers/{customer.account_id}").get_data(as_text=True)
    assert "Reactivate account" in page and "account.suspend" in page

    again = operator_client.post(f"/operator/customers/{customer.account_id}/status",
                                 data={"status": "suspended", "reason": "twice"})
    assert again.status_code == 422 and "already suspended" in again.get_data(as_text=True)

    assert operator_client.post(f"/operator/customers/{customer.account_id}/status",
                                data={"status": "active", "reason": "resolved"}).status_code == 303
    assert wait_for_status(gateway, customer.key, 200)["status"] == 200
    assert audit_rows(portal_app, "account.reactivate", customer.account_id)[0].after == {"status": "active"}


def test_a_status_change_needs_a_reason(operator_client, customer, gateway):
    response = operator_client.post(f"/operator/customers/{customer.account_id}/status",
                                    data={"status": "suspended", "reason": " "})
    assert response.status_code == 422
    assert "Say why" in response.get_data(as_text=True)
    assert gateway.internal("GET", f"/accounts/{customer.account_id}").json()["status"] == "active"


def test_an_adjustment_posts_one_ledger_entry_however_often_the_form_is_sent(operator_client, portal_app, customer, gateway):
    page = operator_client.get(f"/operator/customers/{customer.account_id}").get_data(as_text=True)
    key = form_key_in(page)
    form = {"amount_p": "-12.5", "reason": "refund of a duplicated request", "form_key": key}
    first = operator_client.post(f"/operator/customers/{customer.account_id}/adjust", data=form)
    second = operator_client.post(f"/operator/customers/{customer.account_id}/adjust", data=form)
    assert (first.status_code, second.status_code) == (303, 303)
    assert gateway.balance(customer.account_id) == 1_000_000_000 - 12_500_000
    entries = gateway.internal("GET", f"/accounts/{customer.account_id}/ledger").json()["data"]
    adjustments = [e for e in entries if e["kind"] == "adjustment"]
    assert len(adjustments) == 1
    assert adjustments[0]["amount_micro_p"] == -12_500_000
    assert "refund of a duplicated request" in adjustments[0]["description"]
    audits = audit_rows(portal_app, "balance.adjust", customer.account_id)
    assert len(audits) == 1
    assert audits[0].before == {"balance_micro_p": 1_000_000_000}
    assert audits[0].after["balance_micro_p"] == 1_000_000_000 - 12_500_000
    followed = operator_client.get(f"/operator/customers/{customer.account_id}").get_data(as_text=True)
    assert "already applied" in followed and "987.50 P" in followed
    # A fresh form is a new adjustment.
    fresh = form_key_in(followed)
    assert fresh != key
    assert operator_client.post(f"/operator/customers/{customer.account_id}/adjust",
                                data={"amount_p": "+500", "reason": "goodwill", "form_key": fresh}).status_code == 303
    assert gateway.balance(customer.account_id) == 1_000_000_000 - 12_500_000 + 500_000_000


def test_bad_adjustments_are_refused_with_a_message_and_move_nothing(operator_client, portal_app, customer, gateway):
    url = f"/operator/customers/{customer.account_id}/adjust"
    key = form_key_in(operator_client.get(f"/operator/customers/{customer.account_id}").get_data(as_text=True))
    cases = [
        ({"amount_p": "0", "reason": "r", "form_key": key}, "non-zero"),
        ({"amount_p": "lots", "reason": "r", "form_key": key}, "Enter a number of P"),
        ({"amount_p": "1.0000001", "reason": "r", "form_key": key}, "6 decimal places"),
        ({"amount_p": "10", "reason": "", "form_key": key}, "Say why"),
        ({"amount_p": "10", "reason": "r", "form_key": "not-a-key"}, "expired"),
        ({"amount_p": "99999999", "reason": "r", "form_key": key}, "at most 10,000,000 P"),
    ]
    for data, message in cases:
        response = operator_client.post(url, data=data)
        assert response.status_code == 422, data
        assert message in response.get_data(as_text=True), data
    assert gateway.balance(customer.account_id) == 1_000_000_000
    assert audit_rows(portal_app, "balance.adjust", customer.account_id) == []


def test_revoking_a_customer_key(operator_client, portal_app, customer, gateway):
    url = f"/operator/customers/{customer.account_id}/keys/{customer.key_id}/revoke"
    assert operator_client.post(url, data={"reason": "key leaked on GitHub"}).status_code == 303
    refused = wait_for_status(gateway, customer.key, 401)
    assert refused["body"]["error"]["code"] == "api_key_revoked"
    entry = audit_rows(portal_app, "key.revoke", customer.account_id)[0]
    assert entry.before["status"] == "active" and entry.after["status"] == "revoked"
    assert customer.key not in str(entry.before) + str(entry.after)
    # Revoking twice, or a key of another account, changes nothing and says so.
    again = operator_client.post(url, data={"reason": "again"}, follow_redirects=True)
    assert "already revoked" in again.get_data(as_text=True)
    other = operator_client.post(f"/operator/customers/{customer.account_id}/keys/00000000-0000-4000-8000-000000000009/revoke",
                                 data={"reason": "x"}, follow_redirects=True)
    assert "no such key" in other.get_data(as_text=True)
    assert len(audit_rows(portal_app, "key.revoke", customer.account_id)) == 1


def test_the_audit_log_page_lists_actions_newest_first(operator_client, customer, operator):
    operator_client.post(f"/operator/customers/{customer.account_id}/status", data={"status": "suspended", "reason": "one"})
    operator_client.post(f"/operator/customers/{customer.account_id}/status", data={"status": "active", "reason": "two"})
    html = operator_client.get("/operator/audit").get_data(as_text=True)
    assert html.index("account.reactivate") < html.index("account.suspend")
    assert operator.email in html


def test_concurrent_double_submit_adjusts_once(operator_client, portal_app, customer, gateway):
    from concurrent.futures import ThreadPoolExecutor

    key = form_key_in(operator_client.get(f"/operator/customers/{customer.account_id}").get_data(as_text=True))
    form = {"amount_p": "250", "reason": "double click", "form_key": key}
    url = f"/operator/customers/{customer.account_id}/adjust"
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: operator_client.post(url, data=form).status_code, range(4)))
    assert statuses == [303] * 4
    assert gateway.balance(customer.account_id) == 1_000_000_000 + 250_000_000
    entries = gateway.internal("GET", f"/accounts/{customer.account_id}/ledger").json()["data"]
    assert [e["amount_micro_p"] for e in entries if e["kind"] == "adjustment"] == [250_000_000]
    assert len(audit_rows(portal_app, "balance.adjust", customer.account_id)) == 1
