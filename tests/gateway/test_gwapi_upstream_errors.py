"""A provider's error status reaches the client by one rule, in the client's format."""

from __future__ import annotations

import logging

import anthropic
import openai
import orjson
import pytest
import requests
from gwapi_helpers import ONE_P, new_customer

from fixtures.upstream import RETRY_AFTER_SECONDS, UPSTREAM_KEYS
from gateway.proxy.upstream_errors import classify, status_error

CLIENT = {400, 413, 422}
OPERATOR = {401, 402, 403, 404}


@pytest.mark.parametrize("anthropic_client", [False, True])
def test_every_error_status_has_one_answer(anthropic_client):
    for status in range(400, 600):
        verdict = classify(status, anthropic_client)
        if status in CLIENT:
            expected = (status, False)
        elif status == 529:
            expected = (529 if anthropic_client else 503, True)
        elif status == 429 or status >= 500:
            expected = (status, True)
        else:
            expected = (502, True)
        assert (verdict.status, verdict.channel_failure) == expected, status
        assert verdict.operator == (status in OPERATOR)
        assert verdict.passes_on == (status in CLIENT or status == 429 or status >= 500)


def _anthropic_body(status: int, kind: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": f"said {status} to sk-abcdefgh1234"}})


def test_the_provider_type_is_kept_where_the_client_format_knows_it():
    too_long = _anthropic_body(413, "request_too_large")
    error = status_error("anthropic", 413, too_long, None, anthropic_client=True, upstream_anthropic=True)
    assert (error.status, error.anthropic_type, error.error_class) == (413, "request_too_large", "upstream_http_413")
    assert error.message == "said 413 to [redacted]"
    error = status_error("anthropic", 413, too_long, None, anthropic_client=False, upstream_anthropic=True)
    assert (error.status, error.type) == (413, "invalid_request_error")
    openai_body = orjson.dumps({"error": {"message": "too long", "type": "invalid_request_error",
                                          "code": "context_length_exceeded", "param": "messages"}})
    error = status_error("openai", 400, openai_body, None)
    assert (error.type, error.code, error.param, error.message) == (
        "invalid_request_error", "context_length_exceeded", "messages", "too long")


def test_retry_after_passes_on_only_when_it_is_a_delay_or_a_date():
    body = _anthropic_body(429, "rate_limit_error")
    assert status_error("x", 429, body, None, retry_after="30").headers == {"retry-after": "30"}
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    assert status_error("x", 429, body, None, retry_after=date).headers == {"retry-after": date}
    assert status_error("x", 429, body, None, retry_after="30\r\nx-evil: 1").headers == {}


def test_operator_faults_blame_the_gateway_and_warn_the_operator(caplog):
    with caplog.at_level(logging.WARNING, logger="samalink.gateway.upstream"):
        error = status_error("anthropic", 401, _anthropic_body(401, "authentication_error"), "sk-ant-real-1",
                             anthropic_client=True, upstream_anthropic=True)
    assert error.status == 502
    assert "gateway's credentials" in error.message and "your" not in error.message.lower()
    assert any(record.levelno == logging.WARNING and "anthropic" in record.getMessage() for record in caplog.records)
    assert "sk-ant-real-1" not in caplog.text


# --- through the real gateway ---------------------------------------------------------


def _post(gateway, path: str, key: str, body: dict) -> requests.Response:
    return requests.post(f"{gateway.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _ask(gateway, key: str, anthropic_client: bool, model: str, text: str, stream: bool = False):
    messages = [{"role": "user", "content": text}]
    if anthropic_client:
        return _post(gateway, "/v1/messages", key, {"model": model, "max_tokens": 50, "messages": messages,
                                                    "stream": stream})
    return _post(gateway, "/v1/chat/completions", key, {"model": model, "messages": messages, "stream": stream})


# (upstream status, what the OpenAI-format client sees, what the Anthropic-format client sees)
CLASSES = [
    (400, (400, "invalid_request_error"), (400, "invalid_request_error")),
    (413, (413, "invalid_request_error"), (413, "request_too_large")),
    (422, (422, "invalid_request_error"), (422, "invalid_request_error")),
    (429, (429, "rate_limit_error"), (429, "rate_limit_error")),
    (529, (503, "overloaded_error"), (529, "overloaded_error")),
    (500, (500, None), (500, "api_error")),
    (503, (503, None), (503, "api_error")),
    (401, (502, "upstream_error"), (502, "api_error")),
    (403, (502, "upstream_error"), (502, "api_error")),
    (404, (502, "upstream_error"), (502, "api_error")),
]


@pytest.mark.parametrize("status, openai_side, anthropic_side", CLASSES)
@pytest.mark.parametrize("model", ["claude-haiku-4.5", "deepseek-v3.2"])
@pytest.mark.parametrize("stream", [False, True])
def test_each_class_reaches_both_client_formats(gateway, fake_upstream, model, stream, status, openai_side,
                                                anthropic_side):
    customer = new_customer(gateway)
    for anthropic_client, (want_status, want_type) in ((False, openai_side), (True, anthropic_side)):
        answer = _ask(gateway, customer.key, anthropic_client, model, f"[[error:{status}]] now", stream)
        assert answer.status_code == want_status, answer.text
        body = answer.json()
        if anthropic_client:
            assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
        error = body["error"]
        if want_type:
            assert error["type"] == want_type
        for secret in UPSTREAM_KEYS.values():
            assert secret not in error["message"]
        if status in OPERATOR:
            assert "the operator has been told" in error["message"]
            assert "upstream says no" not in error["message"]
        else:
            assert "upstream says no" in error["message"]
        assert (answer.headers.get("retry-after") == RETRY_AFTER_SECONDS) == (status == 429)
    assert customer.settled(2)["balance_micro_p"] == 1000 * ONE_P
    rows = customer.log()
    assert {row["error_class"] for row in rows} == {f"upstream_http_{status}"}
    assert sorted(row["status"] for row in rows) == sorted([openai_side[0], anthropic_side[0]])


def test_the_sdks_raise_the_provider_error_they_know(gateway, fake_upstream):
    customer = new_customer(gateway)
    with pytest.raises(anthropic.BadRequestError) as raised:
        customer.anthropic().messages.create(model="claude-haiku-4.5", max_tokens=50,
                                             messages=[{"role": "user", "content": "[[error:400]]"}])
    assert raised.value.status_code == 400
    with pytest.raises(openai.BadRequestError):
        customer.openai().chat.completions.create(model="claude-haiku-4.5",
                                                  messages=[{"role": "user", "content": "[[error:400]]"}])
    with pytest.raises(anthropic.RateLimitError) as limited:
        customer.anthropic().messages.create(model="deepseek-v3.2", max_tokens=50,
                                             messages=[{"role": "user", "content": "[[error:429]]"}])
    assert limited.value.response.headers["retry-after"] == RETRY_AFTER_SECONDS


def test_a_refused_gateway_key_is_logged_for_the_operator(gateway, fake_upstream):
    customer = new_customer(gateway)
    _ask(gateway, customer.key, True, "claude-haiku-4.5", "[[error:401]] hi")
    customer.settled(1)
    text = gateway.log_text()
    assert "WARNING" in text and "provider anthropic answered 401" in text
    assert UPSTREAM_KEYS["ANTHROPIC_API_KEY"] not in text
