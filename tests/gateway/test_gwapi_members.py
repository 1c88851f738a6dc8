"""Team members through a real gateway process: keys that name their member, listing one
member's keys, and revoking every key of a member at once on every process."""

from __future__ import annotations

import time

import pytest
import requests
from gwapi_helpers import ONE_P

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


@pytest.mark.parametrize("member_id", ["1", "a" * 36, "user:42", "A-b_9"])
def test_every_allowed_member_id_form_is_kept(gateway, member_id):
    account_id = gateway.create_account()
    key = gateway.create_key(account_id, member_id=member_id)
    assert key["member_id"] == member_id
    listed = gateway.internal("GET", f"/accounts/{account_id}/keys", params={"member_id": member_id}).json()["data"]
    assert [k["id"] for k in listed] == [key["id"]]
