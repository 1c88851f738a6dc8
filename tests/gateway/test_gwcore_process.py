"""The gateway as processes: start-up errors, shutdown flush, two processes on one database."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from aiohttp.test_utils import TestClient, TestServer

from fixtures.gateway import REPO, start_gateway
from gateway.appkeys import SETTINGS
from gateway.config import Settings
from gateway.api.internal import create_internal_app

CHAT_MODEL = "deepseek-v3.2"  # 280 / 420 P per 1M tokens


def chat(gateway_url: str, key: str, text: str) -> requests.Response:
    return requests.post(
        f"{gateway_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 100},
        timeout=30,
    )


def all_requests(gateway, account_id: str) -> list[dict]:
    rows, cursor = [], None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = gateway.internal("GET", f"/accounts/{account_id}/requests", params=params).json()
        rows.extend(page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            return rows


def ledger_total(gateway, account_id: str) -> int:
    total, cursor = 0, None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = gateway.internal("GET", f"/accounts/{account_id}/ledger", params=params).json()
        total += sum(e["amount_micro_p"] for e in page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            return total


@pytest.mark.parametrize(
    "env, names",
    [
        ({"GATEWAY_PORT": "eighty"}, "GATEWAY_PORT"),
        ({"GATEWAY_INTERNAL_PORT": "0"}, "GATEWAY_INTERNAL_PORT"),
        ({"GATEWAY_PORT": "18123", "GATEWAY_INTERNAL_PORT": "18123"}, "GATEWAY_INTERNAL_PORT"),
        ({"GATEWAY_FLUSH_ALERT_SECONDS": "-1"}, "GATEWAY_FLUSH_ALERT_SECONDS"),
        ({"PROVIDERS_FILE": "/nonexistent/providers.toml"}, "PROVIDERS_FILE"),
        ({"INTERNAL_API_TOKEN": "short"}, "INTERNAL_API_TOKEN"),
        ({"GATEWAY_DATABASE_URL": "mysql://x@y/z"}, "GATEWAY_DATABASE_URL"),
        ({"GATEWAY_DATABASE_URL": "postgresql+psycopg://nobody:hunter2secret@127.0.0.1:1/none"}, "GATEWAY_DATABASE_URL"),
    ],
)
def test_bad_setting_fails_with_one_line_naming_it(tmp_path, env, names):
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "SAMALINK_INSTANCE_DIR": str(tmp_path),
            "INTERNAL_API_TOKEN": "a-long-enough-internal-token", "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path}/g.db"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway"], cwd=REPO, env={**base, **env}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("samalink gateway: ") and names in lines[0]
    assert "hunter2secret" not in result.stderr


def test_unexpected_failure_is_a_bare_json_500_and_the_log_holds_no_secret(caplog):
    secret = "sama_0d5c8f5e-8b7e-4d52-9a67-3f1c8e0b2a11"

    async def explode(request):
        raise RuntimeError(f"upstream said {secret}")

    async def main():
        app = create_internal_app()
        app[SETTINGS] = Settings(internal_api_token="t" * 32)
        app.router.add_get("/explode", explode)
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/explode", headers={"Authorization": "Bearer " + "t" * 32})
            return response.status, await response.json()

    with caplog.at_level(logging.ERROR, logger="samalink.gateway.internal"):
        status, body = asyncio.run(main())
    assert status == 500
    assert body == {"error": {"message": "The gateway could not complete this request.", "type": "server_error", "code": "internal_error"}}
    assert "RuntimeError" in caplog.text and secret not in caplog.text


def test_revocation_reaches_a_second_gateway_process_within_two_seconds(gateway):
    second = start_gateway(gateway.env)
    try:
        account_id = gateway.create_account(balance_micro_p=1_000_000)
        key = gateway.create_key(account_id)
        # Created on the first process, usable on the second at once.
        models = requests.get(f"{second.url}/v1/models", headers={"Authorization": f"Bearer {key['key']}"}, timeout=10)
        assert models.status_code == 200
        revoked = gateway.internal("DELETE", f"/accounts/{account_id}/keys/{key['id']}")
        assert revoked.status_code == 200
        # The process that revoked it refuses it at once …
        same = requests.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {key['key']}"}, timeout=10)
        assert same.status_code == 401
        # … the other one within 2 s.
        deadline = time.monotonic() + 2.0
        while True:
            answer = requests.get(f"{second.url}/v1/models", headers={"Authorization": f"Bearer {key['key']}"}, timeout=10)
            if answer.status_code == 401:
                break
            assert time.monotonic() < deadline, "revoked key still accepted after 2 s"
            time.sleep(0.05)
        assert key["key"] not in answer.text
    finally:
        assert second.stop() == 0
    assert key["key"] not in second.log_text()


def test_sigterm_flushes_every_request_and_returns_the_lease(gateway):
    # This process would not flush for an hour: only the shutdown flush can record the calls.
    lazy = start_gateway({**gateway.env, "GATEWAY_FLUSH_INTERVAL": "3600"})
    account_id = gateway.create_account(balance_micro_p=50_000_000)
    key = gateway.create_key(account_id)["key"]
    try:
        answers = [chat(lazy.url, key, f"hello {i} [[usage:1000:80]]") for i in range(12)]
        assert [a.status_code for a in answers] == [200] * 12, answers[0].text
        assert gateway.internal("GET", f"/accounts/{account_id}").json()["reserved_micro_p"] > 0
        assert all_requests(gateway, account_id) == []
    finally:
        assert lazy.stop() == 0
    rows = all_requests(gateway, account_id)
    assert len(rows) == 12
    cost = 1000 * 280 + 80 * 420
    assert all(r["cost_micro_p"] == cost and r["status"] == 200 for r in rows)
    account = gateway.internal("GET", f"/accounts/{account_id}").json()
    assert account["balance_micro_p"] == 50_000_000 - 12 * cost
    assert account["reserved_micro_p"] == 0
    assert account["requests"] == 12
    assert ledger_total(gateway, account_id) == account["balance_micro_p"]
    assert key not in lazy.log_text()


def test_a_gateway_whose_writer_is_behind_turns_new_requests_away_in_the_clients_format(gateway):
    # One request waiting to be written is the bound, and this process would not flush for an hour.
    behind = start_gateway({**gateway.env, "GATEWAY_FLUSH_INTERVAL": "3600", "GATEWAY_WRITER_BACKLOG": "1"})
    account_id = gateway.create_account(balance_micro_p=50_000_000)
    key = gateway.create_key(account_id)["key"]
    try:
        assert chat(behind.url, key, "first [[usage:1000:80]]").status_code == 200

        def messages() -> requests.Response:
            return requests.post(f"{behind.url}/v1/messages", headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                                 json={"model": CHAT_MODEL, "max_tokens": 100,
                                       "messages": [{"role": "user", "content": "second"}]}, timeout=30)

        with ThreadPoolExecutor(2) as pool:
            openai_answer = pool.submit(chat, behind.url, key, "second")
            anthropic_answer = pool.submit(messages)
            openai_answer, anthropic_answer = openai_answer.result(), anthropic_answer.result()
        assert openai_answer.status_code == anthropic_answer.status_code == 503
        assert openai_answer.headers["retry-after"] == anthropic_answer.headers["retry-after"] == "10"
        assert openai_answer.json()["error"]["code"] == "overloaded"
        assert anthropic_answer.json()["type"] == "error"
        assert anthropic_answer.json()["error"]["type"] == "overloaded_error"
        metrics = requests.get(f"{behind.internal_url}/metrics", timeout=10).text
        assert "samalink_batch_backlog_waits_total 2.0" in metrics
    finally:
        assert behind.stop() == 0
    # Every answer is written at shutdown; only the answered call is charged.
    rows = all_requests(gateway, account_id)
    assert sorted(r["status"] for r in rows) == [200, 503, 503]
    cost = 1000 * 280 + 80 * 420
    assert gateway.internal("GET", f"/accounts/{account_id}").json()["balance_micro_p"] == 50_000_000 - cost


def test_two_gateway_processes_cannot_overspend_one_balance(gateway):
    second = start_gateway(gateway.env)
    try:
        account_id = gateway.create_account(balance_micro_p=0)
        key = gateway.create_key(account_id)["key"]
        # Learn what one request reserves by giving exactly that much, then a bit less than 4x.
        gateway.internal("POST", f"/accounts/{account_id}/ledger",
                         json={"kind": "credit", "amount_micro_p": 200_000, "idempotency_key": f"probe-{account_id}"})
        cost = 10 * 280 + 5 * 420
        with ThreadPoolExecutor(50) as pool:
            urls = [gateway.url, second.url] * 25
            answers = list(pool.map(lambda u: chat(u, key, "go [[usage:10:5]]"), urls))
        statuses = [a.status_code for a in answers]
        assert set(statuses) <= {200, 402}, statuses
        assert 402 in statuses and 200 in statuses
        deadline = time.monotonic() + 30
        while len(all_requests(gateway, account_id)) < len(statuses) and time.monotonic() < deadline:
            time.sleep(0.1)
        ok = statuses.count(200)
        account = gateway.internal("GET", f"/accounts/{account_id}").json()
        assert account["balance_micro_p"] == 200_000 - ok * cost
        assert account["balance_micro_p"] >= 0  # real cost below each reservation: no overdraw at all
        assert ledger_total(gateway, account_id) == account["balance_micro_p"]
    finally:
        assert second.stop() == 0


def test_internal_api_answers_only_on_its_own_listener(gateway):
    auth = {"Authorization": f"Bearer {gateway.token}"}
    assert gateway.internal_url != gateway.url
    # The internal listener serves it …
    assert requests.get(f"{gateway.internal_url}/internal/health", headers=auth, timeout=10).status_code == 200
    # … the public one does not know it, with the right token or without one.
    for path in ("/internal/health", "/internal/accounts", "/internal/admin/status", "/internal", "/internal/nope"):
        for headers in (auth, {}):
            answer = requests.get(f"{gateway.url}{path}", headers=headers, timeout=10)
            assert answer.status_code == 404, (path, answer.status_code)
            assert answer.headers["content-type"].startswith("application/json")
            error = answer.json()["error"]
            assert error["code"] == "unknown_endpoint" and error["type"] == "invalid_request_error"
    # A leaked token alone creates nothing through the public port.
    before = gateway.internal("GET", "/admin/accounts", params={"q": "leaked@example.com"}).json()
    created = requests.post(f"{gateway.url}/internal/accounts", headers=auth, json={"email": "leaked@example.com"},
                            timeout=10)
    assert created.status_code == 404
    after = gateway.internal("GET", "/admin/accounts", params={"q": "leaked@example.com"}).json()
    assert after == before
    # The public API itself is where it was.
    account_id = gateway.create_account(balance_micro_p=1_000_000)
    key = gateway.create_key(account_id)["key"]
    assert requests.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {key}"},
                        timeout=10).status_code == 200


def test_a_busy_internal_port_fails_with_one_line_naming_it(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "SAMALINK_INSTANCE_DIR": str(tmp_path),
               "INTERNAL_API_TOKEN": "a-long-enough-internal-token", "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path}/g.db",
               "GATEWAY_PORT": "0", "GATEWAY_INTERNAL_PORT": str(port)}
        result = subprocess.run([sys.executable, "-m", "gateway"], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 2
    assert "GATEWAY_INTERNAL_PORT" in result.stderr.strip().splitlines()[-1]
