"""The internal API end to end against a real gateway process, every answer checked
against gateway/openapi.yaml."""

from __future__ import annotations

import csv
import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from gateway.auth import create_key
from gateway.accounting.ledger import create_account, post_entry
from gateway.accounting.metering import RequestRecord, write_batch

SPEC = OpenAPI.from_file_path(str(Path(__file__).resolve().parents[2] / "gateway" / "openapi.yaml"))
MISSING = "00000000-0000-4000-8000-000000000000"


def call(gateway, method: str, path: str, **kw):
    """Call the internal API and validate the answer against the OpenAPI document."""
    response = gateway.internal(method, path, **kw)
    SPEC.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
    return response


def error_code(response) -> str:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "code"}
    assert "Traceback" not in response.text
    return body["error"]["code"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/health"), ("GET", "/catalog"), ("POST", "/accounts"), ("GET", f"/accounts/{MISSING}"),
        ("POST", f"/accounts/{MISSING}/ledger"), ("GET", f"/accounts/{MISSING}/keys"),
        ("DELETE", f"/accounts/{MISSING}/keys/{MISSING}"), ("GET", f"/accounts/{MISSING}/requests.csv"),
    ],
)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", "Basic abc", "Bearer "])
def test_wrong_or_missing_token_is_401(gateway, method, path, header):
    headers = {"Authorization": header} if header else {"Authorization": ""}
    response = call(gateway, method, path, headers=headers, json={})
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_health_and_catalogue(gateway):
    health = call(gateway, "GET", "/health")
    assert health.json()["status"] == "ok" and health.json()["database"] == "ok"
    catalog = call(gateway, "GET", "/catalog").json()
    models = {m["id"]: m for m in catalog["models"]}
    assert (models["deepseek-v3.2"]["input_price"], models["deepseek-v3.2"]["output_price"]) == (280, 420)
    assert models["gpt-5.2-pro"]["priced"] is False and models["gpt-5.2-pro"]["available"] is False
    assert {p["id"] for p in catalog["providers"]} >= {"deepseek", "openai", "anthropic", "google"}


def test_account_lifecycle_and_idempotent_creation(gateway):
    external = f"user-{uuid.uuid4()}"
    first = call(gateway, "POST", "/accounts", json={"email": "a@example.com", "external_id": external})
    again = call(gateway, "POST", "/accounts", json={"email": "a@example.com", "external_id": external})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    account_id = first.json()["id"]
    read = call(gateway, "GET", f"/accounts/{account_id}").json()
    assert read["balance_micro_p"] == 0 and read["status"] == "active"
    suspended = call(gateway, "PATCH", f"/accounts/{account_id}", json={"status": "suspended"})
    assert suspended.json()["status"] == "suspended"
    assert call(gateway, "PATCH", f"/accounts/{account_id}", json={"status": "closed"}).status_code == 422
    assert call(gateway, "GET", f"/accounts/{MISSING}").status_code == 404
    assert call(gateway, "GET", "/accounts/not-an-id").status_code == 404


