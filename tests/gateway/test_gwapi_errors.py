"""Every refusal and failure of the public API: status, body shape (OpenAI or Anthropic), no charge."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import anthropic
import openai
import pytest
import requests
from gwapi_helpers import ONE_P, cost, new_customer

from fixtures.upstream import COMPLETION_TOKENS, REPLY_TEXT, UNCONFIGURED_KEY_ENV, UPSTREAM_KEYS

ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 502: "api_error",
    500: "api_error", 503: "api_error", 504: "timeout_error",
}


def chat_body(text: str = "hello", model: str = "deepseek-v3.2") -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def messages_body(text: str = "hello", model: str = "deepseek-v3.2") -> dict:
    return {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}]}


def assert_openai_error(answer: requests.Response, status: int, code: str | None = None) -> dict:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


def assert_anthropic_error(answer: requests.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == ANTHROPIC_TYPES[status]
    return body["error"]


@pytest.fixture
def customer(gateway, fake_upstream):
    return new_customer(gateway)


def post(gateway, path: str, key: str | None, body=None, data: bytes | None = None, headers=None):
    all_headers = dict(headers or {})
    if key:
        all_headers["Authorization"] = f"Bearer {key}"
    return requests.post(f"{gateway.url}{path}", json=body if data is None else None, data=data,
                         headers=all_headers, timeout=30)


def both_shapes(gateway, key, text="hello", model="deepseek-v3.2", headers=None, status=None):
    """POST the same request to /v1/chat/completions and /v1/messages; check both error shapes."""
    openai_side = assert_openai_error(
        post(gateway, "/v1/chat/completions", key, chat_body(text, model), headers=headers), status)
    anthropic_side = assert_anthropic_error(
        post(gateway, "/v1/messages", key, messages_body(text, model), headers=headers), status)
    return openai_side, anthropic_side


# --- keys and accounts -------------------------------------------------------------


def test_missing_and_invalid_keys_are_401(gateway, customer):
    error, _ = both_shapes(gateway, None, status=401)
    assert "API key" in error["message"]
    error, _ = both_shapes(gateway, "sama_00000000-0000-4000-8000-000000000000", status=401)
    assert error["code"] == "invalid_api_key"
    error, _ = both_shapes(gateway, "not-even-a-key", status=401)
    assert "not-even-a-key" not in error["message"]


def test_keys_in_the_query_string_are_never_accepted(gateway, customer):
    answer = requests.post(f"{gateway.url}/v1/chat/completions", params={"key": customer.key},
                           json=chat_body(), timeout=30)
    error = assert_openai_error(answer, 401)
    assert "URL" in error["message"]
    assert customer.key not in answer.text


def test_revoked_key_is_refused_within_two_seconds(gateway, customer):
    client = customer.openai()
    assert client.chat.completions.create(**chat_body()).choices[0].message.content == REPLY_TEXT
    revoked = gateway.internal("DELETE", f"/accounts/{customer.account_id}/keys/{customer.key_id}")
    assert revoked.status_code == 200
    deadline = time.monotonic() + 2.5
    while True:
        answer = post(gateway, "/v1/chat/completions", customer.key, chat_body())
        if answer.status_code == 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    error = assert_openai_error(answer, 401, "api_key_revoked")
    assert "revoked" in error["message"]
    assert_anthropic_error(post(gateway, "/v1/messages", customer.key, messages_body()), 401)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(**chat_body())


def test_expired_key_is_refused(gateway):
    # Far enough ahead for the first call on a loaded machine; then wait for the instant itself.
    expires_at = datetime.now(timezone.utc) + timedelta(seconds=5)
    customer = new_customer(gateway, expires_at=expires_at.isoformat().replace("+00:00", "Z"))
    assert post(gateway, "/v1/chat/completions", customer.key, chat_body()).status_code == 200
    time.sleep(max(0.0, (expires_at - datetime.now(timezone.utc)).total_seconds()) + 0.1)
    error = assert_openai_error(post(gateway, "/v1/chat/completions", customer.key, chat_body()), 401, "api_key_expired")
    assert "expired" in error["message"]
    with pytest.raises(anthropic.AuthenticationError):
        customer.anthropic().messages.create(**messages_body())


def test_suspended_account_is_403(gateway, customer):
    assert gateway.internal("PATCH", f"/accounts/{customer.account_id}", json={"status": "suspended"}).status_code == 200
    deadline = time.monotonic() + 20
    while post(gateway, "/v1/chat/completions", customer.key, chat_body()).status_code != 403:
        assert time.monotonic() < deadline, "suspension never reached the gateway"
        time.sleep(0.1)
    error, _ = both_shapes(gateway, customer.key, status=403)
    assert "suspended" in error["message"]


def test_no_balance_is_402(gateway):
    customer = new_customer(gateway, balance_micro_p=0)
    error, anthropic_error = both_shapes(gateway, customer.key, status=402)
    assert "balance" in error["message"].lower()
    with pytest.raises(openai.APIStatusError) as caught:
        customer.openai().chat.completions.create(**chat_body())
    assert caught.value.status_code == 402


def test_key_spend_limit_is_402_once_reached(gateway):
    # The limit covers exactly one call whose output bound is the answer's length.
    customer = new_customer(gateway, spend_limit_micro_p=cost("deepseek-v3.2"))
    body = dict(chat_body(), max_tokens=COMPLETION_TOKENS)
    assert post(gateway, "/v1/chat/completions", customer.key, body).status_code == 200
    customer.settled(1)
    deadline = time.monotonic() + 20
    while True:
        answer = post(gateway, "/v1/chat/completions", customer.key, body)
        if answer.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    error = assert_openai_error(answer, 402, "key_spend_limit_reached")
    assert "limit" in error["message"]


# --- models and bodies -----------------------------------------------------------------


def test_unknown_model_is_404(gateway, customer):
    error, anthropic_error = both_shapes(gateway, customer.key, model="no-such-model", status=404)
    assert "no-such-model" in error["message"]
    assert error["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        customer.openai().chat.completions.create(**chat_body(model="no-such-model"))


def test_unpriced_model_says_it_has_no_price(gateway, customer):
    error, anthropic_error = both_shapes(gateway, customer.key, model="gpt-5.2-pro", status=400)
    assert error["code"] == "model_not_priced"
    assert "no price" in error["message"] and "gpt-5.2-pro" in error["message"]
    assert "no price" in anthropic_error["message"]


def test_wrong_kind_of_model_for_the_endpoint_is_400(gateway, customer):
    error = assert_openai_error(post(gateway, "/v1/chat/completions", customer.key,
                                     chat_body(model="text-embedding-3-small")), 400, "wrong_model_kind")
    assert "/v1/embeddings" in error["message"]
    error = assert_openai_error(post(gateway, "/v1/embeddings", customer.key,
                                     {"model": "deepseek-v3.2", "input": "x"}), 400, "wrong_model_kind")
    assert "/v1/chat/completions" in error["message"]


@pytest.mark.parametrize("data, expected", [
    (b'{"model": "deepseek-v3.2", "messages": [', "not valid JSON"),
    (b'{"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "\xff\xfe"}]}', "UTF-8"),
    (b"[1, 2, 3]", "JSON object"),
    (b"", "empty"),
])
def test_unreadable_bodies_are_400(gateway, customer, data, expected):
    headers = {"Content-Type": "application/json"}
    error = assert_openai_error(post(gateway, "/v1/chat/completions", customer.key, data=data, headers=headers), 400)
    assert expected in error["message"]
    error = assert_anthropic_error(post(gateway, "/v1/messages", customer.key, data=data, headers=headers), 400)
    assert expected in error["message"]


@pytest.mark.parametrize("path, body, param", [
    ("/v1/chat/completions", {"model": "deepseek-v3.2"}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, "model"),
    ("/v1/chat/completions", dict(chat_body(), temperature="hot"), "temperature"),
    ("/v1/chat/completions", dict(chat_body(), max_tokens=-5), "max_tokens"),
    ("/v1/completions", {"model": "deepseek-v3.2", "prompt": 42}, "prompt"),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": []}, "input"),
])
def test_bad_fields_are_400_naming_the_field(gateway, customer, path, body, param):
    error = assert_openai_error(post(gateway, path, customer.key, body), 400)
    assert error["param"] == param


def test_bad_fields_on_messages_use_the_anthropic_shape(gateway, customer):
    error = assert_anthropic_error(post(gateway, "/v1/messages", customer.key,
                                        {"model": "deepseek-v3.2", "messages": [{"role": "tool", "content": "x"}]}), 400)
    assert "messages.0.role" in error["message"]


def test_body_over_the_limit_is_413(gateway, customer):
    huge = chat_body("x" * (5 * 1024 * 1024))
    assert_openai_error(post(gateway, "/v1/chat/completions", customer.key, huge), 413)
    assert_anthropic_error(post(gateway, "/v1/messages", customer.key, messages_body("x" * (5 * 1024 * 1024))), 413)


def test_unknown_paths_and_methods_answer_json(gateway, customer):
    assert_openai_error(requests.get(f"{gateway.url}/v1/nothing-here", timeout=30), 404)
    answer = requests.get(f"{gateway.url}/v1/chat/completions", timeout=30)
    assert answer.status_code == 405 and answer.json()["error"]["code"] == "method_not_allowed"


def test_unconfigured_provider_names_its_variable(gateway, customer):
    error, anthropic_error = both_shapes(gateway, customer.key, model="minimax-m2.5", status=503)
    assert UNCONFIGURED_KEY_ENV in error["message"]
    assert UNCONFIGURED_KEY_ENV in anthropic_error["message"]
    # Everything else keeps working.
    assert post(gateway, "/v1/chat/completions", customer.key, chat_body()).status_code == 200


# --- upstream failures ---------------------------------------------------------------------


@pytest.mark.parametrize("phrase, status", [
    ("[[error:400]]", 400), ("[[error:500]]", 500), ("[[error:429]]", 429),
    ("[[hang]]", 504), ("[[malformed]]", 502), ("[[cut]]", 502),
])
@pytest.mark.parametrize("model", ["deepseek-v3.2", "claude-haiku-4.5"])
def test_upstream_failures_map_to_gateway_statuses_and_cost_nothing(gateway, model, phrase, status):
    customer = new_customer(gateway)
    error, anthropic_error = both_shapes(gateway, customer.key, text=f"{phrase} please", model=model, status=status)
    for message in (error["message"], anthropic_error["message"]):
        for secret in UPSTREAM_KEYS.values():
            assert secret not in message
    if phrase.startswith("[[error"):
        assert "upstream says no" in error["message"]
    account = customer.settled(2)
    assert account["balance_micro_p"] == 1000 * ONE_P
    rows = customer.log()
    assert [row["status"] for row in rows] == [status, status]
    assert all(row["cost_micro_p"] == 0 and row["error_class"] for row in rows)
    if phrase == "[[hang]]":
        assert rows[0]["error_class"] == "upstream_timeout"


def test_upstream_json_of_the_wrong_shape_is_502_when_translating(gateway):
    customer = new_customer(gateway)
    assert_openai_error(post(gateway, "/v1/chat/completions", customer.key,
                             chat_body("[[wrongshape]]", "claude-haiku-4.5")), 502, "upstream_malformed_response")
    assert_anthropic_error(post(gateway, "/v1/messages", customer.key, messages_body("[[wrongshape]]")), 502)
    assert customer.settled(2)["balance_micro_p"] == 1000 * ONE_P


@pytest.mark.parametrize("phrase", ["[[cut]]", "[[malformed]]"])
@pytest.mark.parametrize("model", ["deepseek-v3.2", "claude-haiku-4.5"])
def test_broken_streams_end_with_an_error_event_the_sdks_raise(gateway, model, phrase):
    customer = new_customer(gateway)
    with pytest.raises(openai.APIError):
        for _ in customer.openai().chat.completions.create(
                model=model, messages=[{"role": "user", "content": phrase}], stream=True):
            pass
    with pytest.raises(anthropic.APIError):
        with customer.anthropic().messages.stream(
                model=model, max_tokens=50, messages=[{"role": "user", "content": phrase}]) as stream:
            for _ in stream:
                pass
    account = customer.settled(2)
    assert account["balance_micro_p"] == 1000 * ONE_P
    assert {row["status"] for row in customer.log()} == {502}


def test_failed_requests_release_their_reservations(gateway):
    """A balance covering one request survives many failures and still serves that request."""
    body = chat_body("[[error:500]] leak check")
    body["max_tokens"] = 1000
    from gateway.proxy.tokens import estimate_chat_prompt

    reservation = estimate_chat_prompt(body) * 280 + 1000 * 420
    customer = new_customer(gateway, balance_micro_p=reservation)
    for _ in range(6):
        assert post(gateway, "/v1/chat/completions", customer.key, body).status_code == 500
    good = dict(body, messages=[{"role": "user", "content": "[[error:999]] leak check"}])
    good["messages"][0]["content"] = "fine now, leak check"
    answer = post(gateway, "/v1/chat/completions", customer.key, good)
    assert answer.status_code == 200, answer.text


def test_logs_hold_no_key_and_no_prompt_text(gateway, fake_upstream):
    customer = new_customer(gateway)
    secret_prompt = "the-launch-code-is-7731-swordfish"
    client = customer.openai()
    client.chat.completions.create(**chat_body(secret_prompt))
    list(client.chat.completions.create(**chat_body(secret_prompt, "claude-haiku-4.5"), stream=True))
    customer.anthropic().messages.create(**messages_body(secret_prompt))
    for phrase in ("[[error:500]]", "[[malformed]]", "[[hang]]"):
        post(gateway, "/v1/chat/completions", customer.key, chat_body(f"{phrase} {secret_prompt}"))
    post(gateway, "/v1/chat/completions", customer.key, {"model": secret_prompt, "messages": "nope"})
    post(gateway, "/v1/chat/completions", customer.key, data=b'{"model": "' + secret_prompt.encode() + b'", [',
         headers={"Content-Type": "application/json"})
    customer.settled(7)
    text = gateway.log_text()
    assert customer.key not in text
    assert customer.key[5:] not in text
    assert secret_prompt not in text
    for secret in UPSTREAM_KEYS.values():
        assert secret not in text


ODD_BODIES = [
    {"model": 5, "messages": []},
    {"model": ["deepseek-v3.2"]},
    {"model": "claude-haiku-4.5", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]},
    {"model": "claude-haiku-4.5", "messages": [{"role": "user", "content": [{"type": "audio"}]}]},
    {"model": "claude-haiku-4.5", "messages": [{"role": "user", "content": "x"}], "tool_choice": 7},
    {"model": "claude-haiku-4.5", "messages": [{"role": "user", "content": "x"}], "n": 2},
    {"model": "claude-haiku-4.5", "messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": 3}}]}]},
    {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "x"}], "stream_options": "yes"},
    {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": None}]},
    {"model": "deepseek-v3.2", "messages": [None]},
    {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": [None]}]},
    {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "x"}], "tools": "all"},
    {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10**12},
]

ODD_MESSAGES = [
    {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": [{"type": "image", "source": 3}]}]},
    {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]},
    {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": [{"type": "tool_use"}]}]},
    {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "x"}], "system": 5},
    {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "magic"}},
    {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "x"}], "tools": [{"input_schema": {}}]},
    {"model": "claude-haiku-4.5", "messages": [{"role": "user", "content": 12}]},
]


@pytest.mark.parametrize("body", ODD_BODIES)
def test_odd_chat_bodies_get_a_clear_400_never_a_500(gateway, customer, body):
    answer = post(gateway, "/v1/chat/completions", customer.key, body)
    error = assert_openai_error(answer, 400)
    assert "Traceback" not in error["message"]


@pytest.mark.parametrize("body", ODD_MESSAGES)
def test_odd_messages_bodies_get_a_clear_400_never_a_500(gateway, customer, body):
    assert_anthropic_error(post(gateway, "/v1/messages", customer.key, body), 400)
