"""Per-key controls through a real gateway process, on every endpoint and both wire formats:
model and IP allow-lists, a budget per period, and requests and tokens per minute."""

from __future__ import annotations

import re
import threading
import time
import uuid

import anthropic
import openai
import pytest
import requests
import sqlalchemy as sa
from gwapi_helpers import ONE_P, new_customer
from test_gwapi_limits import all_at_once, key_row, post

from gateway.db import accounts, api_keys

CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES = "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages"
RESPONSES = "/v1/responses"


def body_for(path: str, model: str = "deepseek-v3.2", text: str = "hello", **extra) -> dict:
    """A small valid request body for ``path``."""
    if path == EMBEDDINGS:
        return {"model": "text-embedding-3-small", "input": text}
    if path == COMPLETIONS:
        return {"model": model, "prompt": text, **extra}
    if path == RESPONSES:
        if "max_tokens" in extra:
            extra["max_output_tokens"] = extra.pop("max_tokens")
        return {"model": model, "input": text, **extra}
    if path.startswith(MESSAGES):
        return {"model": model, "max_tokens": extra.pop("max_tokens", 100),
                "messages": [{"role": "user", "content": text}], **extra}
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def error_code(answer: requests.Response, path: str) -> str:
    """The refusal's code (OpenAI shape) or type (Anthropic shape, which has no code)."""
    error = answer.json()["error"]
    return error["type"] if path.startswith(MESSAGES) else error["code"]


def patch_key(gateway, customer, **fields) -> dict:
    answer = gateway.internal("PATCH", f"/accounts/{customer.account_id}/keys/{customer.key_id}", json=fields)
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- model allow-list -------------------------------------------------------------------


def test_models_lists_only_the_allowed_models(gateway, fake_upstream):
    customer = new_customer(gateway, allowed_models=["deepseek-chat", "claude-haiku-4.5"])
    listed = {model.id for model in customer.openai().models.list()}
    assert listed == {"deepseek-v3.2", "claude-haiku-4.5"}
    assert customer.openai().models.retrieve("deepseek-v3.2").id == "deepseek-v3.2"
    with pytest.raises(openai.PermissionDeniedError):
        customer.openai().models.retrieve("gpt-5.2")
    everything = new_customer(gateway)
    assert len(list(everything.openai().models.list())) > 2


@pytest.mark.parametrize("path", [CHAT, COMPLETIONS, MESSAGES, "/v1/messages/count_tokens", RESPONSES])
def test_a_model_outside_the_allow_list_is_refused(gateway, fake_upstream, path):
    customer = new_customer(gateway, allowed_models=["deepseek-v3.2"])
    marker = uuid.uuid4().hex
    refused = post(gateway.url, customer.key, path, body_for(path, "claude-haiku-4.5", marker))
    assert refused.status_code == 403
    assert error_code(refused, path) == ("permission_error" if path.startswith(MESSAGES) else "model_not_allowed")
    assert "claude-haiku-4.5" in refused.json()["error"]["message"]
    assert fake_upstream.received(marker) == []
    # The allowed model, by its alias too, is served.
    assert post(gateway.url, customer.key, path, body_for(path, "deepseek-chat")).status_code == 200


def test_an_embedding_model_outside_the_allow_list_is_refused(gateway, fake_upstream):
    customer = new_customer(gateway, allowed_models=["deepseek-v3.2"])
    with pytest.raises(openai.PermissionDeniedError) as refused:
        customer.openai().embeddings.create(model="text-embedding-3-small", input="hi")
    assert refused.value.code == "model_not_allowed"
    patch_key(gateway, customer, allowed_models=["deepseek-v3.2", "text-embedding-3-small"])
    # The process that took the change applies it at once.
    assert customer.openai().embeddings.create(model="text-embedding-3-small", input="hi").data


