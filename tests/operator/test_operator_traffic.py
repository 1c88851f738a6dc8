"""Traffic, health and the command line: all customers' requests, money per day, providers, gateway state."""

from __future__ import annotations

import uuid

from fixtures.portal import call_api, wait_for_requests
from operator_helpers import audit_rows, enable_two_factor, sign_in_with_code


def test_traffic_lists_every_customer_and_filters_by_customer_and_provider(operator_client, customer, make_user, gateway):
    other = make_user(timezone="UTC")
    gateway.internal("POST", f"/accounts/{other.account_id}/ledger", json={
        "kind": "credit", "amount_micro_p": 1_000_000_000, "idempotency_key": f"op-{uuid.uuid4()}"})
    other_key = gateway.create_key(other.account_id)["key"]
    assert call_api(gateway, customer.key)["status"] == 200
    assert call_api(gateway, other_key, model="claude-haiku-4.5")["status"] == 200
    assert call_api(gateway, customer.key, text="[[error:500]]")["status"] == 500
    wait_for_requests(gateway, customer.account_id, 2)
    wait_for_requests(gateway, other.account_id, 1)

    everyone = operator_client.get("/operator/traffic").get_data(as_text=True)
    assert customer.email in everyone and other.email in everyone
    assert 'data-provider="deepseek"' in everyone and 'data-provider="anthropic"' in everyone

    mine = operator_client.get(f"/operator/traffic?account_id={customer.account_id}",
                               headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in mine and customer.email in mine and other.email not in mine
    anthropic = operator_client.get("/operator/traffic?provider=anthropic&status=ok",
                                    headers={"HX-Request": "true"}).get_data(as_text=True)
    assert other.email in anthropic and customer.email not in anthropic
    failed = operator_client.get(f"/operator/traffic?account_id={customer.account_id}&status=error",
                                 headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "upstream_http_500" in failed

    bad = operator_client.get("/operator/traffic?account_id=nope&provider=%3Cscript%3E").get_data(as_text=True)
    assert "The customer must be an account id." in bad and "Unknown provider." in bad


def test_traffic_shows_revenue_and_spend(operator_client, customer):
    html = operator_client.get("/operator/traffic?range=7d").get_data(as_text=True)
    assert 'id="total-topups"' in html
    # The customer fixture's 1,000 P top-up landed today, so the total is at least that.
    topups = html.split('id="total-topups">')[1].split(" P<")[0].replace(",", "")
    assert float(topups) >= 1000


def test_health_shows_the_gateway_state(operator_client, gateway):
    html = operator_client.get("/operator/health").get_data(as_text=True)
    version = gateway.internal("GET", "/health").json()["version"]
    assert 'id="gateway-reachable">reachable' in html and version in html
    assert 'id="queue-depth">' in html
    backend = "postgresql" if gateway.env["GATEWAY_DATABASE_URL"].startswith("postgresql") else "sqlite"
    assert f'id="gateway-database">{backend}<' in html
    assert 'id="portal-database">' in html


def test_console_pages_render_when_the_gateway_is_down(down_portal_app, make_user):
    ops = make_user(is_operator=True)
    secret = enable_two_factor(down_portal_app, ops.id)
    client = down_portal_app.test_client()
    sign_in_with_code(client, ops.email, ops.password, secret)
    health = client.get("/operator/health")
    assert health.status_code == 200 and 'id="gateway-reachable">unreachable' in health.get_data(as_text=True)
    for path in ("/operator/customers", "/operator/traffic", "/operator/catalog",
                 "/operator/customers/00000000-0000-4000-8000-000000000000"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "unavailable" in response.get_data(as_text=True), path


def test_create_operator_command(portal_app, make_user):
    user = make_user()
    runner = portal_app.test_cli_runner()
    result = runner.invoke(args=["create-operator", user.email.upper()])
    assert result.exit_code == 0, result.output
    assert "is now an operator" in result.output
    from portal.extensions import db
    from portal.models import User

    with portal_app.app_context():
        assert db.session.get(User, user.id).is_operator is True
    entry = audit_rows(portal_app, "user.make_operator", str(user.id), "user")[0]
    assert entry.actor_email == "command line" and entry.after == {"is_operator": True}
    again = runner.invoke(args=["create-operator", user.email])
    assert again.exit_code != 0 and "already an operator" in again.output
    missing = runner.invoke(args=["create-operator", "nobody@example.com"])
    assert missing.exit_code != 0 and "sign up first" in missing.output


def test_traffic_pages_further_rows_with_htmx(operator_client, gateway_db):
    import re
    from datetime import datetime, timedelta, timezone

    from gateway.auth import create_key
    from gateway.accounting.ledger import create_account
    from gateway.accounting.metering import RequestRecord, write_batch

    email = f"paged-{uuid.uuid4().hex[:8]}@example.com"

    def work(conn):
        account, _ = create_account(conn, email, None)
        _, key = create_key(conn, account.id, "k")
        start = datetime.now(timezone.utc) - timedelta(minutes=30)
        write_batch(conn, [(RequestRecord(
            request_id=f"req-{uuid.uuid4()}", account_id=account.id, key_id=key.id, model="glm-5", provider="zhipu",
            endpoint="/v1/chat/completions", stream=False, input_tokens=i, output_tokens=1, cost_micro_p=0,
            latency_ms=10, ttft_ms=None, status=200, error_class=None, estimated=False,
            created_at=start + timedelta(seconds=i)), None) for i in range(60)])
        return account.id

    account_id = gateway_db.transaction_sync(work)
    first = operator_client.get(f"/operator/traffic?account_id={account_id}").get_data(as_text=True)
    assert first.count(email) == 50
    link = re.search(r'hx-get="(/operator/traffic\?[^"]+cursor=[^"]+)"', first).group(1).replace("&amp;", "&")
    more = operator_client.get(link, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert more.count(email) == 10 and "<table" not in more and "Load more" not in more
    plain = operator_client.get(link).get_data(as_text=True)
    assert "<html" in plain and plain.count(email) == 10


def test_refused_traffic_filters_stay_in_the_filter_bar(operator_client):
    body = operator_client.get("/operator/traffic?account_id=acct-42&start=2026-11-20&end=2026-11-10"
                               "&status=error").get_data(as_text=True)
    assert "The customer must be an account id." in body
    assert "The from date must be on or before the to date." in body
    assert 'id="f-account" name="account_id" value="acct-42"' in body
    assert 'id="f-start" type="date" name="start" value="2026-11-20"' in body
    assert 'id="f-end" type="date" name="end" value="2026-11-10"' in body
    assert '<option value="error" selected>' in body


def test_traffic_shows_and_filters_flagged_usage(operator_client, customer, gateway):
    # The upstream claims more output than the bound it was sent: charged at the bound, flagged.
    assert call_api(gateway, customer.key, text="[[usage:10:999999]] flag me")["status"] == 200
    assert call_api(gateway, customer.key)["status"] == 200
    wait_for_requests(gateway, customer.account_id, 2)
    every = operator_client.get(f"/operator/traffic?account_id={customer.account_id}",
                                headers={"HX-Request": "true"}).get_data(as_text=True)
    row = '<td class="nowrap">'
    assert every.count(row) == 2 and every.count(">flagged</span>") == 1
    assert "output above bound" in every
    flagged = operator_client.get(f"/operator/traffic?account_id={customer.account_id}&flagged=true",
                                  headers={"HX-Request": "true"}).get_data(as_text=True)
    assert flagged.count(">flagged</span>") == 1 and flagged.count(row) == 1
    page = operator_client.get("/operator/traffic?flagged=true").get_data(as_text=True)
    assert '<option value="true" selected>Flagged usage only</option>' in page
