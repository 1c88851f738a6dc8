"""The Usage page: charts and tables from real gateway traffic, ranges, time zones, empty states."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timedelta, timezone

import time_machine

from fixtures.portal import call_api, login, wait_for_requests

HTMX = {"HX-Request": "true"}


def _chart(body: str, kind: str) -> dict:
    match = re.search(r"data-chart-kind=\"%s\" data-chart='([^']*)'" % kind, body)
    assert match, f"no {kind} chart in the page"
    return json.loads(html.unescape(match.group(1)))


def _signed_in(portal_app, user):
    client = portal_app.test_client()
    assert login(client, user.email, user.password).status_code == 303
    return client


def test_empty_states_for_a_new_account(logged_in_client):
    body = logged_in_client.get("/usage").get_data(as_text=True)
    assert "No usage data yet. Make API calls to see model breakdown." in body
    assert "No usage data yet." in body
    assert "data-chart-kind" not in body


def test_charts_and_tables_show_real_traffic(portal_app, gateway, funded_user):
    for _ in range(2):
        assert call_api(gateway, funded_user.key, "deepseek-v3.2")["status"] == 200
    assert call_api(gateway, funded_user.key, "glm-5")["status"] == 200
    logged = wait_for_requests(gateway, funded_user.user.account_id, 3)
    assert len(logged) == 3
    client = _signed_in(portal_app, funded_user.user)
    body = client.get("/usage").get_data(as_text=True)

    cost = _chart(body, "cost-by-model")
    assert set(cost["labels"]) == {"deepseek-v3.2", "glm-5"}
    expected = {}
    for row in logged:
        expected[row["model"]] = expected.get(row["model"], 0) + row["cost_micro_p"]
    assert dict(zip(cost["labels"], cost["cost_micro_p"])) == expected
    assert all(isinstance(v, int) for v in cost["cost_micro_p"])

    daily = _chart(body, "daily-usage")
    assert len(daily["days"]) == 7
    today = datetime.now(timezone.utc).date().isoformat()
    assert daily["days"][-1] == today
    by_model = {s["model"]: s for s in daily["series"]}
    assert by_model["deepseek-v3.2"]["requests"][-1] == 2
    assert by_model["glm-5"]["requests"][-1] == 1
    assert "test key" in body  # the by-key table names the key
    assert "Daily usage as a table" in body  # fallback for screen readers
    assert "<script>" not in body  # chart data travels in attributes, not inline script


def test_range_switch_returns_only_the_chart_panel(logged_in_client):
    fragment = logged_in_client.get("/usage?range=30d", headers=HTMX)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert "<html" not in body and body.lstrip().startswith('<div id="usage-panel"')
    assert 'class="seg active" aria-current="true">30d<' in body
    assert "HX-Request" in fragment.headers["Vary"]
    full = logged_in_client.get("/usage?range=30d").get_data(as_text=True)
    assert "<html" in full and 'id="usage-panel"' in full


def test_custom_range_and_its_errors(logged_in_client):
    good = logged_in_client.get("/usage?range=custom&start=2026-01-01&end=2026-01-31").get_data(as_text=True)
    assert "Jan 1 – Jan 31, 2026" in good
    reversed_range = logged_in_client.get("/usage?range=custom&start=2026-02-01&end=2026-01-01")
    assert reversed_range.status_code == 422
    assert "The start date must be on or before the end date." in reversed_range.get_data(as_text=True)
    garbage = logged_in_client.get("/usage?range=custom&start=yesterday&end=2026-01-01")
    assert "The start date must look like 2026-11-25." in garbage.get_data(as_text=True)
    too_long = logged_in_client.get("/usage?range=custom&start=2020-01-01&end=2026-01-01")
    assert "at most 366 days" in too_long.get_data(as_text=True)


def test_day_boundaries_follow_the_users_time_zone(portal_app, make_user):
    kathmandu = make_user(timezone="Asia/Kathmandu")  # UTC+05:45
    utc = make_user(timezone="UTC")
    with time_machine.travel(datetime(2026, 11, 25, 18, 14, tzinfo=timezone.utc), tick=False):
        # Signed in inside the travelled clock, so the session is never issued after "now".
        kathmandu_client, utc_client = _signed_in(portal_app, kathmandu), _signed_in(portal_app, utc)
        # 23:59 in Kathmandu: still the 25th there.
        assert "Nov 19 – Nov 25, 2026" in kathmandu_client.get("/usage").get_data(as_text=True)
    with time_machine.travel(datetime(2026, 11, 25, 18, 15, tzinfo=timezone.utc), tick=False):
        # 00:00 on the 26th in Kathmandu, still the 25th in UTC.
        assert "Nov 20 – Nov 26, 2026" in kathmandu_client.get("/usage").get_data(as_text=True)
        assert "Nov 19 – Nov 25, 2026" in utc_client.get("/usage").get_data(as_text=True)


def test_traffic_lands_on_the_local_day(portal_app, gateway, funded_user):
    """The same request is on different dates for a user at UTC+14 and at UTC-11."""
    assert call_api(gateway, funded_user.key)["status"] == 200
    wait_for_requests(gateway, funded_user.user.account_id, 1)
    client = _signed_in(portal_app, funded_user.user)
    now = datetime.now(timezone.utc)
    dates = {}
    for zone, offset in (("Pacific/Kiritimati", 14), ("Pacific/Pago_Pago", -11)):
        assert client.post("/settings/timezone", data={"timezone": zone}).status_code == 303
        assert gateway.internal("GET", f"/accounts/{funded_user.user.account_id}").json()["usage_tz"] == zone
        daily = _chart(client.get("/usage").get_data(as_text=True), "daily-usage")
        local_today = (now + timedelta(hours=offset)).date().isoformat()
        assert daily["days"][-1] == local_today
        series = daily["series"][0]
        dates[zone] = [day for day, n in zip(daily["days"], series["requests"]) if n]
        assert dates[zone] == [local_today]
    assert dates["Pacific/Kiritimati"] != dates["Pacific/Pago_Pago"]


def test_usage_needs_the_gateway(portal_app, down_portal_app, user):
    client = down_portal_app.test_client()
    assert login(client, user.email, user.password).status_code == 303
    response = client.get("/usage")
    assert response.status_code == 200
    assert "Usage service unavailable" in response.get_data(as_text=True)


def test_the_dashboard_moves_daily_sums_left_in_another_zone(portal_app, gateway, funded_user):
    """A zone change the gateway missed (it was down) is caught up on the next dashboard visit."""
    account_path = f"/accounts/{funded_user.user.account_id}"
    assert gateway.internal("PATCH", account_path, json={"usage_tz": "Asia/Tokyo"}).status_code == 200
    client = _signed_in(portal_app, funded_user.user)
    assert client.get("/dashboard").status_code == 200
    assert gateway.internal("GET", account_path).json()["usage_tz"] == "UTC"


def test_requests_refused_before_a_model_are_named_not_blank(portal_app, gateway, funded_user):
    import requests

    assert call_api(gateway, funded_user.key, "deepseek-v3.2")["status"] == 200
    refused = requests.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                            headers={"Authorization": f"Bearer {funded_user.key}"},
                            json={"messages": [{"role": "user", "content": "no model"}]})
    assert refused.status_code == 400
    logged = wait_for_requests(gateway, funded_user.user.account_id, 2)
    assert sorted(row["model"] for row in logged) == ["", "deepseek-v3.2"]
    body = _signed_in(portal_app, funded_user.user).get("/usage").get_data(as_text=True)
    by_model = body[body.index("<h2>By model</h2>"):body.index("<h2>By key</h2>")]
    assert '<code class="mono"></code>' not in by_model
    assert "Refused before a model was named" in by_model
    daily = _chart(body, "daily-usage")
    assert {series["model"] for series in daily["series"]} == {"deepseek-v3.2", "refused before a model was named"}
    assert "" not in _chart(body, "cost-by-model")["labels"]
