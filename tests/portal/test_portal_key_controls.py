"""A key's controls in the portal: set at creation and on the key's own page, checked
inline (the IP box through htmx), refused with a message under the field, shown in the
Keys table, agreed with what the gateway then does, and its refusals in the request log."""

from __future__ import annotations

import html
import re
import time
from datetime import date, timedelta

import pytest
import requests

from fixtures.portal import call_api, login, wait_for_requests, wait_for_status
from portal.keys.controls import budget_is_spent, period_days
from portal.timeutil import parse_iso

HTMX = {"HX-Request": "true"}
TAG = re.compile(r"<[^>]+>")
BASE = {"name": "team", "spend_limit": "", "expires_on": "", "budget": "", "budget_period": "",
        "allowed_ips": "", "rpm_limit": "", "tpm_limit": ""}


def _text(page: str) -> str:
    return " ".join(html.unescape(TAG.sub(" ", page)).split())


def _keys(gateway, account_id: str) -> list[dict]:
    return gateway.internal("GET", f"/accounts/{account_id}/keys").json()["data"]


def _create(client, **fields):
    return client.post("/keys", data={**BASE, **fields})


def _row(page: str, key_id: str) -> str:
    match = re.search(rf'<tr id="key-{key_id}".*?</tr>', page, re.S)
    assert match, f"no row for {key_id}"
    return _text(match.group(0))


def test_a_key_is_created_with_every_control(logged_in_client, gateway):
    response = _create(logged_in_client, name="team", budget="25", budget_period="week",
                       allowed_models=["deepseek-v3.2", "claude-haiku-4.5"],
                       allowed_ips="10.0.0.0/8\n2001:DB8::/32, 192.0.2.1", rpm_limit="60", tpm_limit="100,000")
    assert response.status_code == 200, _text(response.get_data(as_text=True))[:500]
    page = response.get_data(as_text=True)
    assert "new-key-value" in page
    key = next(k for k in _keys(gateway, logged_in_client.user.account_id) if k["name"] == "team")
    assert (key["budget_micro_p"], key["budget_period"]) == (25_000_000, "week")
    assert key["allowed_models"] == ["deepseek-v3.2", "claude-haiku-4.5"]
    assert key["allowed_ips"] == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1/32"]
    assert (key["rpm_limit"], key["tpm_limit"]) == (60, 100_000)
    row = _row(page, key["id"])
    assert "Budget 0 P of 25.00 P this week" in row
    assert "2 models" in row and "3 IP ranges" in row and "60 RPM · 100,000 TPM" in row
    # A key without controls says so.
    _create(logged_in_client, name="plain")
    plain = next(k for k in _keys(gateway, logged_in_client.user.account_id) if k["name"] == "plain")
    assert "None" in _row(logged_in_client.get("/keys").get_data(as_text=True), plain["id"])


@pytest.mark.parametrize(("fields", "message"), [
    ({"allowed_ips": "10.0.0.1/33"}, "'10.0.0.1/33' is not an IP address or CIDR range."),
    ({"allowed_ips": "10.0.0.1/8"}, "'10.0.0.1/8' has bits set beyond its prefix"),
    ({"allowed_ips": "intranet"}, "'intranet' is not an IP address or CIDR range."),
    ({"budget": "25"}, "Choose when the budget resets"),
    ({"budget_period": "day"}, "Give the budget in P above"),
    ({"budget": "-3", "budget_period": "day"}, "The budget must be more than 0 P."),
    ({"budget_period": "year"}, "Choose daily, weekly or monthly."),
    ({"rpm_limit": "fast"}, "Enter a whole number, like 60."),
    ({"tpm_limit": "0"}, "Enter a number from 1 to"),
    ({"allowed_models": ["no-such-model"]}, "Unknown model: no-such-model."),
])
@pytest.mark.parametrize("headers", [{}, HTMX])
def test_bad_controls_are_refused_under_their_field(logged_in_client, gateway, fields, message, headers):
    response = logged_in_client.post("/keys", data={**BASE, "name": "refused", **fields}, headers=headers)
    page = response.get_data(as_text=True)
    assert response.status_code == (200 if headers else 422)
    assert message in html.unescape(page)
    assert re.search(r'class="field-error"[^>]*>[^<]*' + re.escape(message[:20]), html.unescape(page))
    assert ("<html" in page) is not bool(headers)
    assert "refused" not in {k["name"] for k in _keys(gateway, logged_in_client.user.account_id)}
    # What was typed stays in the form.
    if "allowed_ips" in fields:
        assert fields["allowed_ips"] in html.unescape(page)


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_the_ip_box_is_checked_inline(logged_in_client, headers):
    good = logged_in_client.post("/keys/check-ips?field=allowed_ips", data={"allowed_ips": "10.0.0.0/8\n::1"},
                                 headers=headers)
    assert good.status_code == 200
    body = good.get_data(as_text=True)
    assert "<html" not in body and 'id="allowed_ips-check"' in body
    assert "2 entries: 10.0.0.0/8, ::1/128" in body
    bad = logged_in_client.post("/keys/check-ips?field=allowed_ips", data={"allowed_ips": "10.0.0.0/8\n10.0.0.300"},
                                headers=headers).get_data(as_text=True)
    assert "field-error" in bad and "'10.0.0.300' is not an IP address or CIDR range." in html.unescape(bad)
    empty = logged_in_client.post("/keys/check-ips", data={"allowed_ips": ""}, headers=headers).get_data(as_text=True)
    assert "Any address may use this key." in empty
    # The page wires the box to the check; no inline script.
    page = logged_in_client.get("/keys").get_data(as_text=True)
    assert 'hx-post="/keys/check-ips?field=allowed_ips"' in page and "<script>" not in page


