"""Changing a key's spending limit and expiry after creation: inline with htmx and as a
plain page, validated like the create form, refused for revoked keys, and agreed with
what the gateway then does with the key."""

from __future__ import annotations

import html
import re
import time
from datetime import date, datetime, timedelta, timezone

import pytest

from fixtures.portal import call_api, login, wait_for_status
from portal.keys.forms import end_of_day_utc, last_day, limit_text
from portal.money import parse_p
from portal.timeutil import today_in

HTMX = {"HX-Request": "true"}
CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
TAG = re.compile(r"<[^>]+>")


def _keys(gateway, account_id: str) -> dict[str, dict]:
    data = gateway.internal("GET", f"/accounts/{account_id}/keys").json()["data"]
    return {k["id"]: k for k in data}


def _key(gateway, account_id: str, key_id: str) -> dict:
    return _keys(gateway, account_id)[key_id]


def _new_key(client, gateway, **fields) -> str:
    """A key created through the portal's own form; its id."""
    data = {"name": "production", "spend_limit": "", "expires_on": ""}
    data.update(fields)
    response = client.post("/keys", data=data)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    keys = _keys(gateway, client.user.account_id)
    return next(k["id"] for k in keys.values() if k["name"] == data["name"])


def _save(client, key_id: str, headers=None, **fields):
    return client.post(f"/keys/{key_id}/limits", data=fields, headers=headers or {})


def _cells(row_html: str) -> dict[str, str]:
    """The visible text of a key row's cells, by column."""
    names = ["name", "key", "status", "spent", "last_used", "expires", "controls", "actions"]
    texts = [" ".join(html.unescape(TAG.sub(" ", cell)).split()) for cell in CELL.findall(row_html)]
    return dict(zip(names, texts))


def _row_in(page: str, key_id: str) -> str:
    match = re.search(rf'<tr id="key-{key_id}".*?</tr>', page, re.S)
    assert match, f"no row for {key_id}"
    return match.group(0)


def _input_value(page: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
    assert match, f"no {name} input"
    value = re.search(r'value="([^"]*)"', match.group(0))
    return html.unescape(value.group(1)) if value else ""


@pytest.fixture
def funded_client(portal_app, funded_user):
    """A client signed in as a user with 1,000 P and one key (``client.key``, ``client.key_id``)."""
    client = portal_app.test_client()
    assert login(client, funded_user.user.email, funded_user.user.password).status_code == 303
    client.user = funded_user.user
    client.key = funded_user.key
    client.key_id = funded_user.key_id
    return client


# -- saving ---------------------------------------------------------------------------

def test_inline_edit_swaps_the_row_and_reaches_the_gateway(logged_in_client, gateway):
    key_id = _new_key(logged_in_client, gateway)
    form = logged_in_client.get(f"/keys/{key_id}/limits", headers=HTMX).get_data(as_text=True)
    assert form.lstrip().startswith(f'<tr id="key-{key_id}"') and "<html" not in form
    assert 'name="spend_limit"' in form and 'name="expires_on"' in form
    assert f'hx-get="/keys/{key_id}/row"' in form  # Cancel restores the row
    assert "<script" not in form and "style=" not in form

    day = date.today() + timedelta(days=45)
    response = _save(logged_in_client, key_id, HTMX, spend_limit="2,500.25", expires_on=day.isoformat())
    row = response.get_data(as_text=True)
    assert response.status_code == 200
    assert row.lstrip().startswith(f'<tr id="key-{key_id}"') and "<html" not in row
    cells = _cells(row)
    assert cells["spent"] == "0 P / 2,500.25 P"
    assert cells["expires"] == day.isoformat()
    assert cells["status"] == "Active"
    key = _key(gateway, logged_in_client.user.account_id, key_id)
    assert key["spend_limit_micro_p"] == 2_500_250_000
    assert key["expires_at"] == end_of_day_utc(day, "UTC") == f"{day + timedelta(days=1)}T00:00:00Z"


def test_full_page_without_javascript_saves_and_redirects(logged_in_client, gateway):
    key_id = _new_key(logged_in_client, gateway, name="plain")
    page = logged_in_client.get(f"/keys/{key_id}/limits")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)

    day = date.today() + timedelta(days=10)
    saved = _save(logged_in_client, key_id, spend_limit="75", expires_on=day.isoformat())
    assert saved.status_code == 303 and saved.headers["Location"] == "/keys"
    listing = logged_in_client.get("/keys").get_data(as_text=True)
    assert f"“plain” now has a spending limit of 75.00 P and works until the end of {day} (UTC)." \
        in html.unescape(listing)
    cells = _cells(_row_in(listing, key_id))
    assert cells["spent"] == "0 P / 75.00 P" and cells["expires"] == day.isoformat()
    key = _key(gateway, logged_in_client.user.account_id, key_id)
    assert key["spend_limit_micro_p"] == 75_000_000
    assert key["expires_at"] == end_of_day_utc(day, "UTC")


