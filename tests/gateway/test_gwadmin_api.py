"""The operator console's internal API (/internal/admin) against real gateway processes,
every answer validated against gateway/openapi.yaml."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from fixtures.gateway import start_gateway
from fixtures.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, SLOW_CHUNKS
from gateway.catalog import CACHE_PRICES, Catalog, Model
from gateway.accounting.pricing import TokenUsage, cost_micro_p
from gateway.accounting.catalog_overrides import apply_overrides, rows_in_force

SPEC = OpenAPI.from_file_path(str(Path(__file__).resolve().parents[2] / "gateway" / "openapi.yaml"))
FILE_PRICES = {"deepseek-v3.2": (280, 420), "glm-5": (700, 2300), "qwen-3.5-plus": (220, 1300)}


def call(gateway, method: str, path: str, **kw):
    """Call the internal API and validate the answer against the OpenAPI document."""
    response = gateway.internal(method, path, **kw)
    SPEC.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
    return response


def chat(gateway, key: str, model: str = "deepseek-v3.2", text: str = "Hello") -> requests.Response:
    return requests.post(f"{gateway.url}/v1/chat/completions", timeout=30, headers={"Authorization": f"Bearer {key}"},
                         json={"model": model, "messages": [{"role": "user", "content": text}]})


def wait_logged(gateway, account_id: str, count: int) -> list[dict]:
    deadline = time.monotonic() + 30
    while True:
        rows = call(gateway, "GET", "/admin/requests", params={"account_id": account_id, "limit": 200}).json()["data"]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


@pytest.fixture
def customer(gateway):
    """A funded account (1,000 P) with one key, e-mail unique to the test."""
    email = f"ops-{uuid.uuid4().hex[:10]}@example.com"
    account_id = gateway.create_account(1_000_000_000, email=email)
    key = gateway.create_key(account_id)
    return SimpleNamespace(account_id=account_id, email=email, key=key["key"], key_id=key["id"])


@pytest.fixture
def restore_catalog(gateway):
    """Puts the changed models back to the providers file's state after the test."""
    yield
    models = {m["id"]: m for m in call(gateway, "GET", "/admin/catalog").json()["models"]}
    for model_id, (input_price, output_price) in FILE_PRICES.items():
        m = models[model_id]
        cache = {name: m[f"file_{name}"] for name in CACHE_PRICES}
        if (m["input_price"], m["output_price"], m["enabled"]) != (input_price, output_price, True) \
                or any(m[name] != value for name, value in cache.items()):
            answer = gateway.internal("POST", f"/admin/catalog/{model_id}", json={
                "input_price": input_price, "output_price": output_price, "enabled": True, **cache,
                "actor": "tests", "reason": "restore the file's state"})
            assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("method, path", [
    ("GET", "/admin/accounts"), ("GET", "/admin/requests"), ("GET", "/admin/daily?start=2026-01-01&end=2026-01-02"),
    ("GET", "/admin/providers"), ("GET", "/admin/status"), ("GET", "/admin/catalog"), ("POST", "/admin/catalog/deepseek-v3.2"),
])
def test_admin_routes_need_the_internal_token(gateway, method, path):
    response = call(gateway, method, path, headers={"Authorization": "Bearer wrong-token-0123456789"},
                    json={"input_price": 0, "output_price": 0, "actor": "x", "reason": "y"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_status_names_the_database_without_its_password(gateway):
    status = call(gateway, "GET", "/admin/status").json()
    url = gateway.env["GATEWAY_DATABASE_URL"]
    assert status["database_backend"] == ("postgresql" if url.startswith("postgresql") else "sqlite")
    assert ":samalink@" not in status["database_url"]
    assert status["catalog_refreshed_at"] is not None


def test_account_search_by_email_part_and_by_id(gateway, customer):
    other = gateway.create_account(email=f"someone-else-{uuid.uuid4().hex[:8]}@example.org")
    by_email = call(gateway, "GET", "/admin/accounts", params={"q": customer.email.split("@")[0].upper()}).json()["data"]
    assert [a["id"] for a in by_email] == [customer.account_id]
    assert by_email[0]["balance_micro_p"] == 1_000_000_000
    by_id = call(gateway, "GET", "/admin/accounts", params={"q": other}).json()["data"]
    assert [a["id"] for a in by_id] == [other]
    # A LIKE wildcard in the query is a literal character, not "match everything".
    assert call(gateway, "GET", "/admin/accounts", params={"q": "%_%"}).json()["data"] == []
    assert call(gateway, "GET", "/admin/accounts", params={"q": "x" * 400}).status_code == 400


def test_all_requests_filters_by_customer_provider_and_status(gateway, customer):
    second = gateway.create_account(1_000_000_000, email=f"ops2-{uuid.uuid4().hex[:8]}@example.com")
    second_key = gateway.create_key(second)["key"]
    assert chat(gateway, customer.key).status_code == 200
    assert chat(gateway, customer.key, "claude-haiku-4.5").status_code == 200
    assert chat(gateway, customer.key, text="[[error:500]]").status_code == 500
    assert chat(gateway, second_key).status_code == 200
    rows = wait_logged(gateway, customer.account_id, 3)
    assert len(rows) == 3 and {r["account_email"] for r in rows} == {customer.email}
    assert {r["provider"] for r in rows} == {"deepseek", "anthropic"}
    anthropic_rows = call(gateway, "GET", "/admin/requests",
                          params={"account_id": customer.account_id, "provider": "anthropic"}).json()["data"]
    assert [r["model"] for r in anthropic_rows] == ["claude-haiku-4.5"]
    failed = call(gateway, "GET", "/admin/requests", params={"account_id": customer.account_id, "status": "error"}).json()["data"]
    assert [(r["status"], r["error_class"]) for r in failed] == [(500, "upstream_http_500")]
    wait_logged(gateway, second, 1)
    everyone = call(gateway, "GET", "/admin/requests", params={"provider": "deepseek", "limit": 200}).json()["data"]
    assert {customer.account_id, second} <= {r["account_id"] for r in everyone}
    page = call(gateway, "GET", "/admin/requests", params={"account_id": customer.account_id, "limit": 2}).json()
    rest = call(gateway, "GET", "/admin/requests", params={"account_id": customer.account_id, "limit": 2,
                                                           "cursor": page["next_cursor"]}).json()
    assert len(page["data"]) == 2 and len(rest["data"]) == 1 and rest["next_cursor"] is None
    for bad in ({"account_id": "nope"}, {"status": "fine"}, {"start": "2026-13-01"}, {"tz": "Mars/Olympus"}):
        assert call(gateway, "GET", "/admin/requests", params=bad).status_code == 400


def test_provider_health_counts_upstream_errors(gateway, customer):
    gateway.settled()  # the counts are everyone's: earlier tests' calls must not land in between
    before = {p["provider"]: p for p in call(gateway, "GET", "/admin/providers").json()["windows"][0]["providers"]}
    assert chat(gateway, customer.key, "glm-5").status_code == 200
    assert chat(gateway, customer.key, "glm-5", text="[[error:503]]").status_code == 503
    wait_logged(gateway, customer.account_id, 2)
    windows = call(gateway, "GET", "/admin/providers").json()["windows"]
    assert [w["window"] for w in windows] == ["hour", "day"]
    zhipu = {p["provider"]: p for p in windows[0]["providers"]}["zhipu"]
    old = before.get("zhipu", {"requests": 0, "errors": 0})
    assert zhipu["requests"] - old["requests"] == 2
    assert zhipu["errors"] - old["errors"] == 1
    assert 0 < zhipu["error_rate"] <= 1 and zhipu["avg_latency_ms"] is not None


def test_daily_money_shows_topups_adjustments_and_spend(gateway, customer):
    today = datetime.now(timezone.utc).date().isoformat()
    params = {"start": today, "end": today, "tz": "UTC"}

    def today_row() -> dict:
        return call(gateway, "GET", "/admin/daily", params=params).json()["days"][0]

    gateway.settled()  # the day's sums are everyone's: earlier tests' calls must not land in between
    before = today_row()
    gateway.internal("POST", f"/accounts/{customer.account_id}/ledger", json={
        "kind": "credit", "amount_micro_p": 5_000_000, "idempotency_key": f"t-{uuid.uuid4()}"})
    gateway.internal("POST", f"/accounts/{customer.account_id}/ledger", json={
        "kind": "adjustment", "amount_micro_p": -1_000_000, "idempotency_key": f"t-{uuid.uuid4()}"})
    assert chat(gateway, customer.key).status_code == 200
    wait_logged(gateway, customer.account_id, 1)
    deadline = time.monotonic() + 10
    while (after := today_row())["requests"] == before["requests"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert after["date"] == today
    assert after["topups_micro_p"] - before["topups_micro_p"] == 5_000_000
    assert after["adjustments_micro_p"] - before["adjustments_micro_p"] == -1_000_000
    assert after["spend_micro_p"] - before["spend_micro_p"] == PROMPT_TOKENS * 280 + COMPLETION_TOKENS * 420
    week = call(gateway, "GET", "/admin/daily", params={"start": "2026-03-01", "end": "2026-03-31",
                                                        "tz": "Asia/Kathmandu"}).json()["days"]
    assert len(week) == 31 and week[0]["date"] == "2026-03-01"
    assert call(gateway, "GET", "/admin/daily", params={"start": today, "end": "2020-01-01"}).status_code == 422
    assert call(gateway, "GET", "/admin/daily", params={"start": today}).status_code == 400


def test_price_change_reaches_every_process_and_is_charged(gateway, customer, restore_catalog):
    second = start_gateway(gateway.env)
    try:
        answer = call(gateway, "POST", "/admin/catalog/deepseek-v3.2", json={
            "input_price": 1000, "output_price": 2000, "actor": "ops@example.com", "reason": "supplier raised prices"})
        assert answer.status_code == 201
        change = answer.json()["change"]
        assert (change["input_price"], change["output_price"], change["enabled"]) == (1000, 2000, True)
        # The process that recorded it serves the new price at once.
        listed = {m["id"]: m for m in call(gateway, "GET", "/catalog").json()["models"]}
        assert (listed["deepseek-v3.2"]["input_price"], listed["deepseek-v3.2"]["output_price"]) == (1000, 2000)
        # Another process on the same database within its poll interval.
        deadline = time.monotonic() + 20
        while True:
            other = {m["id"]: m for m in second.internal("GET", "/catalog").json()["models"]}
            if other["deepseek-v3.2"]["input_price"] == 1000 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert other["deepseek-v3.2"]["input_price"] == 1000
        assert chat(second, customer.key).status_code == 200
        rows = wait_logged(gateway, customer.account_id, 1)
        assert rows[0]["cost_micro_p"] == PROMPT_TOKENS * 1000 + COMPLETION_TOKENS * 2000
        history = call(gateway, "GET", "/admin/catalog").json()
        assert history["changes"][0]["version"] == change["version"]
        assert history["changes"][0]["actor"] == "ops@example.com"
        model = {m["id"]: m for m in history["models"]}["deepseek-v3.2"]
        assert (model["file_input_price"], model["version"]) == (280, change["version"])
    finally:
        second.stop()


def test_a_running_request_keeps_the_price_it_started_with(gateway, customer, restore_catalog):
    with requests.post(f"{gateway.url}/v1/chat/completions", stream=True, timeout=30,
                       headers={"Authorization": f"Bearer {customer.key}"},
                       json={"model": "qwen-3.5-plus", "stream": True,
                             "messages": [{"role": "user", "content": "[[slow]]"}]}) as stream:
        lines = stream.iter_lines()
        next(lines)
        answer = call(gateway, "POST", "/admin/catalog/qwen-3.5-plus", json={
            "input_price": 9000, "output_price": 9000, "actor": "ops@example.com", "reason": "mid-stream change"})
        assert answer.status_code == 201
        for _ in lines:
            pass
    rows = wait_logged(gateway, customer.account_id, 1)
    assert rows[0]["cost_micro_p"] == PROMPT_TOKENS * 220 + SLOW_CHUNKS * 1300
    assert chat(gateway, customer.key, "qwen-3.5-plus").status_code == 200
    rows = wait_logged(gateway, customer.account_id, 2)
    assert rows[0]["cost_micro_p"] == (PROMPT_TOKENS + COMPLETION_TOKENS) * 9000


def test_a_cache_price_change_is_versioned_and_served_at_once(gateway, customer, restore_catalog):
    answer = call(gateway, "POST", "/admin/catalog/deepseek-v3.2", json={
        "cache_read_price": 14, "actor": "ops@example.com", "reason": "cache hits halved"})
    assert answer.status_code == 201, answer.text
    change = answer.json()["change"]
    # The row carries the whole state: the prices left out keep their live values.
    assert (change["input_price"], change["output_price"], change["cache_read_price"]) == (280, 420, 14)
    assert (change["cache_write_price"], change["cache_write_1h_price"], change["cache_prices_set"]) == (None, None, True)
    listed = {m["id"]: m for m in call(gateway, "GET", "/catalog").json()["models"]}["deepseek-v3.2"]
    # Effective prices: DeepSeek bills no cache writes apart, so they are the input price.
    assert (listed["cache_read_price"], listed["cache_write_price"], listed["cache_write_1h_price"]) == (14, 280, 280)
    state = {m["id"]: m for m in call(gateway, "GET", "/admin/catalog").json()["models"]}["deepseek-v3.2"]
    assert (state["cache_read_price"], state["file_cache_read_price"], state["version"]) == (14, 28, change["version"])
    # Setting it back to null makes cache hits cost the input price.
    cleared = call(gateway, "POST", "/admin/catalog/deepseek-v3.2", json={
        "cache_read_price": None, "actor": "ops@example.com", "reason": "no cache discount"})
    assert cleared.status_code == 201 and cleared.json()["change"]["cache_read_price"] is None
    listed = {m["id"]: m for m in call(gateway, "GET", "/catalog").json()["models"]}["deepseek-v3.2"]
    assert listed["cache_read_price"] == 280
    same = call(gateway, "POST", "/admin/catalog/deepseek-v3.2", json={
        "cache_read_price": None, "actor": "ops", "reason": "again"})
    assert (same.status_code, same.json()["error"]["code"]) == (422, "no_change")
    bad = call(gateway, "POST", "/admin/catalog/deepseek-v3.2", json={
        "cache_write_1h_price": -5, "actor": "ops", "reason": "r"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_field")


def test_catalogue_lists_effective_cache_prices_and_tiers(gateway):
    models = {m["id"]: m for m in call(gateway, "GET", "/catalog").json()["models"]}
    sonnet = models["claude-sonnet-4.5"]
    assert (sonnet["cache_read_price"], sonnet["cache_write_price"], sonnet["cache_write_1h_price"]) == (300, 3750, 6000)
    assert sonnet["tiers"] == [{"above_input_tokens": 200_000, "input_price": 6000, "output_price": 22500,
                                "cache_read_price": 600, "cache_write_price": 7500, "cache_write_1h_price": 12000}]
    # Gemini's tier leaves its cache price out: the base one scaled by 4000 / 2000.
    assert models["gemini-3.1-pro"]["tiers"][0]["cache_read_price"] == 400
    gpt = models["gpt-5.2"]
    assert (gpt["cache_read_price"], gpt["cache_write_price"], gpt["tiers"]) == (175, 1750, [])
    unpriced = models["gpt-5.2-pro"]
    assert (unpriced["cache_read_price"], unpriced["tiers"]) == (None, [])


def test_disabling_a_model_refuses_it_until_enabled_again(gateway, customer, restore_catalog):
    off = call(gateway, "POST", "/admin/catalog/glm-5", json={"enabled": False, "actor": "ops", "reason": "upstream outage"})
    assert off.status_code == 201 and off.json()["change"]["input_price"] == 700
    refused = chat(gateway, customer.key, "glm-5")
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "model_disabled"
    assert "disabled" in refused.json()["error"]["message"]
    listed = {m["id"]: m for m in call(gateway, "GET", "/catalog").json()["models"]}["glm-5"]
    assert listed["enabled"] is False and listed["available"] is False
    assert "glm-5" not in public_model_ids(gateway, customer.key)
    on = call(gateway, "POST", "/admin/catalog/glm-5", json={"enabled": True, "actor": "ops", "reason": "back"})
    assert on.status_code == 201
    assert chat(gateway, customer.key, "glm-5").status_code == 200
    assert "glm-5" in public_model_ids(gateway, customer.key)


def public_model_ids(gateway, key: str) -> set[str]:
    """The ids GET /v1/models lists for ``key``."""
    answer = requests.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert answer.status_code == 200
    return {m["id"] for m in answer.json()["data"]}


@pytest.mark.parametrize("body, status, code", [
    ({"input_price": 100, "actor": "ops", "reason": "r", "output_price": None}, 422, "invalid_field"),
    ({"input_price": -1, "output_price": 5, "actor": "ops", "reason": "r"}, 422, "invalid_field"),
    ({"input_price": 1.5, "output_price": 5, "actor": "ops", "reason": "r"}, 422, "invalid_field"),
    ({"input_price": 280, "output_price": 420, "actor": "ops", "reason": "r"}, 422, "no_change"),
    ({"input_price": 1, "output_price": 1, "actor": "ops"}, 422, "missing_field"),
    ({"input_price": 1, "output_price": 1, "actor": "ops", "reason": "  "}, 422, "invalid_field"),
    ({"enabled": "no", "actor": "ops", "reason": "r"}, 422, "invalid_field"),
    ({"input_price": 1, "output_price": 1, "actor": "ops", "reason": "r", "colour": "red"}, 422, "unknown_field"),
    ({"input_price": 1, "output_price": 1, "actor": "ops", "reason": "r", "effective_from": "tomorrow"}, 422, "invalid_field"),
])
def test_bad_catalogue_changes_are_refused_and_change_nothing(gateway, body, status, code):
    before = call(gateway, "GET", "/admin/catalog").json()["changes"]
    answer = call(gateway, "POST", "/admin/catalog/deepseek-v3.2", json=body)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    assert call(gateway, "GET", "/admin/catalog").json()["changes"] == before


def test_unknown_model_and_malformed_body(gateway):
    assert call(gateway, "POST", "/admin/catalog/no-such-model", json={"actor": "a", "reason": "b"}).status_code == 404
    assert call(gateway, "POST", "/admin/catalog/deepseek-v3.2", data=b"[1]").status_code == 400


def _model(model_id: str = "m", input_price: int | None = 10, output_price: int | None = 20) -> Model:
    return Model(model_id, "p", "up", "chat", "International Models", input_price, output_price, 8192, 128000)


def test_future_changes_wait_for_their_time_and_later_versions_win():
    now = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
    row = lambda version, when, price: SimpleNamespace(  # noqa: E731 - a tiny row factory
        version=version, model_id="m", effective_from=when, input_price=price, output_price=price, enabled=True)
    rows = [row(1, now - timedelta(days=1), 11), row(2, now + timedelta(hours=1), 99), row(3, now - timedelta(days=1), 12)]
    assert rows_in_force(rows, now)["m"].input_price == 12
    assert rows_in_force(rows, now + timedelta(hours=2))["m"].input_price == 99
    assert rows_in_force(rows, now - timedelta(days=2)) == {}


def test_applying_overrides_replaces_models_and_leaves_held_ones_alone():
    original = _model()
    catalog = Catalog(providers={}, models={"m": original})
    base = dict(catalog.models)
    held = catalog.models["m"]
    change = SimpleNamespace(version=1, model_id="m", input_price=50, output_price=60, enabled=False)
    assert apply_overrides(catalog, base, {"m": change}) == ["m"]
    assert (catalog.models["m"].input_price, catalog.models["m"].enabled) == (50, False)
    assert (held.input_price, held.output_price, held.enabled) == (10, 20, True)
    assert apply_overrides(catalog, base, {"m": change}) == []
    assert apply_overrides(catalog, base, {}) == ["m"] and catalog.models["m"] == original


def test_cache_prices_of_a_change_apply_and_older_changes_keep_the_file_s():
    original = dataclasses.replace(_model(input_price=1000, output_price=2000), cache_read_price=100, cache_write_price=1250)
    catalog = Catalog(providers={}, models={"m": original})
    base = dict(catalog.models)
    usage = TokenUsage(input_tokens=10, cache_read_tokens=1000, cache_write_tokens=100)
    # A change recorded before cache prices could be changed keeps the file's.
    older = SimpleNamespace(version=1, model_id="m", input_price=1000, output_price=3000, enabled=True,
                            cache_prices_set=False, cache_read_price=None, cache_write_price=None, cache_write_1h_price=None)
    assert apply_overrides(catalog, base, {"m": older}) == ["m"]
    assert cost_micro_p(catalog.models["m"], usage) == 10 * 1000 + 1000 * 100 + 100 * 1250
    newer = SimpleNamespace(version=2, model_id="m", input_price=1000, output_price=3000, enabled=True,
                            cache_prices_set=True, cache_read_price=50, cache_write_price=None, cache_write_1h_price=2000)
    assert apply_overrides(catalog, base, {"m": newer}) == ["m"]
    changed = catalog.models["m"]
    assert (changed.cache_read_price, changed.cache_write_price, changed.cache_write_1h_price) == (50, None, 2000)
    # A cache-write price set to null falls back to the input price.
    assert cost_micro_p(changed, usage) == 10 * 1000 + 1000 * 50 + 100 * 1000


def test_provider_health_percentile_and_windows(gateway_db):
    """100 requests on a provider of its own: latencies 1..100 ms, 10 upstream errors, 5 old ones."""
    from gateway.accounting.admin_queries import provider_health
    from gateway.auth import create_key
    from gateway.accounting.ledger import create_account, post_entry
    from gateway.accounting.metering import RequestRecord, write_batch

    provider = f"p95-{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc)

    def work(conn):
        account, _ = create_account(conn, None, None)
        post_entry(conn, account.id, "credit", 10**9, f"seed-{uuid.uuid4()}")
        _, key = create_key(conn, account.id, "k")
        records = [
            RequestRecord(
                request_id=f"req-{uuid.uuid4()}", account_id=account.id, key_id=key.id, model="m", provider=provider,
                endpoint="/v1/chat/completions", stream=False, input_tokens=1, output_tokens=1, cost_micro_p=0,
                latency_ms=i, ttft_ms=None, status=502 if i % 10 == 0 else 200,
                error_class="upstream_http_500" if i % 10 == 0 else None, estimated=False,
                created_at=now - timedelta(minutes=5),
            )
            for i in range(1, 101)
        ] + [
            RequestRecord(
                request_id=f"req-{uuid.uuid4()}", account_id=account.id, key_id=key.id, model="m", provider=provider,
                endpoint="/v1/chat/completions", stream=False, input_tokens=1, output_tokens=1, cost_micro_p=0,
                latency_ms=5000, ttft_ms=None, status=400, error_class="invalid_request", estimated=False,
                created_at=now - timedelta(hours=3),
            )
            for _ in range(5)
        ]
        write_batch(conn, [(r, None) for r in records])

    gateway_db.transaction_sync(work)
    hour, day = gateway_db.read_sync(provider_health, now)
    mine = {p["provider"]: p for p in hour["providers"]}[provider]
    assert (mine["requests"], mine["errors"], mine["error_rate"]) == (100, 10, 0.1)
    assert (mine["avg_latency_ms"], mine["p95_latency_ms"]) == (50, 95)
    older = {p["provider"]: p for p in day["providers"]}[provider]
    # A client error is not an upstream error, but it counts as a request.
    assert (older["requests"], older["errors"], older["p95_latency_ms"]) == (105, 10, 100)
