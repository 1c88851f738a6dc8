"""Hostile requests against a real gateway process: bodies, headers and query strings.

The only acceptable answers are a 2xx or a 4xx with a JSON error in the endpoint's shape;
no 4xx costs anything; no header value is echoed or logged; the gateway keeps serving.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.parse import quote

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile_bodies import hostile_body

CREDIT = 100 * 1_000_000
MESSAGES = "/v1/messages"
CHAT = "/v1/chat/completions"
COUNT_TOKENS = "/v1/messages/count_tokens"
FAST = settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))


def assert_error_shape(status: int, body: dict, path: str) -> None:
    assert 400 <= status < 500, (status, body)
    if path in (MESSAGES, COUNT_TOKENS):
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    elif path.startswith("/v1/"):
        assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    else:
        assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    assert body["error"]["message"]


def raw_request(gateway, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as they are (no client-side header checks); the status and body."""
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + b"\r\n" + body)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, answer.read()


def post_with_header(gateway, path: str, name: bytes, value: bytes, key: str) -> tuple[int, bytes]:
    body = b'{"model": "deepseek-v3.2", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}'
    auth = b"" if name.lower() == b"authorization" else b"Authorization: Bearer " + key.encode() + b"\r\n"
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n").encode() + auth + name + b": " + value + b"\r\n"
    return raw_request(gateway, head, body)


@pytest.fixture(scope="module")
def customer(gateway, fake_upstream):
    account_id = gateway.create_account(CREDIT)
    return account_id, gateway.create_key(account_id)["key"]


def _post(gateway, path: str, key: str, body: dict) -> requests.Response:
    return requests.post(f"{gateway.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


# --- items seen in the wild ----------------------------------------------------------

@pytest.mark.parametrize("content, param", [
    ([1], "messages.1.content.0.content.0"), (5, "messages.1.content.0.content"),
    ({}, "messages.1.content.0.content"), ([{"type": "text", "text": 3}], "messages.1.content.0.content.0.text"),
])
def test_a_malformed_tool_result_is_a_400_naming_the_field(gateway, customer, content, param):
    account_id, key = customer
    body = {"model": "deepseek-v3.2", "max_tokens": 10, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": content}]}]}
    answer = _post(gateway, MESSAGES, key, body)
    assert_error_shape(answer.status_code, answer.json(), MESSAGES)
    assert answer.json()["error"]["message"].startswith(param + ":")


@pytest.mark.parametrize("path, field, value", [
    (MESSAGES, "stop_sequences", "END"), (CHAT, "stop", ["a", "b", "c", "d", "e"]), (CHAT, "stop", 5),
    (MESSAGES, "max_tokens", "10"), (CHAT, "temperature", "warm"), (CHAT, "stream", "true"),
])
def test_scalar_fields_of_the_wrong_type_are_400(gateway, customer, path, field, value):
    _, key = customer
    body = {"model": "deepseek-v3.2", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], field: value}
    answer = _post(gateway, path, key, body)
    assert_error_shape(answer.status_code, answer.json(), path)
    assert field in answer.json()["error"]["message"] or answer.json()["error"].get("param") == field


@pytest.mark.parametrize("path", [CHAT, MESSAGES, COUNT_TOKENS])
def test_an_oversized_authorization_header_is_431_json_and_never_echoed_or_logged(gateway, customer, path):
    _, key = customer
    value = b"Bearer " + key.encode() + b"x" * 9000
    status, body = post_with_header(gateway, path, b"Authorization", value, key)
    assert status == 431
    assert_error_shape(status, orjson.loads(body), path)
    assert key.encode()[:12] not in body and key[:12] not in gateway.log_text()


@pytest.mark.parametrize("name, value, expected", [
    (b"Authorization", b"Bearer {key}" + b"y" * 70000, 431),  # above the parser's raised limit
    (b"Authorization", b"Bearer {key}\x00", 400),
    (b"anthropic-beta", b"tools\x01{key}", 400),
    (b"x-api-key", b"{key}\x7f", 400),
])
def test_what_the_parser_refuses_is_json_with_no_key_bytes_anywhere(gateway, customer, name, value, expected):
    _, key = customer
    status, body = post_with_header(gateway, MESSAGES, name, value.replace(b"{key}", key.encode()), key)
    assert status == expected
    assert key.encode()[:12] not in body and b"Bearer" not in body
    assert key[:12] not in gateway.log_text()
    assert requests.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10).ok


def test_a_control_character_in_anthropic_beta_is_a_400_naming_the_header(gateway, customer):
    _, key = customer
    status, body = post_with_header(gateway, MESSAGES, b"anthropic-beta", "tools\u0085x".encode(), key)
    answer = orjson.loads(body)
    assert status == 400
    assert_error_shape(status, answer, MESSAGES)
    assert "anthropic-beta" in answer["error"]["message"]