@pytest.mark.parametrize(
    "body, status",
    [
        ("not json", 400),
        ("[1, 2]", 400),
        ('{"email": 5}', 422),
        ('{"email": "no-at-sign"}', 422),
        ('{"surprise": 1}', 422),
    ],
)
def test_account_creation_rejects_bad_bodies(gateway, body, status):
    response = call(gateway, "POST", "/accounts", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    error_code(response)


def test_ledger_credit_replay_conflict_and_balance(gateway):
    account_id = gateway.create_account()
    body = {"kind": "credit", "amount_micro_p": 5_000_000, "idempotency_key": f"cs_{uuid.uuid4()}", "description": "top-up"}
    first = call(gateway, "POST", f"/accounts/{account_id}/ledger", json=body)
    replay = call(gateway, "POST", f"/accounts/{account_id}/ledger", json=body)
    assert (first.status_code, replay.status_code) == (201, 200)
    assert first.json()["entry"] == replay.json()["entry"]
    conflict = call(gateway, "POST", f"/accounts/{account_id}/ledger", json={**body, "amount_micro_p": 6_000_000})
    assert conflict.status_code == 409 and error_code(conflict) == "idempotency_conflict"
    refund = call(gateway, "POST", f"/accounts/{account_id}/ledger",
                  json={"kind": "refund", "amount_micro_p": 2_000_000, "idempotency_key": f"re_{uuid.uuid4()}"})
    assert refund.json()["entry"]["amount_micro_p"] == -2_000_000
    assert refund.json()["balance_micro_p"] == 3_000_000
    account = call(gateway, "GET", f"/accounts/{account_id}").json()
    assert (account["balance_micro_p"], account["credited_micro_p"]) == (3_000_000, 5_000_000)


def test_concurrent_replays_of_one_top_up_credit_once(gateway):
    account_id = gateway.create_account()
    body = {"kind": "credit", "amount_micro_p": 1_000_000, "idempotency_key": f"cs_{uuid.uuid4()}"}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: gateway.internal("POST", f"/accounts/{account_id}/ledger", json=body), range(16)))
    assert sorted(a.status_code for a in answers) == [200] * 15 + [201]
    assert gateway.balance(account_id) == 1_000_000


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "credit", "amount_micro_p": -5, "idempotency_key": "k"},
        {"kind": "credit", "amount_micro_p": 0, "idempotency_key": "k"},
        {"kind": "credit", "amount_micro_p": 1.5, "idempotency_key": "k"},
        {"kind": "credit", "amount_micro_p": "100", "idempotency_key": "k"},
        {"kind": "credit", "amount_micro_p": True, "idempotency_key": "k"},
        {"kind": "debit", "amount_micro_p": -5, "idempotency_key": "k"},
        {"kind": "adjustment", "amount_micro_p": 0, "idempotency_key": "k"},
        {"kind": "usage", "amount_micro_p": 5, "idempotency_key": "k"},
        {"kind": "credit", "amount_micro_p": 5},
        {"kind": "credit", "amount_micro_p": 5, "idempotency_key": ""},
        {"kind": "credit", "amount_micro_p": 5, "idempotency_key": "usage:abc"},
        {"kind": "credit", "amount_micro_p": 10**18, "idempotency_key": "k"},
    ],
)
def test_ledger_rejects_bad_entries_and_changes_nothing(gateway, body):
    account_id = gateway.create_account(balance_micro_p=1_000)
    response = call(gateway, "POST", f"/accounts/{account_id}/ledger", json=body)
    assert response.status_code == 422
    error_code(response)
    assert gateway.balance(account_id) == 1_000


def test_ledger_unknown_account_is_404(gateway):
    response = call(gateway, "POST", f"/accounts/{MISSING}/ledger",
                    json={"kind": "credit", "amount_micro_p": 5, "idempotency_key": f"x-{uuid.uuid4()}"})
    assert response.status_code == 404 and error_code(response) == "account_not_found"


def test_ledger_listing_pages_newest_first(gateway):
    account_id = gateway.create_account()
    for i in range(7):
        call(gateway, "POST", f"/accounts/{account_id}/ledger",
             json={"kind": "credit", "amount_micro_p": 1 + i, "idempotency_key": f"l-{account_id}-{i}"})
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = call(gateway, "GET", f"/accounts/{account_id}/ledger", params=params).json()
        seen.extend(e["amount_micro_p"] for e in page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    assert call(gateway, "GET", f"/accounts/{account_id}/ledger", params={"cursor": "garbage!"}).status_code == 400
    assert call(gateway, "GET", f"/accounts/{account_id}/ledger", params={"limit": 0}).status_code == 400


def test_keys_create_list_rename_limit_expiry_and_revoke(gateway):
    account_id = gateway.create_account()
    expires = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0)
    created = call(gateway, "POST", f"/accounts/{account_id}/keys",
                   json={"name": "  production  ", "spend_limit_micro_p": 9_000_000, "expires_at": expires.isoformat()})
    assert created.status_code == 201
    key = created.json()
    assert key["name"] == "production" and key["key"].startswith("sama_")
    assert key["masked"] == f"{key['key'][:9]}…{key['key'][-4:]}"
    assert key["expires_at"] == expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    listed = call(gateway, "GET", f"/accounts/{account_id}/keys").json()["data"]
    assert [k["id"] for k in listed] == [key["id"]]
    assert key["key"] not in str(listed)
    renamed = call(gateway, "PATCH", f"/accounts/{account_id}/keys/{key['id']}",
                   json={"name": "prod", "spend_limit_micro_p": None, "expires_at": None}).json()
    assert (renamed["name"], renamed["spend_limit_micro_p"], renamed["expires_at"]) == ("prod", None, None)
    revoked = call(gateway, "DELETE", f"/accounts/{account_id}/keys/{key['id']}").json()
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    again = call(gateway, "DELETE", f"/accounts/{account_id}/keys/{key['id']}").json()
    assert again["revoked_at"] == revoked["revoked_at"]
    other = gateway.create_account()
    assert call(gateway, "DELETE", f"/accounts/{other}/keys/{key['id']}").status_code == 404
    assert call(gateway, "PATCH", f"/accounts/{account_id}/keys/{MISSING}", json={"name": "x"}).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "k", "spend_limit_micro_p": 0},
        {"name": "k", "spend_limit_micro_p": "lots"},
        {"name": "k", "expires_at": "tomorrow"},
        {"name": "k", "expires_at": "2020-01-01T00:00:00Z"},
        {"name": "k", "expires_at": "2099-01-01T00:00:00"},
    ],
)
def test_key_creation_rejects_bad_input_and_creates_nothing(gateway, body):
    account_id = gateway.create_account()
    response = call(gateway, "POST", f"/accounts/{account_id}/keys", json=body)
    assert response.status_code == 422
    error_code(response)
    assert call(gateway, "GET", f"/accounts/{account_id}/keys").json()["data"] == []


