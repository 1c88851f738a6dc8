"""Who may open the console: operators only; customers get 403, visitors sign in first."""

from __future__ import annotations

import pytest

from fixtures.portal import login
from operator_helpers import enable_two_factor

MODEL = "deepseek-v3.2"
ACCOUNT = "00000000-0000-4000-8000-000000000000"
KEY = "00000000-0000-4000-8000-000000000001"

# Every console route, with a body a customer might send to act without the role.
ROUTES = [
    ("GET", "/operator/", None),
    ("GET", "/operator/customers?q=a", None),
    ("GET", f"/operator/customers/{ACCOUNT}", None),
    ("POST", f"/operator/customers/{ACCOUNT}/status", {"status": "suspended", "reason": "x"}),
    ("POST", f"/operator/customers/{ACCOUNT}/adjust", {"amount_p": "1000", "reason": "x", "form_key": KEY}),
    ("POST", f"/operator/customers/{ACCOUNT}/keys/{KEY}/revoke", {"reason": "x"}),
    ("GET", "/operator/support", None),
    ("GET", "/operator/support/1", None),
    ("POST", "/operator/support/1/reply", {"body": "hello there"}),
    ("POST", "/operator/support/1/state", {"state": "answered"}),
    ("GET", "/operator/catalog", None),
    ("POST", f"/operator/catalog/{MODEL}/price", {"input_price": "0", "output_price": "0", "reason": "x"}),
    ("POST", f"/operator/catalog/{MODEL}/switch", {"reason": "x"}),
    ("GET", "/operator/channels", None),
    ("POST", "/operator/channels/switch", {"channel": "deepseek:deepseek-chat", "reason": "x"}),
    ("POST", "/operator/channels/test", {"channel": "deepseek:deepseek-chat"}),
    ("POST", "/operator/provider-keys/deepseek", {"key": "sk-0123456789abcdef", "reason": "x"}),
    ("POST", "/operator/provider-keys/deepseek/delete", {"reason": "x"}),
    ("GET", "/operator/traffic", None),
    ("GET", "/operator/traffic/margin.csv", None),
    ("GET", "/operator/health", None),
    ("POST", "/operator/health/ledger-check", {}),
    ("GET", "/operator/audit", None),
]


def test_every_console_route_is_in_the_refusal_list(portal_app):
    covered = {path.split("?")[0] for _, path, _ in ROUTES}
    rules = [r for r in portal_app.url_map.iter_rules() if r.endpoint.startswith("operator.")]
    assert rules
    for rule in rules:
        example = (rule.rule.replace("<account_id>", ACCOUNT).replace("<key_id>", KEY)
                   .replace("<int:message_id>", "1").replace("<model_id>", MODEL)
                   .replace("<provider>", "deepseek"))
        assert example in covered, f"{rule.rule} is missing from ROUTES"


@pytest.mark.parametrize("method, path, data", ROUTES)
def test_customers_are_refused_every_console_route(customer_client, portal_app, method, path, data, gateway):
    before = gateway.internal("GET", "/admin/catalog").json()["changes"][:1]
    response = customer_client.open(path, method=method, data=data)
    assert response.status_code == 403
    assert "operators only" in response.get_data(as_text=True)
    # Nothing happened on the customer's behalf.
    assert gateway.internal("GET", "/admin/catalog").json()["changes"][:1] == before
    htmx = customer_client.open(path, method=method, data=data, headers={"HX-Request": "true"})
    assert htmx.status_code == 403


@pytest.mark.parametrize("method, path, data", ROUTES)
def test_visitors_are_sent_to_sign_in(portal_app, method, path, data):
    response = portal_app.test_client().open(path, method=method, data=data)
    assert response.status_code in (302, 303)
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("path", [p for m, p, _ in ROUTES
                                  if m == "GET" and "support/1" not in p and ACCOUNT not in p and ".csv" not in p])
def test_operators_open_every_console_page(operator_client, path):
    response = operator_client.get(path, follow_redirects=True)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert "Operator console" in response.get_data(as_text=True)


def test_the_console_link_shows_for_operators_only(operator_client, customer_client):
    assert "/operator/" in operator_client.get("/dashboard").get_data(as_text=True)
    assert "/operator/" not in customer_client.get("/dashboard").get_data(as_text=True)


def test_operators_without_two_factor_are_sent_to_enrolment(portal_app, make_user):
    ops = make_user(is_operator=True)
    client = portal_app.test_client()
    assert login(client, ops.email, ops.password).status_code == 303
    for path in ("/operator/customers", "/operator/audit"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["Location"] == "/settings/2fa"
    htmx = client.get("/operator/customers", headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"] == "/settings/2fa"
    enable_two_factor(portal_app, ops.id)
    assert client.get("/operator/customers").status_code == 200
