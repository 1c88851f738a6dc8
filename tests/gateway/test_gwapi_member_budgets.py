"""Team members' spend caps through real gateway processes: a budget per period shared by
every key of a member, held under concurrency on one and two processes, lowering the
output bound before refusing, refused in the shape of a key budget's refusal, and set,
listed and removed over the internal API."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from gwapi_helpers import ONE_P, Customer
from test_gwapi_key_controls import CHAT, MESSAGES, RESPONSES, body_for, error_code
from test_gwapi_limits import all_at_once, post

from fixtures.gateway import start_gateway

RESET_TIME = re.compile(r"resets at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def team_member(gateway, budget_micro_p: int | None, period: str | None = "day", keys: int = 1,
                member_id: str = "7", balance_micro_p: int = 10_000 * ONE_P) -> list[Customer]:
    """A funded team account whose ``member_id`` has ``keys`` keys and the given budget."""
    account_id = gateway.create_account(balance_micro_p)
    if budget_micro_p is not None:
        put_budget(gateway, account_id, member_id, budget_micro_p, period)
    made = [gateway.create_key(account_id, name=f"key {i}", member_id=member_id) for i in range(keys)]
    return [Customer(gateway, account_id, k["key"], k["id"]) for k in made]


def put_budget(gateway, account_id: str, member_id: str, budget: int | None, period: str | None) -> dict:
    answer = gateway.internal("PUT", f"/accounts/{account_id}/members/{member_id}/budget",
                              json={"budget_micro_p": budget, "budget_period": period})
    assert answer.status_code == 200, answer.text
    return answer.json()


def members(gateway, account_id: str) -> dict[str, dict]:
    answer = gateway.internal("GET", f"/accounts/{account_id}/members")
    assert answer.status_code == 200, answer.text
    return {m["member_id"]: m for m in answer.json()["data"]}


# --- the cap holds -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [CHAT, MESSAGES, RESPONSES])
def test_a_member_budget_holds_under_concurrency_across_the_members_keys(gateway, fake_upstream, path):
    """30 calls at once on three keys of a member with a 50 P daily budget, each costing 42 P: one is served."""
    keys = team_member(gateway, 50 * ONE_P, "day", keys=3)
    marker = uuid.uuid4().hex
    body = body_for(path, "gpt-5.2", f"[[delay]] [[usage:0:3000]] {marker}", max_tokens=3000)
    answers = all_at_once(30, lambda i: post(gateway.url, keys[i % 3].key, path, body))
    served = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert len(served) == 1
    assert {a.status_code for a in refused} == {402}
    assert {error_code(a, path) for a in refused} == {"billing_error" if path == MESSAGES else "member_budget_exceeded"}
    assert all("member budget" in a.json()["error"]["message"] for a in refused)
    assert all(RESET_TIME.search(a.json()["error"]["message"]) for a in refused)
    assert len(fake_upstream.received(marker)) == 1
    keys[0].settled(30)
    member = members(gateway, keys[0].account_id)["7"]
    assert member["spent_micro_p"] == 42 * ONE_P
    assert (member["budget_micro_p"], member["budget_period"]) == (50 * ONE_P, "day")
    assert member["resets_at"] is not None
    # 8 P left: a small call still fits, a large one is refused before it leaves.
    assert post(gateway.url, keys[1].key, path, body_for(path, "gpt-5.2", max_tokens=3000)).status_code == 402
    assert post(gateway.url, keys[2].key, path, body_for(path, "deepseek-v3.2", max_tokens=2000)).status_code == 200


def test_a_member_budget_holds_across_two_processes(gateway, fake_upstream):
    keys = team_member(gateway, 50 * ONE_P, "month", keys=2)
    # Started after the budget was set, so it holds from the first call (a later change
    # reaches it within a poll: test_a_budget_reaches_the_other_process_within_two_seconds).
    second = start_gateway(gateway.env)
    try:
        marker = uuid.uuid4().hex
        body = body_for(CHAT, "gpt-5.2", f"[[delay]] [[usage:0:3000]] {marker}", max_tokens=3000)
        urls = [gateway.url, second.url]
        answers = all_at_once(30, lambda i: post(urls[i % 2], keys[(i // 2) % 2].key, CHAT, body))
    finally:
        assert second.stop() == 0
    assert sum(a.status_code == 200 for a in answers) == 1
    assert {a.json()["error"]["code"] for a in answers if a.status_code != 200} == {"member_budget_exceeded"}
    assert len(fake_upstream.received(marker)) == 1


def test_other_members_and_keys_without_a_member_keep_working(gateway, fake_upstream):
    capped = team_member(gateway, 0, "day")[0]
    other = Customer(gateway, capped.account_id,
                     **_key_fields(gateway.create_key(capped.account_id, name="other", member_id="8")))
    shared = Customer(gateway, capped.account_id, **_key_fields(gateway.create_key(capped.account_id, name="shared")))
    refused = post(gateway.url, capped.key, CHAT, body_for(CHAT))
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "member_budget_exceeded"
    anthropic_shape = post(gateway.url, capped.key, MESSAGES, body_for(MESSAGES))
    assert anthropic_shape.status_code == 402
    assert anthropic_shape.json()["error"]["type"] == "billing_error"
    assert "member budget" in anthropic_shape.json()["error"]["message"]
    assert post(gateway.url, other.key, CHAT, body_for(CHAT)).status_code == 200
    assert post(gateway.url, shared.key, CHAT, body_for(CHAT)).status_code == 200


def _key_fields(created: dict) -> dict:
    return {"key": created["key"], "key_id": created["id"]}


def test_a_member_budget_lowers_max_tokens_before_refusing(gateway, fake_upstream):
    """A member budget with room for part of the output bound: the call goes out with a lower bound."""
    key = team_member(gateway, 30 * ONE_P, "week")[0]
    marker = uuid.uuid4().hex
    answer = post(gateway.url, key.key, CHAT, body_for(CHAT, "gpt-5.2", f"[[usage:5:10]] {marker}", max_tokens=4000))
    assert answer.status_code == 200
    sent = fake_upstream.received(marker)[0].body
    bound = sent.get("max_completion_tokens") or sent.get("max_tokens")
    # 30 P covers 2,142 tokens of gpt-5.2 output (14,000 micro-P each), less the prompt.
    assert 1024 <= bound < 2143


def test_the_key_budget_and_the_member_budget_both_hold(gateway, fake_upstream):
    account_id = gateway.create_account(1000 * ONE_P)
    put_budget(gateway, account_id, "7", 5 * ONE_P, "day")
    roomy_key = gateway.create_key(account_id, member_id="7", budget_micro_p=100 * ONE_P, budget_period="day")
    answer = post(gateway.url, roomy_key["key"], CHAT, body_for(CHAT, "gpt-5.2", max_tokens=3000))
    assert answer.status_code == 402 and answer.json()["error"]["code"] == "member_budget_exceeded"
    put_budget(gateway, account_id, "7", 100 * ONE_P, "day")
    tight_key = gateway.create_key(account_id, member_id="7", budget_micro_p=5 * ONE_P, budget_period="day")
    answer = post(gateway.url, tight_key["key"], CHAT, body_for(CHAT, "gpt-5.2", max_tokens=3000))
    assert answer.status_code == 402 and answer.json()["error"]["code"] == "key_budget_exceeded"


# --- set, list, remove -------------------------------------------------------------------


def test_a_budget_is_set_listed_changed_and_removed(gateway, fake_upstream):
    key = team_member(gateway, None)[0]
    account_id = key.account_id
    assert members(gateway, account_id) == {}
    assert post(gateway.url, key.key, CHAT, body_for(CHAT, "deepseek-v3.2")).status_code == 200
    key.settled(1)
    spent = gateway.internal("GET", f"/accounts/{account_id}/keys").json()["data"][0]["spent_micro_p"]
    assert spent > 0
    # A budget set later counts what the member already spent this period.
    answer = put_budget(gateway, account_id, "7", 10 * ONE_P, "month")
    assert answer["member_id"] == "7" and answer["spent_micro_p"] == spent
    assert answer["resets_at"].endswith("Z")
    assert members(gateway, account_id) == {"7": answer}
    # A new amount for the same period keeps the spend.
    raised = put_budget(gateway, account_id, "7", 20 * ONE_P, "month")
    assert (raised["budget_micro_p"], raised["spent_micro_p"]) == (20 * ONE_P, spent)
    removed = put_budget(gateway, account_id, "7", None, None)
    assert removed == {"member_id": "7", "budget_micro_p": None, "budget_period": None, "spent_micro_p": 0,
                       "resets_at": None}
    assert members(gateway, account_id) == {}


def test_a_new_budget_applies_at_once_and_its_removal_too(gateway, fake_upstream):
    key = team_member(gateway, None)[0]
    assert post(gateway.url, key.key, CHAT, body_for(CHAT)).status_code == 200
    put_budget(gateway, key.account_id, "7", 0, "day")
    assert post(gateway.url, key.key, CHAT, body_for(CHAT)).status_code == 402
    put_budget(gateway, key.account_id, "7", None, None)
    assert post(gateway.url, key.key, CHAT, body_for(CHAT)).status_code == 200


def test_a_budget_reaches_the_other_process_within_two_seconds(gateway, fake_upstream):
    second = start_gateway(gateway.env)
    try:
        key = team_member(gateway, None)[0]
        assert post(second.url, key.key, CHAT, body_for(CHAT)).status_code == 200
        put_budget(gateway, key.account_id, "7", 1, "day")
        changed = time.monotonic()
        while (status := post(second.url, key.key, CHAT, body_for(CHAT)).status_code) == 200:
            assert time.monotonic() - changed < 2, "a member budget not applied by the other process within 2 s"
            time.sleep(0.05)
        assert status == 402
    finally:
        assert second.stop() == 0


@pytest.mark.parametrize("body, code", [
    ({"budget_micro_p": 5}, "missing_field"),
    ({"budget_period": "day"}, "missing_field"),
    ({"budget_micro_p": 5, "budget_period": None}, "invalid_field"),
    ({"budget_micro_p": None, "budget_period": "day"}, "invalid_field"),
    ({"budget_micro_p": -1, "budget_period": "day"}, "invalid_field"),
    ({"budget_micro_p": 10**16, "budget_period": "day"}, "invalid_field"),
    ({"budget_micro_p": "5", "budget_period": "day"}, "invalid_field"),
    ({"budget_micro_p": True, "budget_period": "day"}, "invalid_field"),
    ({"budget_micro_p": 5, "budget_period": "year"}, "invalid_field"),
    ({"budget_micro_p": 5, "budget_period": "day", "member_id": "8"}, "unknown_field"),
])
def test_a_bad_budget_is_refused_with_422(gateway, body, code):
    account_id = gateway.create_account()
    answer = gateway.internal("PUT", f"/accounts/{account_id}/members/7/budget", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == code
    assert members(gateway, account_id) == {}


def test_bad_member_ids_accounts_and_bodies_on_the_budget_routes(gateway):
    account_id = gateway.create_account()
    good = {"budget_micro_p": 5, "budget_period": "day"}
    bad_member = gateway.internal("PUT", f"/accounts/{account_id}/members/a.b/budget", json=good)
    assert bad_member.status_code == 400 and bad_member.json()["error"]["code"] == "invalid_member_id"
    missing = "00000000-0000-4000-8000-000000000000"
    assert gateway.internal("PUT", f"/accounts/{missing}/members/7/budget", json=good).status_code == 404
    assert gateway.internal("GET", f"/accounts/{missing}/members").status_code == 404
    not_json = gateway.internal("PUT", f"/accounts/{account_id}/members/7/budget", data=b"[1]")
    assert not_json.status_code == 400