def seed_requests(gateway_db, count: int) -> tuple[str, str, str]:
    """An account with two keys and ``count`` logged requests, one second apart."""

    def work(conn):
        account, _ = create_account(conn, None, None)
        post_entry(conn, account.id, "credit", 10**9, f"seed-{uuid.uuid4()}")
        _, first = create_key(conn, account.id, "=cmd|' /C calc'!A0")
        _, second = create_key(conn, account.id, "second")
        start = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
        records = [
            RequestRecord(
                request_id=f"req-{uuid.uuid4()}", account_id=account.id, key_id=(first.id if i % 2 else second.id),
                model="kimi-k2.5" if i % 3 else "glm-5", provider="moonshot", endpoint="/v1/chat/completions",
                stream=bool(i % 2), input_tokens=i, output_tokens=2 * i, cost_micro_p=0 if i % 10 == 0 else 1_500 * i,
                latency_ms=100 + i, ttft_ms=None if i % 4 else 20, status=502 if i % 10 == 0 else 200,
                error_class="upstream_error" if i % 10 == 0 else None, estimated=False,
                created_at=start + timedelta(seconds=i),
            )
            for i in range(count)
        ]
        write_batch(conn, [(r, None) for r in records])
        return account.id, first.id, second.id

    return gateway_db.transaction_sync(work)


