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
    assert call_api(gateway, customer.key, text="[[error:500]]")["status"] == 502
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
    from portal.operator import install

    if "operator" not in down_portal_app.blueprints:
        install(down_portal_app)
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