def test_sdks_see_model_not_allowed(gateway, fake_upstream):
    customer = new_customer(gateway, allowed_models=["claude-haiku-4.5"])
    with pytest.raises(openai.PermissionDeniedError) as refused:
        customer.openai().chat.completions.create(model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "model_not_allowed"
    with pytest.raises(anthropic.PermissionDeniedError):
        customer.anthropic().messages.create(model="deepseek-v3.2", max_tokens=50,
                                             messages=[{"role": "user", "content": "hi"}])
    answer = customer.anthropic().messages.create(model="claude-haiku-4.5", max_tokens=50,
                                                  messages=[{"role": "user", "content": "hi"}])
    assert answer.content


def test_refusals_are_logged_at_no_cost(gateway, fake_upstream):
    customer = new_customer(gateway, allowed_models=["deepseek-v3.2"], rpm_limit=1)
    assert post(gateway.url, customer.key, CHAT, body_for(CHAT, "gpt-5.2")).status_code == 403
    assert post(gateway.url, customer.key, CHAT, body_for(CHAT)).status_code == 200
    assert post(gateway.url, customer.key, CHAT, body_for(CHAT)).status_code == 429
    patch_key(gateway, customer, allowed_ips=["192.0.2.0/24"])
    assert post(gateway.url, customer.key, MESSAGES, body_for(MESSAGES)).status_code == 403
    patch_key(gateway, customer, allowed_ips=[], rpm_limit=None, budget_micro_p=1, budget_period="day")
    assert post(gateway.url, customer.key, CHAT, body_for(CHAT)).status_code == 402
    customer.settled(5)
    log = customer.log()
    assert {row["error_class"] for row in log} == {None, "model_not_allowed", "rate_limited", "ip_not_allowed",
                                                   "key_budget_exceeded"}
    assert all(row["cost_micro_p"] == 0 for row in log if row["error_class"])


# --- IP allow-list ----------------------------------------------------------------------


def test_a_budget_set_while_a_flush_holds_the_account_is_not_a_deadlock(gateway, gateway_db):
    """A flush locks the account, then updates the key; a key change meanwhile waits for it.

    On PostgreSQL the key change used to take the key row first, then (checking the
    account behind its second update) wait for the account: a deadlock, answered 500.
    """
    customer = new_customer(gateway)
    held, failures = threading.Event(), []

    def flush_like() -> None:
        try:
            with gateway_db.engine.begin() as conn:
                conn.execute(sa.select(accounts.c.id).where(accounts.c.id == customer.account_id).with_for_update())
                held.set()
                time.sleep(0.5)  # the key change starts meanwhile
                conn.execute(api_keys.update().where(api_keys.c.id == customer.key_id)
                             .values(spent_micro_p=api_keys.c.spent_micro_p + 1))
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    flush = threading.Thread(target=flush_like)
    flush.start()
    assert held.wait(10)
    key = patch_key(gateway, customer, budget_micro_p=5 * ONE_P, budget_period="day")
    flush.join(15)
    assert failures == []
    assert (key["budget_micro_p"], key["budget_period"]) == (5 * ONE_P, "day")


@pytest.mark.parametrize("path", [CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES, "/v1/models"])
def test_a_call_from_outside_the_ip_allow_list_is_refused(gateway, fake_upstream, path):
    outside = new_customer(gateway, allowed_ips=["10.0.0.0/8", "2001:db8::/32"])
    inside = new_customer(gateway, allowed_ips=["10.0.0.0/8", "127.0.0.1"])

    def call(customer, headers=None):
        headers = {"Authorization": f"Bearer {customer.key}", **(headers or {})}
        if path == "/v1/models":
            return requests.get(f"{gateway.url}{path}", headers=headers, timeout=30)
        return requests.post(f"{gateway.url}{path}", json=body_for(path), headers=headers, timeout=30)

    refused = call(outside)
    assert refused.status_code == 403
    assert error_code(refused, path) == ("permission_error" if path == MESSAGES else "ip_not_allowed")
    assert "127.0.0.1" in refused.json()["error"]["message"]
    # Without TRUST_PROXY an X-Forwarded-For header is the client's own claim: ignored.
    assert call(outside, {"X-Forwarded-For": "10.1.2.3"}).status_code == 403
    assert call(inside).status_code == 200


def test_an_allowed_key_turns_away_a_new_address_within_two_seconds(gateway, fake_upstream):
    customer = new_customer(gateway)
    assert post(gateway.url, customer.key, CHAT, body_for(CHAT)).status_code == 200
    patch_key(gateway, customer, allowed_ips=["192.0.2.0/24"])
    assert post(gateway.url, customer.key, CHAT, body_for(CHAT)).status_code == 403
    patch_key(gateway, customer, allowed_ips=[])
    assert post(gateway.url, customer.key, CHAT, body_for(CHAT)).status_code == 200


# --- budget per period ------------------------------------------------------------------


@pytest.mark.parametrize("path", [CHAT, MESSAGES, RESPONSES])
def test_a_period_budget_holds_under_concurrency(gateway, fake_upstream, path):
    """30 calls at once on a key with a 50 P daily budget, each costing 42 P: one is served."""
    customer = new_customer(gateway, balance_micro_p=10_000 * ONE_P,
                            budget_micro_p=50 * ONE_P, budget_period="day")
    marker = uuid.uuid4().hex
    body = body_for(path, "gpt-5.2", f"[[delay]] [[usage:0:3000]] {marker}", max_tokens=3000)
    answers = all_at_once(30, lambda i: post(gateway.url, customer.key, path, body))
    served = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert len(served) == 1
    assert {a.status_code for a in refused} == {402}
    assert {error_code(a, path) for a in refused} == {"billing_error" if path == MESSAGES else "key_budget_exceeded"}
    assert all(re.search(r"resets at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", a.json()["error"]["message"]) for a in refused)
    customer.settled(30)
    row = key_row(gateway, customer)
    assert row["budget_spent_micro_p"] == 42 * ONE_P
    assert row["spent_micro_p"] == 42 * ONE_P
    assert row["budget_resets_at"] is not None
    # 8 P left: enough for a small call, not for 1,024 tokens of gpt-5.2 output (14.3 P).
    again = post(gateway.url, customer.key, path, body_for(path, "gpt-5.2", max_tokens=3000))
    assert again.status_code == 402
    assert post(gateway.url, customer.key, path, body_for(path, "deepseek-v3.2", max_tokens=2000)).status_code == 200


def test_a_budget_lowers_max_tokens_before_refusing(gateway, fake_upstream):
    """A budget with room for part of the output bound: the call goes out with a lower bound."""
    customer = new_customer(gateway, balance_micro_p=10_000 * ONE_P, budget_micro_p=30 * ONE_P, budget_period="week")
    marker = uuid.uuid4().hex
    answer = post(gateway.url, customer.key, CHAT,
                  body_for(CHAT, "gpt-5.2", f"[[usage:5:10]] {marker}", max_tokens=4000))
    assert answer.status_code == 200
    sent = fake_upstream.received(marker)[0].body
    bound = sent.get("max_completion_tokens") or sent.get("max_tokens")
    assert 1024 <= bound < 4000


def test_the_lifetime_limit_and_the_budget_both_hold(gateway, fake_upstream):
    customer = new_customer(gateway, spend_limit_micro_p=20 * ONE_P, budget_micro_p=100 * ONE_P,
                            budget_period="month")
    refused = post(gateway.url, customer.key, CHAT, body_for(CHAT, "gpt-5.2", max_tokens=3000, n=1))
    # 3,000 tokens of gpt-5.2 output are 42 P: lowered to what 20 P covers (1,428 tokens) and served.
    assert refused.status_code == 200
    limited = new_customer(gateway, spend_limit_micro_p=100 * ONE_P, budget_micro_p=5 * ONE_P, budget_period="day")
    answer = post(gateway.url, limited.key, CHAT, body_for(CHAT, "gpt-5.2", max_tokens=3000))
    assert answer.status_code == 402
    assert answer.json()["error"]["code"] == "key_budget_exceeded"


# --- rate limits ----------------------------------------------------------------------


RATE_HEADER = re.compile(r"^(\d+h)?(\d+m)?\d+s$")


@pytest.mark.parametrize("path", [CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES])
def test_requests_per_minute_answer_429_with_the_sdk_headers(gateway, fake_upstream, path):
    customer = new_customer(gateway, rpm_limit=3)
    statuses = [post(gateway.url, customer.key, path, body_for(path)).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = post(gateway.url, customer.key, path, body_for(path))
    assert refused.status_code == 429
    assert error_code(refused, path) == ("rate_limit_error" if path == MESSAGES else "rate_limited")
    retry_after = refused.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 120
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert RATE_HEADER.match(refused.headers["x-ratelimit-reset-requests"])
    assert "x-ratelimit-limit-tokens" not in refused.headers


def test_tokens_per_minute_count_the_estimate_then_the_usage(gateway, fake_upstream):
    customer = new_customer(gateway, tpm_limit=200)
    # A request whose prompt plus max_tokens alone exceeds the limit can never be served.
    too_large = post(gateway.url, customer.key, CHAT, body_for(CHAT, max_tokens=500))
    assert too_large.status_code == 429
    assert too_large.json()["error"]["code"] == "rate_limited"
    assert "max_tokens" in too_large.json()["error"]["message"]
    served = 0
    for _ in range(20):
        answer = post(gateway.url, customer.key, CHAT, body_for(CHAT, max_tokens=60))
        if answer.status_code == 429:
            break
        served += 1
    assert 2 <= served < 20
    assert answer.headers["x-ratelimit-limit-tokens"] == "200"
    assert answer.headers["x-ratelimit-remaining-tokens"].isdigit()
    assert RATE_HEADER.match(answer.headers["x-ratelimit-reset-tokens"])


def test_sdks_raise_their_rate_limit_errors(gateway, fake_upstream):
    customer = new_customer(gateway, rpm_limit=1)
    customer.openai().chat.completions.create(model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as refused:
        customer.openai().chat.completions.create(model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "rate_limited"
    with pytest.raises(anthropic.RateLimitError):
        customer.anthropic().messages.create(model="deepseek-v3.2", max_tokens=20,
                                             messages=[{"role": "user", "content": "hi"}])


def test_an_account_wide_limit_covers_all_its_keys(gateway, fake_upstream):
    customer = new_customer(gateway)
    second = gateway.create_key(customer.account_id)
    answer = gateway.internal("PATCH", f"/accounts/{customer.account_id}", json={"rpm_limit": 2})
    assert answer.status_code == 200 and answer.json()["rpm_limit"] == 2
    assert post(gateway.url, customer.key, CHAT, body_for(CHAT)).status_code == 200
    assert post(gateway.url, second["key"], MESSAGES, body_for(MESSAGES)).status_code == 200
    refused = post(gateway.url, second["key"], CHAT, body_for(CHAT))
    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith("This account")
    gateway.internal("PATCH", f"/accounts/{customer.account_id}", json={"rpm_limit": None})
    assert post(gateway.url, second["key"], CHAT, body_for(CHAT)).status_code == 200


def test_rate_limits_hold_under_concurrency(gateway, fake_upstream):
    customer = new_customer(gateway, rpm_limit=10)
    answers = all_at_once(25, lambda i: post(gateway.url, customer.key, CHAT, body_for(CHAT)))
    assert sorted(a.status_code for a in answers) == [200] * 10 + [429] * 15


# --- the internal API -----------------------------------------------------------------------


def test_the_key_object_carries_every_control(gateway):
    account_id = gateway.create_account(ONE_P)
    created = gateway.create_key(account_id, budget_micro_p=5 * ONE_P, budget_period="week",
                                 allowed_models=["deepseek-chat", "gpt-5.2"], allowed_ips=["10.0.0.1", "2001:DB8::/32"],
                                 rpm_limit=60, tpm_limit=100_000)
    assert created["allowed_models"] == ["deepseek-v3.2", "gpt-5.2"]
    assert created["allowed_ips"] == ["10.0.0.1/32", "2001:db8::/32"]
    assert (created["budget_micro_p"], created["budget_period"], created["budget_spent_micro_p"]) == (5 * ONE_P, "week", 0)
    assert created["budget_resets_at"].endswith("Z") or "+00:00" in created["budget_resets_at"]
    assert (created["rpm_limit"], created["tpm_limit"], created["spend_limit_micro_p"]) == (60, 100_000, None)
    cleared = gateway.internal("PATCH", f"/accounts/{account_id}/keys/{created['id']}",
                               json={"budget_micro_p": None, "budget_period": None, "allowed_models": [],
                                     "allowed_ips": [], "rpm_limit": None, "tpm_limit": None}).json()
    assert (cleared["budget_micro_p"], cleared["budget_period"], cleared["budget_resets_at"]) == (None, None, None)
    assert (cleared["allowed_models"], cleared["allowed_ips"], cleared["rpm_limit"]) == ([], [], None)


@pytest.mark.parametrize(("fields", "code"), [
    ({"allowed_ips": ["10.0.0.1/33"]}, "invalid_ip"),
    ({"allowed_ips": ["10.0.0.1/8"]}, "invalid_ip"),
    ({"allowed_ips": ["example.com"]}, "invalid_ip"),
    ({"allowed_ips": "10.0.0.1"}, "invalid_field"),
    ({"allowed_models": ["no-such-model"]}, "unknown_model"),
    ({"allowed_models": [5]}, "invalid_field"),
    ({"budget_micro_p": ONE_P}, "invalid_field"),
    ({"budget_period": "day"}, "invalid_field"),
    ({"budget_micro_p": ONE_P, "budget_period": "year"}, "invalid_field"),
    ({"budget_micro_p": 0, "budget_period": "day"}, "invalid_field"),
    ({"rpm_limit": 0}, "invalid_field"),
    ({"tpm_limit": "many"}, "invalid_field"),
    ({"rpm_limit": True}, "invalid_field"),
])
def test_bad_controls_are_refused_with_422(gateway, fields, code):
    account_id = gateway.create_account(ONE_P)
    created = gateway.internal("POST", f"/accounts/{account_id}/keys", json={"name": "k", **fields})
    assert created.status_code == 422, created.text
    assert created.json()["error"]["code"] == code
    key = gateway.create_key(account_id)
    patched = gateway.internal("PATCH", f"/accounts/{account_id}/keys/{key['id']}", json=fields)
    assert patched.status_code == 422
    account = gateway.internal("PATCH", f"/accounts/{account_id}", json={"tpm_limit": -1})
    assert account.status_code == 422


def test_a_keys_usage_by_day(gateway, fake_upstream):
    customer = new_customer(gateway)
    other = gateway.create_key(customer.account_id)
    for _ in range(2):
        assert post(gateway.url, customer.key, CHAT, body_for(CHAT)).status_code == 200
    assert post(gateway.url, other["key"], CHAT, body_for(CHAT)).status_code == 200
    customer.settled(3)
    today = key_row(gateway, customer)["last_used_at"][:10]
    answer = gateway.internal("GET", f"/accounts/{customer.account_id}/keys/{customer.key_id}/usage",
                              params={"start": today, "end": today, "tz": "UTC"})
    assert answer.status_code == 200, answer.text
    assert [(row["date"], row["requests"]) for row in answer.json()["daily"]] == [(today, 2)]
    # In another zone the buckets are summed instead of the day rows: same requests.
    zoned = gateway.internal("GET", f"/accounts/{customer.account_id}/keys/{customer.key_id}/usage",
                             params={"start": "2000-01-01", "end": "2000-03-01", "tz": "Asia/Tokyo"}).json()
    assert zoned["daily"] == []
    missing = gateway.internal("GET", f"/accounts/{customer.account_id}/keys/{uuid.uuid4()}/usage",
                               params={"start": today, "end": today})
    assert missing.status_code == 404