def test_form_is_prefilled_with_the_current_limit_and_day(logged_in_client, gateway):
    day = date.today() + timedelta(days=20)
    key_id = _new_key(logged_in_client, gateway, spend_limit="1,250.5", expires_on=day.isoformat())
    for headers in (HTMX, {}):
        form = logged_in_client.get(f"/keys/{key_id}/limits", headers=headers).get_data(as_text=True)
        assert _input_value(form, "spend_limit") == "1,250.5"
        assert _input_value(form, "expires_on") == day.isoformat()


def test_clearing_both_fields_removes_limit_and_expiry(logged_in_client, gateway):
    day = date.today() + timedelta(days=5)
    key_id = _new_key(logged_in_client, gateway, spend_limit="10", expires_on=day.isoformat())
    row = _save(logged_in_client, key_id, HTMX, spend_limit="", expires_on="").get_data(as_text=True)
    key = _key(gateway, logged_in_client.user.account_id, key_id)
    assert key["spend_limit_micro_p"] is None and key["expires_at"] is None
    cells = _cells(row)
    assert cells["spent"] == "0 P / no limit"
    assert cells["expires"] == "Never"


def test_raising_and_lowering_the_limit(logged_in_client, gateway):
    key_id = _new_key(logged_in_client, gateway, spend_limit="100")
    _save(logged_in_client, key_id, spend_limit="5000", expires_on="")
    assert _key(gateway, logged_in_client.user.account_id, key_id)["spend_limit_micro_p"] == 5_000_000_000
    _save(logged_in_client, key_id, spend_limit="0.5", expires_on="")
    assert _key(gateway, logged_in_client.user.account_id, key_id)["spend_limit_micro_p"] == 500_000


# -- bad input ------------------------------------------------------------------------

FAR = (date.today() + timedelta(days=3000)).isoformat()
INVALID = [
    ({"spend_limit": "lots"}, "Enter a number of P"),
    ({"spend_limit": "0"}, "The limit must be more than 0 P."),
    ({"spend_limit": "-5"}, "The limit must be more than 0 P."),
    ({"spend_limit": "0.0000001"}, "Use at most 6 decimal places."),
    ({"spend_limit": "999999999999"}, "The limit can be at most 100,000,000 P."),
    ({"expires_on": "2020-01-01"}, "Pick a date after today."),
    ({"expires_on": "not a date"}, "Not a valid date value."),
    ({"expires_on": FAR}, "Pick a date within the next five years."),
]