@pytest.mark.parametrize("params, name", [
    ({"end": "9999-12-31"}, "end"), ({"start": "0001-01-01"}, "start"), ({"tz": "Europe/\x00Berlin"}, "tz"),
    ({"cursor": "djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}, "cursor"), ({"model": "gpt\x00"}, "model"),
    ({"limit": "9" * 5000}, "limit"), ({"status": "2\u0661\u0662"}, "status"),
])
def test_request_log_filters_out_of_range_are_400_naming_the_parameter(gateway, customer, params, name):
    account_id, _ = customer
    answer = gateway.internal("GET", f"/accounts/{account_id}/requests", params=params)
    assert_error_shape(answer.status_code, answer.json(), "/internal")
    assert answer.status_code == 400 and name in answer.json()["error"]["message"]


@pytest.mark.parametrize("name", ["bad\x00name", "tab\there", "lone \ud800 surrogate", "bell\x07"])
def test_key_names_with_control_characters_are_422(gateway, customer, name):
    account_id, _ = customer
    answer = gateway.internal("POST", f"/accounts/{account_id}/keys",
                              data=json.dumps({"name": name}).encode(), headers={"Content-Type": "application/json"})
    # A lone surrogate is not valid JSON text (400); the rest break the field's rule (422).
    assert answer.status_code == (400 if "\ud800" in name else 422), answer.text
    assert "name" in answer.json()["error"]["message"] or answer.status_code == 400


# --- the class: every field of every request ------------------------------------------

ENDPOINT_MODELS = {
    CHAT: ["deepseek-v3.2", "claude-haiku-4.5"], MESSAGES: ["deepseek-v3.2", "claude-haiku-4.5"],
    "/v1/completions": ["deepseek-v3.2", "claude-haiku-4.5"], "/v1/embeddings": ["text-embedding-3-small"],
}


@pytest.mark.parametrize("path", list(ENDPOINT_MODELS))
def test_any_body_gets_a_2xx_or_a_shaped_4xx_and_a_4xx_costs_nothing(gateway, fake_upstream, path):
    account_id = gateway.create_account(CREDIT)
    key = gateway.create_key(account_id)["key"]
    answers: list[int] = []

    @FAST
    @given(body=hostile_body(path, ENDPOINT_MODELS[path]))
    def run(body):
        answer = _post(gateway, path, key, body)
        answers.append(answer.status_code)
        if answer.status_code >= 300:
            assert_error_shape(answer.status_code, answer.json(), path)

    run()
    ok = sum(1 for status in answers if status < 300)
    rows = _settled_rows(gateway, account_id, len(answers))
    assert all(row["cost_micro_p"] == 0 for row in rows if row["status"] >= 400)
    charges = [e for e in gateway.internal("GET", f"/accounts/{account_id}/ledger", params={"limit": 200}).json()["data"]
               if e["kind"] != "credit"]
    assert len(charges) <= ok


def _settled_rows(gateway, account_id: str, count: int) -> list[dict]:
    deadline = time.monotonic() + 20
    while True:
        rows = gateway.internal("GET", f"/accounts/{account_id}/requests", params={"limit": 200}).json()["data"]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


HEADER_NAMES = st.sampled_from([b"Authorization", b"x-api-key", b"anthropic-beta", b"anthropic-version",
                                b"Content-Type", b"X-Anything"])
HEADER_VALUES = st.binary(max_size=40) | st.builds(lambda n, b: b * n, st.integers(8000, 70000), st.sampled_from(
    [b"a", b"\xc2\x85", b"\x00"]))


@pytest.mark.parametrize("path", [CHAT, MESSAGES, "/v1/models", "/internal/health"])
def test_any_header_gets_no_5xx_and_no_echo(gateway, customer, path):
    _, key = customer

    @FAST
    @given(name=HEADER_NAMES, value=HEADER_VALUES)
    def run(name, value):
        value = value.replace(b"\r", b"").replace(b"\n", b"")
        status, body = post_with_header(gateway, path, name, b"Bearer " + key.encode() + value, key)
        assert status < 500, body[:300]
        if len(value) > 16:
            assert value[:16] not in body

    run()
    assert key[:12] not in gateway.log_text()
    assert requests.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10).ok


QUERY_VALUES = st.text(max_size=12) | st.sampled_from(
    ["9999-12-31", "0001-01-01", "2026-02-30", "-1", "9" * 30, "1e9", "Europe/Berlin", "../etc", "\x00", "\ud800",
     "djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "v1:-1", "500", "ok"])


@pytest.mark.parametrize("path", ["/accounts/{id}/requests", "/accounts/{id}/requests.csv", "/accounts/{id}/usage",
                                  "/accounts/{id}/ledger", "/accounts/{id}/summary", "/admin/requests",
                                  "/admin/accounts", "/admin/daily"])
def test_internal_query_parameters_never_5xx(gateway, customer, path):
    account_id, _ = customer

    @FAST
    @given(params=st.dictionaries(st.sampled_from(["start", "end", "tz", "cursor", "limit", "status", "model",
                                                   "key_id", "provider", "account_id", "q"]), QUERY_VALUES,
                                  max_size=4))
    def run(params):
        query = "&".join(f"{quote(k)}={quote(v, safe='', errors='surrogatepass')}" for k, v in params.items())
        answer = gateway.internal("GET", path.replace("{id}", account_id) + "?" + query)
        assert answer.status_code < 500, (params, answer.text[:300])

    run()