def test_request_log_pages_cover_every_row_once_with_filters(gateway, gateway_db):
    account_id, first_key, _ = seed_requests(gateway_db, 123)
    seen, cursor = [], None
    while True:
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        page = call(gateway, "GET", f"/accounts/{account_id}/requests", params=params).json()
        seen.extend(page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 123 and len({r["request_id"] for r in seen}) == 123
    assert [r["input_tokens"] for r in seen] == list(range(122, -1, -1))  # newest first

    def total(**params):
        rows, cursor = [], None
        while True:
            query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
            page = call(gateway, "GET", f"/accounts/{account_id}/requests", params=query).json()
            rows.extend(page["data"])
            if not page["next_cursor"]:
                return rows
            cursor = page["next_cursor"]

    assert all(r["key_id"] == first_key for r in total(key_id=first_key)) and len(total(key_id=first_key)) == 61
    assert len(total(status="error")) == 13 and len(total(status="502")) == 13 and len(total(status="ok")) == 110
    assert len(total(model="glm-5")) == 41
    assert len(total(start="2026-06-01", end="2026-06-01")) == 123
    assert total(start="2026-06-02") == []
    # 12:00 UTC on June 1st is already June 2nd in Kiritimati (UTC+14).
    assert len(total(start="2026-06-02", end="2026-06-02", tz="Pacific/Kiritimati")) == 123
    for params in ({"status": "weird"}, {"start": "June 1"}, {"tz": "Mars/Olympus"}, {"key_id": "k"}, {"limit": 201}):
        response = call(gateway, "GET", f"/accounts/{account_id}/requests", params=params)
        assert response.status_code == 400, params
    assert call(gateway, "GET", f"/accounts/{account_id}/requests", params={"start": "2026-06-02", "end": "2026-06-01"}).status_code == 422


def test_request_log_csv_export(gateway, gateway_db):
    account_id, first_key, _ = seed_requests(gateway_db, 2_345)
    response = call(gateway, "GET", f"/accounts/{account_id}/requests.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:4] == ["created_at", "request_id", "key_name", "key"]
    assert len(rows) == 1 + 2_345
    newest = dict(zip(rows[0], rows[1]))
    assert newest["created_at"] == "2026-06-01T12:39:04Z"  # start + 2,344 s
    assert newest["cost_micro_p"] == str(1_500 * 2_344) and newest["cost_p"] == "3.516000"
    names = {row[2] for row in rows[1:]}
    assert names == {"second", "'=cmd|' /C calc'!A0"}  # the formula is neutralised for spreadsheets
    assert newest["key"].startswith("sama_") and "…" in newest["key"]
    filtered = call(gateway, "GET", f"/accounts/{account_id}/requests.csv", params={"status": "error"})
    assert len(list(csv.reader(io.StringIO(filtered.text)))) == 1 + 235
    assert call(gateway, "GET", f"/accounts/{MISSING}/requests.csv").status_code == 404


def test_usage_and_summary_endpoints(gateway, gateway_db):
    account_id, _, _ = seed_requests(gateway_db, 20)
    response = call(gateway, "GET", f"/accounts/{account_id}/usage",
                    params={"start": "2026-06-01", "end": "2026-06-30", "tz": "Asia/Kathmandu"})
    body = response.json()
    assert body["totals"]["requests"] == 20
    assert body["totals"]["cost_micro_p"] == sum(1_500 * i for i in range(20) if i % 10)
    assert {r["date"] for r in body["daily"]} == {"2026-06-01"}
    assert {r["model"] for r in body["by_model"]} == {"kimi-k2.5", "glm-5"}
    assert len(body["by_key"]) == 2
    for params, status in [
        ({"start": "2026-06-02", "end": "2026-06-01"}, 422),
        ({"start": "2025-01-01", "end": "2026-06-01"}, 422),
        # 366 days counted inclusively, as the portal allows; one more is refused.
        ({"start": "2025-06-01", "end": "2026-06-01"}, 200),
        ({"start": "2025-05-31", "end": "2026-06-01"}, 422),
        ({"start": "2026-06-01"}, 400),
        ({"start": "2026-06-01", "end": "2026-06-02", "tz": "Nowhere/City"}, 400),
    ]:
        assert call(gateway, "GET", f"/accounts/{account_id}/usage", params=params).status_code == status
    summary = call(gateway, "GET", f"/accounts/{account_id}/summary", params={"tz": "Asia/Kolkata"}).json()
    assert summary["balance_micro_p"] == 10**9 - body["totals"]["cost_micro_p"]


def test_usage_zone_change_is_validated_and_keeps_every_report_the_same(gateway, gateway_db):
    account_id, _, _ = seed_requests(gateway_db, 20)
    params = {"start": "2026-05-31", "end": "2026-06-02", "tz": "Asia/Kathmandu"}
    from_buckets = call(gateway, "GET", f"/accounts/{account_id}/usage", params=params).json()
    assert call(gateway, "GET", f"/accounts/{account_id}").json()["usage_tz"] == "UTC"

    for body in ({}, {"usage_tz": "Nowhere/City"}, {"usage_tz": 5}, {"usage_tz": ""}, {"usage_tz": "../../etc/passwd"}):
        refused = call(gateway, "PATCH", f"/accounts/{account_id}", json=body)
        assert refused.status_code == 422, body
        assert refused.json()["error"]["code"] == "invalid_field"
    assert call(gateway, "PATCH", f"/accounts/{MISSING}", json={"usage_tz": "Asia/Kathmandu"}).status_code == 404

    moved = call(gateway, "PATCH", f"/accounts/{account_id}", json={"usage_tz": "Asia/Kathmandu"})
    assert moved.status_code == 200 and moved.json()["usage_tz"] == "Asia/Kathmandu"
    assert moved.json()["status"] == "active"
    assert call(gateway, "GET", f"/accounts/{account_id}/usage", params=params).json() == from_buckets
    summary = call(gateway, "GET", f"/accounts/{account_id}/summary", params={"tz": "Asia/Kathmandu"}).json()
    assert summary["usage_tz"] == "Asia/Kathmandu"