@pytest.mark.parametrize(("fields", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_input_is_refused_and_changes_nothing(logged_in_client, gateway, fields, message):
    day = date.today() + timedelta(days=30)
    key_id = _new_key(logged_in_client, gateway, spend_limit="40", expires_on=day.isoformat())
    before = _key(gateway, logged_in_client.user.account_id, key_id)
    data = {"spend_limit": "40", "expires_on": day.isoformat(), **fields}

    plain = _save(logged_in_client, key_id, **data)
    assert plain.status_code == 422
    assert message in html.unescape(plain.get_data(as_text=True))

    inline = _save(logged_in_client, key_id, HTMX, **data).get_data(as_text=True)
    assert inline.lstrip().startswith(f'<tr id="key-{key_id}"') and message in html.unescape(inline)
    # What the user typed is still in the form.
    assert _input_value(inline, "spend_limit") == data["spend_limit"]
    assert _input_value(inline, "expires_on") == data["expires_on"]
    assert 'aria-invalid="true"' in inline

    assert _key(gateway, logged_in_client.user.account_id, key_id) == before


def test_today_in_the_users_zone_is_not_a_future_day(make_user, portal_app, gateway):
    user = make_user(timezone="Pacific/Kiritimati")
    client = portal_app.test_client()
    login(client, user.email)
    client.user = user
    key_id = _new_key(client, gateway)
    response = _save(client, key_id, spend_limit="", expires_on=today_in("Pacific/Kiritimati").isoformat())
    assert response.status_code == 422 and "Pick a date after today." in response.get_data(as_text=True)
    assert _key(gateway, user.account_id, key_id)["expires_at"] is None


def test_gateway_refusal_is_shown_in_the_form_and_keeps_the_input(logged_in_client, gateway, monkeypatch):
    from portal.gateway_client import GatewayClient, GatewayError

    key_id = _new_key(logged_in_client, gateway, spend_limit="40")

    def refuse(self, account_id, key_id, **changes):
        raise GatewayError(422, "expires_at must be in the future.", "invalid_field")

    monkeypatch.setattr(GatewayClient, "update_key", refuse)
    day = (date.today() + timedelta(days=3)).isoformat()
    plain = _save(logged_in_client, key_id, spend_limit="12.5", expires_on=day)
    body = plain.get_data(as_text=True)
    assert plain.status_code == 422 and "expires_at must be in the future." in body
    assert _input_value(body, "spend_limit") == "12.5" and _input_value(body, "expires_on") == day
    monkeypatch.undo()
    assert _key(gateway, logged_in_client.user.account_id, key_id)["spend_limit_micro_p"] == 40_000_000


def test_usage_service_down_while_saving_keeps_the_input(logged_in_client, gateway, monkeypatch):
    from portal.gateway_client import GatewayClient, GatewayUnavailable

    key_id = _new_key(logged_in_client, gateway)

    def down(self, account_id, key_id, **changes):
        raise GatewayUnavailable("gateway unreachable (ConnectionError)")

    monkeypatch.setattr(GatewayClient, "update_key", down)
    response = _save(logged_in_client, key_id, spend_limit="99", expires_on="")
    body = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "usage service is unavailable" in body and _input_value(body, "spend_limit") == "99"


# -- what the gateway then does with the key ------------------------------------------

def test_limit_below_what_the_key_spent_stops_it_and_says_so(funded_client, gateway):
    account_id, key_id = funded_client.user.account_id, funded_client.key_id
    assert call_api(gateway, funded_client.key)["status"] == 200
    deadline = time.monotonic() + 30
    while _key(gateway, account_id, key_id)["spent_micro_p"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    spent = _key(gateway, account_id, key_id)["spent_micro_p"]
    assert spent > 0

    form = funded_client.get(f"/keys/{key_id}/limits").get_data(as_text=True)
    assert "a limit at or below that stops the key at once" in form

    # The gateway accepts a limit below the spend; the key is then refused.
    saved = _save(funded_client, key_id, spend_limit="0.000001", expires_on="")
    assert saved.status_code == 303
    assert _key(gateway, account_id, key_id)["spend_limit_micro_p"] == 1
    listing = html.unescape(funded_client.get("/keys").get_data(as_text=True))
    assert "which reaches its limit: requests with it are refused until you raise or remove the limit." in listing
    assert _cells(_row_in(listing, key_id))["status"] == "Limit reached Refused until the limit is raised or removed."
    refused = wait_for_status(gateway, funded_client.key, 402)
    assert refused["status"] == 402
    assert refused["body"]["error"]["code"] == "key_spend_limit_reached"

    # Raising it again (inline) makes the key work at once.
    row = _save(funded_client, key_id, HTMX, spend_limit="500", expires_on="").get_data(as_text=True)
    assert _cells(row)["status"] == "Active"
    assert wait_for_status(gateway, funded_client.key, 200)["status"] == 200


def test_expired_key_gets_a_new_day_and_works_again(funded_client, gateway, gateway_db):
    from gateway.db import api_keys, utcnow

    account_id, key_id = funded_client.user.account_id, funded_client.key_id
    past = utcnow() - timedelta(hours=1)
    gateway_db.transaction_sync(lambda conn: conn.execute(
        api_keys.update().where(api_keys.c.id == key_id).values(expires_at=past, updated_at=utcnow())))
    assert wait_for_status(gateway, funded_client.key, 401)["body"]["error"]["code"] == "api_key_expired"

    listing = funded_client.get("/keys").get_data(as_text=True)
    assert _cells(_row_in(listing, key_id))["status"] == "Expired"
    assert f"/keys/{key_id}/limits" in listing
    form = funded_client.get(f"/keys/{key_id}/limits", headers=HTMX).get_data(as_text=True)
    assert "Pick a later day to make it work again" in form

    # Changing only the limit keeps the (past) day as it is: accepted, and still expired.
    kept_day = _input_value(form, "expires_on")
    row = _save(funded_client, key_id, HTMX, spend_limit="300", expires_on=kept_day).get_data(as_text=True)
    assert _cells(row)["status"] == "Expired"
    key = _key(gateway, account_id, key_id)
    assert key["spend_limit_micro_p"] == 300_000_000
    assert datetime.fromisoformat(key["expires_at"].replace("Z", "+00:00")) == past

    day = date.today() + timedelta(days=7)
    row = _save(funded_client, key_id, HTMX, spend_limit="300", expires_on=day.isoformat()).get_data(as_text=True)
    assert _cells(row)["status"] == "Active" and _cells(row)["expires"] == day.isoformat()
    assert wait_for_status(gateway, funded_client.key, 200)["status"] == 200


# -- who may edit what ----------------------------------------------------------------

def test_revoked_key_cannot_be_edited(logged_in_client, gateway):
    key_id = _new_key(logged_in_client, gateway, spend_limit="10")
    account_id = logged_in_client.user.account_id
    assert gateway.internal("DELETE", f"/accounts/{account_id}/keys/{key_id}").status_code == 200
    before = _key(gateway, account_id, key_id)

    listing = logged_in_client.get("/keys").get_data(as_text=True)
    assert f"/keys/{key_id}/limits" not in _row_in(listing, key_id)
    page = logged_in_client.get(f"/keys/{key_id}/limits")
    assert page.status_code == 303 and page.headers["Location"] == "/keys"
    posted = _save(logged_in_client, key_id, spend_limit="999", expires_on="")
    assert posted.status_code == 303 and posted.headers["Location"] == "/keys"
    assert "is revoked; its limits can no longer change." in html.unescape(
        logged_in_client.get("/keys").get_data(as_text=True))
    for response in (logged_in_client.get(f"/keys/{key_id}/limits", headers=HTMX),
                     _save(logged_in_client, key_id, HTMX, spend_limit="999", expires_on="")):
        row = response.get_data(as_text=True)
        assert row.lstrip().startswith(f'<tr id="key-{key_id}"') and _cells(row)["status"] == "Revoked"
        assert 'name="spend_limit"' not in row
    assert _key(gateway, account_id, key_id) == before


def test_another_users_key_is_not_found(logged_in_client, make_user, gateway):
    other = make_user()
    theirs = gateway.create_key(other.account_id, name="theirs", spend_limit_micro_p=5_000_000)
    assert logged_in_client.get(f"/keys/{theirs['id']}/limits").status_code == 404
    assert logged_in_client.get(f"/keys/{theirs['id']}/limits", headers=HTMX).status_code == 404
    assert _save(logged_in_client, theirs["id"], spend_limit="", expires_on="").status_code == 404
    key = _key(gateway, other.account_id, theirs["id"])
    assert key["spend_limit_micro_p"] == 5_000_000 and key["expires_at"] is None


def test_row_offers_rename_limits_revoke(logged_in_client, gateway):
    key_id = _new_key(logged_in_client, gateway, name="actions")
    row = _row_in(logged_in_client.get("/keys").get_data(as_text=True), key_id)
    assert _cells(row)["actions"] == "Rename Limits Revoke"
    assert f'href="/keys/{key_id}/limits"' in row and f'hx-get="/keys/{key_id}/limits"' in row
    assert 'aria-label="Edit limits of “actions”"' in row


# -- dates in zones far from UTC --------------------------------------------------------

@pytest.mark.parametrize("tz", ["Pacific/Kiritimati", "America/Los_Angeles", "Asia/Kathmandu"])
def test_chosen_day_round_trips_in_the_users_zone(make_user, portal_app, gateway, tz):
    user = make_user(timezone=tz)
    client = portal_app.test_client()
    login(client, user.email)
    client.user = user
    day = today_in(tz) + timedelta(days=30)
    key_id = _new_key(client, gateway, expires_on=day.isoformat())
    expires_at = _key(gateway, user.account_id, key_id)["expires_at"]
    assert expires_at == end_of_day_utc(day, tz)

    form = client.get(f"/keys/{key_id}/limits").get_data(as_text=True)
    assert _input_value(form, "expires_on") == day.isoformat()
    assert _cells(_row_in(client.get("/keys").get_data(as_text=True), key_id))["expires"] == day.isoformat()

    # Saving the form as shown leaves the expiry exactly where it was.
    _save(client, key_id, spend_limit="", expires_on=day.isoformat())
    assert _key(gateway, user.account_id, key_id)["expires_at"] == expires_at

    later = day + timedelta(days=1)
    row = _save(client, key_id, HTMX, spend_limit="", expires_on=later.isoformat()).get_data(as_text=True)
    assert _cells(row)["expires"] == later.isoformat()
    assert _key(gateway, user.account_id, key_id)["expires_at"] == end_of_day_utc(later, tz)


@pytest.mark.parametrize(("day", "tz"), [
    (date(2026, 12, 31), "Pacific/Kiritimati"),
    (date(2026, 3, 7), "America/Los_Angeles"),   # the night before clocks go forward
    (date(2026, 10, 31), "America/Los_Angeles"),  # the night before clocks go back
    (date(2026, 9, 5), "America/Santiago"),       # midnight itself is skipped by DST
    (date(2026, 6, 1), "Asia/Kathmandu"),
])
def test_last_day_inverts_end_of_day(day, tz):
    assert last_day(end_of_day_utc(day, tz), tz) == day


def test_last_day_of_an_expiry_set_at_another_time_of_day():
    # 15:30 UTC is 07:30 or 08:30 in Los Angeles: the key still works part of that day.
    assert last_day("2026-12-10T15:30:00Z", "America/Los_Angeles") == date(2026, 12, 10)
    assert last_day(None, "UTC") is None


@pytest.mark.parametrize("micro_p", [1, 500_000, 75_000_000, 1_250_500_000, 100_000_000_000_000, 10**15])
def test_limit_text_reads_back_exactly(micro_p):
    assert parse_p(limit_text(micro_p)) == micro_p
    assert "E" not in limit_text(micro_p)
    assert limit_text(None) == ""


def test_limit_text_looks_like_what_people_type():
    assert limit_text(1_250_500_000) == "1,250.5"
    assert limit_text(100_000_000_000_000) == "100,000,000"
    assert limit_text(1) == "0.000001"


def test_utc_instant_helpers_agree_with_the_gateway_format():
    # The gateway answers second-precision UTC times with a Z; the form sends the same shape.
    assert end_of_day_utc(date(2026, 1, 1), "UTC") == "2026-01-02T00:00:00Z"
    assert datetime.fromisoformat(end_of_day_utc(date(2026, 1, 1), "Asia/Kathmandu").replace("Z", "+00:00")) == \
        datetime(2026, 1, 1, 18, 15, tzinfo=timezone.utc)