def test_the_model_picker_is_grouped_like_pricing(logged_in_client):
    page = logged_in_client.get("/keys").get_data(as_text=True)
    picker = page[page.index('class="model-picker'):]
    assert picker.index("Chinese Models") < picker.index("International Models")
    assert picker.index('value="deepseek-v3.2"') < picker.index("International Models") < picker.index('value="gpt-5.2"')


def test_the_keys_page_controls_reach_the_gateway(portal_app, funded_user, gateway):
    client = portal_app.test_client()
    assert login(client, funded_user.user.email, funded_user.user.password).status_code == 303
    page = client.get(f"/keys/{funded_user.key_id}")
    assert page.status_code == 200 and "Controls" in page.get_data(as_text=True)
    assert call_api(gateway, funded_user.key)["status"] == 200
    saved = client.post(f"/keys/{funded_user.key_id}/controls", headers=HTMX,
                        data={"budget": "", "budget_period": "", "allowed_models": ["claude-haiku-4.5"],
                              "allowed_ips": "", "rpm_limit": "", "tpm_limit": ""})
    fragment = saved.get_data(as_text=True)
    assert saved.status_code == 200 and "<html" not in fragment and 'id="controls-section"' in fragment
    assert "Saved." in fragment
    assert re.search(r'value="claude-haiku-4.5"\s+checked', fragment)
    refused = wait_for_status(gateway, funded_user.key, 403)
    assert refused["body"]["error"]["code"] == "model_not_allowed"
    # Without JavaScript: a redirect back to the key's page, which shows the change.
    plain = client.post(f"/keys/{funded_user.key_id}/controls",
                        data={"budget": "", "budget_period": "", "allowed_ips": "", "rpm_limit": "2", "tpm_limit": ""})
    assert plain.status_code == 303 and plain.headers["Location"] == f"/keys/{funded_user.key_id}"
    assert "2 RPM" in _text(client.get(f"/keys/{funded_user.key_id}").get_data(as_text=True))
    assert wait_for_status(gateway, funded_user.key, 200)["status"] == 200
    bad = client.post(f"/keys/{funded_user.key_id}/controls", headers=HTMX,
                      data={"allowed_ips": "10.0.0.0/80", "rpm_limit": "", "tpm_limit": "", "budget": "", "budget_period": ""})
    assert "'10.0.0.0/80' is not an IP address or CIDR range." in html.unescape(bad.get_data(as_text=True))
    assert next(k for k in _keys(gateway, funded_user.user.account_id) if k["id"] == funded_user.key_id)["rpm_limit"] == 2


def test_a_revoked_keys_controls_cannot_change(logged_in_client, gateway):
    _create(logged_in_client, name="gone")
    key = next(k for k in _keys(gateway, logged_in_client.user.account_id) if k["name"] == "gone")
    gateway.internal("DELETE", f"/accounts/{logged_in_client.user.account_id}/keys/{key['id']}")
    answer = logged_in_client.post(f"/keys/{key['id']}/controls", data={**BASE, "rpm_limit": "5"})
    assert answer.status_code == 409
    assert "revoked" in answer.get_data(as_text=True)
    other = logged_in_client.get(f"/keys/{'0' * 8}-0000-4000-8000-{'0' * 12}")
    assert other.status_code == 404


def test_the_key_page_shows_spend_by_day_for_the_period(portal_app, funded_user, gateway):
    for _ in range(3):
        assert call_api(gateway, funded_user.key)["status"] == 200
    wait_for_requests(gateway, funded_user.user.account_id, 3)
    gateway.internal("PATCH", f"/accounts/{funded_user.user.account_id}/keys/{funded_user.key_id}",
                     json={"budget_micro_p": 5_000_000, "budget_period": "month"})
    client = portal_app.test_client()
    assert login(client, funded_user.user.email, funded_user.user.password).status_code == 303
    page = _text(client.get(f"/keys/{funded_user.key_id}").get_data(as_text=True))
    key = next(k for k in _keys(gateway, funded_user.user.account_id) if k["id"] == funded_user.key_id)
    today = (parse_iso(key["last_used_at"])).date().isoformat()
    spent = key["budget_spent_micro_p"]
    assert spent > 0
    assert re.search(rf"{today} 3 \S+ [\d.,]+ P", page)
    assert "Budget this period" in page and "of 5.00 P this month" in page


