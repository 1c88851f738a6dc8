"""Team members through a real gateway process: keys that name their member, listing one
member's keys, revoking every key of a member at once on every process, and the usage
report, request log and its CSV of one member."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import requests
from gwapi_helpers import ONE_P
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.gateway import start_gateway

TEAM_MEMBERS = ("7", "12")


def models(url: str, key: str) -> int:
    """The status of ``GET /v1/models`` with ``key``."""
    return requests.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code


def team(gateway, members=TEAM_MEMBERS, keys_each: int = 2) -> tuple[str, dict[str | None, list[dict]]]:
    """A funded team account with ``keys_each`` keys per member and one key of no member."""
    account_id = gateway.create_account(100 * ONE_P, external_id=f"team:{time.monotonic_ns()}")
    keys: dict[str | None, list[dict]] = {}
    for member in members:
        keys[member] = [gateway.create_key(account_id, name=f"{member}-{i}", member_id=member) for i in range(keys_each)]
    keys[None] = [gateway.create_key(account_id, name="shared")]
    return account_id, keys


def test_every_key_answer_carries_its_member(gateway):
    account_id, keys = team(gateway)
    assert keys["7"][0]["member_id"] == "7"
    assert keys[None][0]["member_id"] is None
    listed = gateway.internal("GET", f"/accounts/{account_id}/keys").json()["data"]
    assert {k["id"]: k["member_id"] for k in listed} == {
        k["id"]: member for member, made in keys.items() for k in made
    }
    patched = gateway.internal("PATCH", f"/accounts/{account_id}/keys/{keys['7'][0]['id']}", json={"name": "renamed"})
    assert patched.json()["member_id"] == "7"


def test_the_key_list_filters_by_member(gateway):
    account_id, keys = team(gateway)
    answer = gateway.internal("GET", f"/accounts/{account_id}/keys", params={"member_id": "12"})
    assert answer.status_code == 200
    assert {k["id"] for k in answer.json()["data"]} == {k["id"] for k in keys["12"]}
    nobody = gateway.internal("GET", f"/accounts/{account_id}/keys", params={"member_id": "999"})
    assert nobody.json()["data"] == []
    # An empty filter is no filter.
    everyone = gateway.internal("GET", f"/accounts/{account_id}/keys", params={"member_id": ""})
    assert len(everyone.json()["data"]) == 5


def test_revoking_a_member_refuses_their_keys_at_once_and_keeps_the_others(gateway):
    account_id, keys = team(gateway)
    for made in keys.values():
        for key in made:
            assert models(gateway.url, key["key"]) == 200
    answer = gateway.internal("POST", f"/accounts/{account_id}/members/7/revoke-keys")
    assert answer.status_code == 200
    assert answer.json() == {"revoked": 2}
    for key in keys["7"]:
        refused = requests.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {key['key']}"}, timeout=10)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "api_key_revoked"
    for key in keys["12"] + keys[None]:
        assert models(gateway.url, key["key"]) == 200
    listed = gateway.internal("GET", f"/accounts/{account_id}/keys", params={"member_id": "7"}).json()["data"]
    assert {k["status"] for k in listed} == {"revoked"}
    # Idempotent: nothing more to revoke, and the first revocation time stays.
    again = gateway.internal("POST", f"/accounts/{account_id}/members/7/revoke-keys")
    assert again.json() == {"revoked": 0}
    relisted = gateway.internal("GET", f"/accounts/{account_id}/keys", params={"member_id": "7"}).json()["data"]
    assert [k["revoked_at"] for k in relisted] == [k["revoked_at"] for k in listed]


def test_a_member_revoked_on_one_process_is_refused_by_another_within_two_seconds(gateway):
    second = start_gateway(gateway.env)
    try:
        account_id, keys = team(gateway, members=("41",), keys_each=1)
        key = keys["41"][0]["key"]
        assert models(second.url, key) == 200
        assert gateway.internal("POST", f"/accounts/{account_id}/members/41/revoke-keys").json() == {"revoked": 1}
        deadline = time.monotonic() + 2.0
        while models(second.url, key) != 401:
            assert time.monotonic() < deadline, "a revoked member's key still accepted after 2 s"
            time.sleep(0.05)
        assert models(second.url, keys[None][0]["key"]) == 200
    finally:
        assert second.stop() == 0


def test_revoking_keys_of_a_member_touches_no_other_account(gateway):
    first, first_keys = team(gateway, members=("5",), keys_each=1)
    second, second_keys = team(gateway, members=("5",), keys_each=1)
    assert gateway.internal("POST", f"/accounts/{first}/members/5/revoke-keys").json() == {"revoked": 1}
    assert models(gateway.url, first_keys["5"][0]["key"]) == 401
    assert models(gateway.url, second_keys["5"][0]["key"]) == 200
    missing = gateway.internal("POST", "/accounts/00000000-0000-4000-8000-000000000000/members/5/revoke-keys")
    assert missing.status_code == 404


BAD_MEMBER_IDS = ["", "a" * 37, "7 ", "seven/eight", "7;drop", "x\u00e9", "1\n", 7, 7.5, True, [], {}]


@pytest.mark.parametrize("member_id", BAD_MEMBER_IDS, ids=repr)
def test_a_key_with_a_bad_member_id_is_refused_with_400(gateway, member_id):
    account_id = gateway.create_account()
    answer = gateway.internal("POST", f"/accounts/{account_id}/keys", json={"name": "k", "member_id": member_id})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_member_id" and error["type"] == "invalid_request_error"
    assert "member_id" in error["message"]
    assert gateway.internal("GET", f"/accounts/{account_id}/keys").json()["data"] == []


@pytest.mark.parametrize("member_id", ["a" * 37, "7 ", "x\u00e9", "%00", "a.b"], ids=repr)
def test_bad_member_ids_in_the_path_and_the_query_are_refused_with_400(gateway, member_id):
    account_id = gateway.create_account()
    listed = gateway.internal("GET", f"/accounts/{account_id}/keys", params={"member_id": member_id})
    assert listed.status_code == 400 and listed.json()["error"]["code"] == "invalid_member_id"
    quoted = requests.utils.quote(member_id, safe="")
    revoked = gateway.internal("POST", f"/accounts/{account_id}/members/{quoted}/revoke-keys")
    assert revoked.status_code == 400 and revoked.json()["error"]["code"] == "invalid_member_id"


ALLOWED = "abcXYZ0189:_-"
MEMBER_IDS = st.one_of(st.text(alphabet=ALLOWED, min_size=0, max_size=40),
                       st.text(alphabet=ALLOWED + " ./%\u00e9\x00\n", min_size=1, max_size=40), st.text(max_size=40))


@settings(max_examples=50, derandomize=True, deadline=None)
@given(member_id=MEMBER_IDS)
def test_any_member_id_is_kept_exactly_or_refused_with_400(gateway, member_id):
    account_id = gateway.create_account()
    answer = gateway.internal("POST", f"/accounts/{account_id}/keys", json={"name": "k", "member_id": member_id})
    valid = 1 <= len(member_id) <= 36 and all(char in ALLOWED or char.isalnum() and char.isascii() for char in member_id)
    if valid:
        assert answer.status_code == 201, answer.text
        assert answer.json()["member_id"] == member_id
    else:
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_member_id"


@pytest.mark.parametrize("member_id", ["1", "a" * 36, "user:42", "A-b_9"])
def test_every_allowed_member_id_form_is_kept(gateway, member_id):
    account_id = gateway.create_account()
    key = gateway.create_key(account_id, member_id=member_id)
    assert key["member_id"] == member_id
    listed = gateway.internal("GET", f"/accounts/{account_id}/keys", params={"member_id": member_id}).json()["data"]
    assert [k["id"] for k in listed] == [key["id"]]


# --- usage and the request log by member ---------------------------------------------------


@pytest.fixture(scope="module")
def team_with_traffic(gateway, fake_upstream):
    """A team whose member 7 made three calls on two keys, member 12 two, and a key of no
    member one, each with a marker in its prompt: (account id, keys, markers by member)."""
    account_id, keys = team(gateway)
    markers: dict[str | None, list[str]] = {}
    calls = [("7", 0, "deepseek-v3.2"), ("7", 1, "gpt-5.2"), ("7", 1, "deepseek-v3.2"),
             ("12", 0, "deepseek-v3.2"), ("12", 1, "claude-haiku-4.5"), (None, 0, "deepseek-v3.2")]
    for member, index, model in calls:
        marker = f"m{member}-{uuid.uuid4().hex}"
        answer = requests.post(f"{gateway.url}/v1/chat/completions",
                               headers={"Authorization": f"Bearer {keys[member][index]['key']}"},
                               json={"model": model, "max_tokens": 100,
                                     "messages": [{"role": "user", "content": marker}]}, timeout=30)
        assert answer.status_code == 200, answer.text
        markers.setdefault(member, []).append(marker)
    deadline = time.monotonic() + 20
    while gateway.internal("GET", f"/accounts/{account_id}").json()["requests"] < len(calls):
        assert time.monotonic() < deadline, "the calls were not settled"
        time.sleep(0.05)
    return account_id, keys, markers


def _member_keys(keys, member) -> set[str]:
    return {k["id"] for k in keys[member]}


@pytest.mark.parametrize("member, count", [("7", 3), ("12", 2)])
def test_the_request_log_filters_by_member(gateway, team_with_traffic, member, count):
    account_id, keys, _ = team_with_traffic
    answer = gateway.internal("GET", f"/accounts/{account_id}/requests", params={"member_id": member})
    assert answer.status_code == 200
    rows = answer.json()["data"]
    assert len(rows) == count
    assert {r["key_id"] for r in rows} <= _member_keys(keys, member)
    # Together with the other filters.
    deepseek = gateway.internal("GET", f"/accounts/{account_id}/requests",
                                params={"member_id": member, "model": "deepseek-v3.2"}).json()["data"]
    assert {r["model"] for r in deepseek} == {"deepseek-v3.2"} and 0 < len(deepseek) < count + 1
    nobody = gateway.internal("GET", f"/accounts/{account_id}/requests", params={"member_id": "99"})
    assert nobody.json()["data"] == []


def test_the_csv_export_filters_by_member(gateway, team_with_traffic):
    account_id, keys, _ = team_with_traffic
    answer = gateway.internal("GET", f"/accounts/{account_id}/requests.csv", params={"member_id": "12"})
    assert answer.status_code == 200
    lines = answer.text.strip().splitlines()
    names = {k["name"] for k in keys["12"]}
    assert len(lines) == 1 + 2
    assert all(line.split(",")[2] in names for line in lines[1:])
    everyone = gateway.internal("GET", f"/accounts/{account_id}/requests.csv").text.strip().splitlines()
    assert len(everyone) == 1 + 6


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kathmandu"])
def test_usage_filters_by_member_in_the_accounts_zone_and_any_other(gateway, team_with_traffic, tz):
    account_id, keys, _ = team_with_traffic
    today = datetime.now(ZoneInfo(tz)).date()
    params = {"start": (today - timedelta(days=1)).isoformat(), "end": today.isoformat(), "tz": tz}
    log = gateway.internal("GET", f"/accounts/{account_id}/requests", params={"member_id": "7"}).json()["data"]
    answer = gateway.internal("GET", f"/accounts/{account_id}/usage", params={**params, "member_id": "7"})
    assert answer.status_code == 200
    report = answer.json()
    assert report["totals"]["requests"] == 3
    assert report["totals"]["cost_micro_p"] == sum(r["cost_micro_p"] for r in log)
    assert {row["model"] for row in report["by_model"]} == {"deepseek-v3.2", "gpt-5.2"}
    assert sum(row["requests"] for row in report["daily"]) == 3
    assert {row["key_id"] for row in report["by_key"]} == _member_keys(keys, "7")
    whole = gateway.internal("GET", f"/accounts/{account_id}/usage", params=params).json()
    assert whole["totals"]["requests"] == 6
    assert gateway.internal("GET", f"/accounts/{account_id}/usage",
                            params={**params, "member_id": "99"}).json()["totals"]["requests"] == 0


@pytest.mark.parametrize("path", ["usage", "requests", "requests.csv"])
def test_a_bad_member_filter_is_refused_with_400(gateway, path):
    account_id = gateway.create_account()
    today = datetime.now(timezone.utc).date().isoformat()
    answer = gateway.internal("GET", f"/accounts/{account_id}/{path}",
                              params={"start": today, "end": today, "member_id": "x" * 37})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_member_id"
