"""API keys: shown once then masked everywhere, limits and expiry, rename, revoke."""

from __future__ import annotations

import re
from datetime import date, timedelta

from fixtures.portal import call_api

HTMX = {"HX-Request": "true"}
KEY = re.compile(r"sama_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
PAGES = ["/dashboard", "/quickstart", "/keys", "/usage", "/requests", "/settings", "/docs", "/models"]


def _create(client, headers=None, **fields):
    data = {"name": "production", "spend_limit": "", "expires_on": ""}
    data.update(fields)
    return client.post("/keys", data=data, headers=headers or {})


def test_new_key_is_shown_once_then_only_masked(logged_in_client, gateway):
    response = _create(logged_in_client)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    keys = KEY.findall(body)
    assert len(keys) == 1
    full = keys[0]
    assert "it will not be shown again" in body
    assert 'hx-history="false"' in body
    assert response.headers["Cache-Control"] == "no-store"
    masked = f"{full[:9]}…{full[-4:]}"
    for path in PAGES:
        page = logged_in_client.get(path).get_data(as_text=True)
        assert full not in page, path
        assert not KEY.search(page), path
    listing = logged_in_client.get("/keys").get_data(as_text=True)
    assert masked in listing
    # The key really works against the gateway.
    assert call_api(gateway, full)["status"] in (200, 402)


def test_create_with_htmx_swaps_only_the_keys_section(logged_in_client):
    response = _create(logged_in_client, HTMX, name="from htmx")
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="keys-section">')
    assert "<html" not in body
    assert len(KEY.findall(body)) == 1


def test_spending_limit_and_expiry_reach_the_gateway(logged_in_client, gateway):
    tomorrow = date.today() + timedelta(days=30)
    _create(logged_in_client, name="limited", spend_limit="1,250.5", expires_on=tomorrow.isoformat())
    keys = gateway.internal("GET", f"/accounts/{logged_in_client.user.account_id}/keys").json()["data"]
    key = next(k for k in keys if k["name"] == "limited")
    assert key["spend_limit_micro_p"] == 1_250_500_000
    assert key["expires_at"].startswith((tomorrow + timedelta(days=1)).isoformat())
    listing = logged_in_client.get("/keys").get_data(as_text=True)
    assert "1,250.50 P" in listing


def test_key_form_errors(logged_in_client, gateway):
    cases = [
        ({"name": ""}, "Give the key a name"),
        ({"spend_limit": "lots"}, "Enter a number of P"),
        ({"spend_limit": "-5"}, "The limit must be more than 0 P."),
        ({"spend_limit": "0"}, "The limit must be more than 0 P."),
        ({"spend_limit": "0.0000001"}, "Use at most 6 decimal places."),
        ({"spend_limit": "999999999999"}, "The limit can be at most"),
        ({"expires_on": date.today().isoformat()}, "Pick a date after today."),
        ({"expires_on": "2020-01-01"}, "Pick a date after today."),
        ({"expires_on": "not a date"}, "Not a valid date value."),
        ({"expires_on": (date.today() + timedelta(days=3000)).isoformat()}, "within the next five years"),
    ]
    for fields, message in cases:
        response = _create(logged_in_client, **fields)
        assert response.status_code == 422, fields
        body = response.get_data(as_text=True)
        assert message in body, (fields, message)
        assert not KEY.search(body)
    keys = gateway.internal("GET", f"/accounts/{logged_in_client.user.account_id}/keys").json()["data"]
    assert keys == []


def test_rename_inline_and_without_javascript(logged_in_client, gateway):
    _create(logged_in_client, name="old name")
    key_id = gateway.internal("GET", f"/accounts/{logged_in_client.user.account_id}/keys").json()["data"][0]["id"]
    form = logged_in_client.get(f"/keys/{key_id}/rename", headers=HTMX).get_data(as_text=True)
    assert form.lstrip().startswith("<tr") and 'name="name"' in form and "<html" not in form
    row = logged_in_client.post(f"/keys/{key_id}/rename", data={"name": "new name"}, headers=HTMX)
    assert row.get_data(as_text=True).lstrip().startswith("<tr") and "new name" in row.get_data(as_text=True)
    page = logged_in_client.get(f"/keys/{key_id}/rename")
    assert "<html" in page.get_data(as_text=True)
    plain = logged_in_client.post(f"/keys/{key_id}/rename", data={"name": "plain name"})
    assert plain.status_code == 303 and plain.headers["Location"] == "/keys"
    assert "plain name" in logged_in_client.get("/keys").get_data(as_text=True)
    empty = logged_in_client.post(f"/keys/{key_id}/rename", data={"name": "  "}, headers=HTMX)
    assert "Give the key a name" in empty.get_data(as_text=True)


def test_revoke_asks_first_and_stops_the_key(logged_in_client, gateway):
    created = _create(logged_in_client, name="to revoke").get_data(as_text=True)
    full = KEY.search(created).group(0)
    key_id = gateway.internal("GET", f"/accounts/{logged_in_client.user.account_id}/keys").json()["data"][0]["id"]
    listing = logged_in_client.get("/keys").get_data(as_text=True)
    assert "hx-confirm=" in listing
    confirm = logged_in_client.get(f"/keys/{key_id}/revoke").get_data(as_text=True)
    assert "Revoke key?" in confirm and "cannot be undone" in confirm
    row = logged_in_client.post(f"/keys/{key_id}/revoke", headers=HTMX).get_data(as_text=True)
    assert "Revoked" in row and "<html" not in row
    assert call_api(gateway, full)["status"] == 401


def test_other_users_keys_are_not_reachable(logged_in_client, make_user, gateway):
    other = make_user()
    theirs = gateway.create_key(other.account_id, name="theirs")
    assert logged_in_client.get(f"/keys/{theirs['id']}/revoke").status_code == 404
    assert logged_in_client.post(f"/keys/{theirs['id']}/revoke").status_code == 404
    assert logged_in_client.post(f"/keys/{theirs['id']}/rename", data={"name": "mine"}).status_code == 404
    keys = gateway.internal("GET", f"/accounts/{other.account_id}/keys").json()["data"]
    assert keys[0]["name"] == "theirs" and keys[0]["status"] == "active"