def test_request_log_shows_the_controls_refusals_at_no_cost(portal_app, funded_user, gateway):
    account_id = funded_user.user.account_id
    gateway.internal("PATCH", f"/accounts/{account_id}/keys/{funded_user.key_id}",
                     json={"allowed_models": ["deepseek-v3.2"], "rpm_limit": 2})
    wait_for_status(gateway, funded_user.key, 200)
    assert call_api(gateway, funded_user.key, model="gpt-5.2")["status"] == 403
    while call_api(gateway, funded_user.key)["status"] != 429:
        pass
    fenced = gateway.create_key(account_id, name="fenced", allowed_ips=["192.0.2.0/24"])
    assert call_api(gateway, fenced["key"])["status"] == 403
    budget = gateway.create_key(account_id, name="budget", budget_micro_p=1, budget_period="day")
    assert call_api(gateway, budget["key"])["status"] == 402
    wanted = {"model_not_allowed", "rate_limited", "ip_not_allowed", "key_budget_exceeded"}
    deadline = time.monotonic() + 30
    while True:
        rows = wait_for_requests(gateway, account_id, 6)
        if wanted <= {row["error_class"] for row in rows}:
            break
        assert time.monotonic() < deadline, "the refusals were not logged"
        time.sleep(0.05)
    client = portal_app.test_client()
    assert login(client, funded_user.user.email, funded_user.user.password).status_code == 303
    page = client.get("/requests").get_data(as_text=True)
    for error_class, title in (("model_not_allowed", "not on the key's allow-list"), ("rate_limited", "per minute"),
                               ("ip_not_allowed", "caller's address"), ("key_budget_exceeded", "budget for this period")):
        assert error_class in page
        assert title in html.unescape(page)
    refused = [row for row in rows if row["error_class"]]
    assert {row["cost_micro_p"] for row in refused} == {0}


def test_a_spent_budget_shows_until_the_reset(make_user, portal_app, gateway):
    """The Keys table marks a key whose budget for the period is spent, with when it resets."""
    user = make_user(timezone="UTC")
    gateway.internal("POST", f"/accounts/{user.account_id}/ledger", json={
        "kind": "credit", "amount_micro_p": 100_000_000, "idempotency_key": f"test-{user.account_id}"})
    key = gateway.create_key(user.account_id, name="daily")
    assert call_api(gateway, key["key"])["status"] == 200
    wait_for_requests(gateway, user.account_id, 1)
    limited = gateway.internal("PATCH", f"/accounts/{user.account_id}/keys/{key['id']}",
                               json={"budget_micro_p": 1_000, "budget_period": "day"}).json()
    assert limited["budget_spent_micro_p"] >= 1_000
    resets = parse_iso(limited["budget_resets_at"])
    client = portal_app.test_client()
    assert login(client, user.email, user.password).status_code == 303
    row = _row(client.get("/keys").get_data(as_text=True), key["id"])
    assert "Budget spent" in row and f"Refused until {resets:%a %-d %b} 00:00" in row
    assert wait_for_status(gateway, key["key"], 402)["status"] == 402
    # Past the reset the same key reads as a new period, not spent.
    assert budget_is_spent(limited, resets - timedelta(seconds=1))
    assert not budget_is_spent(limited, resets)


@pytest.mark.parametrize(("period", "resets_at", "today", "days"), [
    ("day", "2026-03-30T00:00:00Z", date(2026, 3, 29), (date(2026, 3, 29), date(2026, 3, 29))),
    ("week", "2026-03-30T00:00:00Z", date(2026, 3, 25), (date(2026, 3, 23), date(2026, 3, 25))),
    ("month", "2026-04-01T00:00:00Z", date(2026, 3, 15), (date(2026, 3, 1), date(2026, 3, 15))),
])
def test_the_key_page_charts_the_budgets_own_period(period, resets_at, today, days):
    key = {"budget_period": period, "budget_resets_at": resets_at}
    assert period_days(key, "UTC", today) == days
    assert period_days({"budget_period": None, "budget_resets_at": None}, "UTC", today) is None


def test_the_gateway_refuses_a_call_from_outside_the_portals_allow_list(logged_in_client, gateway):
    _create(logged_in_client, name="office", allowed_ips="198.51.100.0/24")
    page = logged_in_client.get("/keys").get_data(as_text=True)
    key = next(k for k in _keys(gateway, logged_in_client.user.account_id) if k["name"] == "office")
    assert "1 IP range" in _row(page, key["id"])
    full = re.search(r'id="new-key-value"[^>]*>([^<]+)<', _create(logged_in_client, name="office2",
                                                                 allowed_ips="198.51.100.0/24").get_data(as_text=True))
    listed = requests.get(f"{gateway.url}/v1/models", timeout=30, headers={"Authorization": f"Bearer {full.group(1)}"})
    assert listed.status_code == 403 and listed.json()["error"]["code"] == "ip_not_allowed"
