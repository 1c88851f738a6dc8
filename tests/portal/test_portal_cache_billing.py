"""Prompt-cache billing in the portal: the log's token parts and tier, the CSV passed through,
the Usage page's cached tokens and savings, cache prices and tiers on the price pages, and the
API Docs' worked example — all from traffic and prices served by the real gateway."""

from __future__ import annotations

import csv
import io
import re
import uuid

import pytest
from flask import render_template
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.portal import call_api, login, wait_for_requests
from portal import gateway_client
from portal.filters import token_threshold

# Fake-upstream usage phrases: IN:OUT:CACHE_READ:CACHE_WRITE_5M:CACHE_WRITE_1H:REASONING.
CACHED_CLAUDE = "[[usage:100:50:10000:2000:1000]]"
REASONING_GPT = "[[usage:1000:500:0:0:0:120]]"
# 10,000 fresh + 195,000 cached = 205,000 prompt tokens: above gemini-3.1-pro's 200K tier.
LONG_GEMINI = "[[usage:10000:50:195000]]"


@pytest.fixture
def cached_traffic(portal_app, gateway, funded_user):
    """One plain, one cached Claude, one reasoning GPT and one long-context Gemini request."""
    _top_up(gateway, funded_user.user.account_id)
    for model, text in (("deepseek-v3.2", "Hello"), ("claude-sonnet-4.5", CACHED_CLAUDE),
                        ("gpt-5.2", REASONING_GPT), ("gemini-3.1-pro", LONG_GEMINI)):
        answer = call_api(gateway, funded_user.key, model, text)
        assert answer["status"] == 200, answer
    rows = {r["model"]: r for r in wait_for_requests(gateway, funded_user.user.account_id, 4)}
    client = portal_app.test_client()
    assert login(client, funded_user.user.email, funded_user.user.password).status_code == 303
    return client, rows, funded_user


def _top_up(gateway, account_id: str) -> None:
    """10,000 P more: reservations of long-output models hold a few hundred P each."""
    answer = gateway.internal("POST", f"/accounts/{account_id}/ledger", json={
        "kind": "credit", "amount_micro_p": 10_000 * 1_000_000, "idempotency_key": f"cache-{uuid.uuid4()}"})
    assert answer.status_code == 201, answer.text


def _log_row(body: str, model: str) -> str:
    rows = re.findall(r'<tr class="log-row">(.*?)</tr>', body, re.S)
    [row] = [r for r in rows if f'<code class="mono">{model}</code>' in r]
    return row


def test_log_shows_cache_reads_writes_reasoning_and_the_tier(cached_traffic):
    client, rows, _ = cached_traffic
    body = client.get("/requests").get_data(as_text=True)
    claude = _log_row(body, "claude-sonnet-4.5")
    assert "13,100 / 50" in claude  # all input: fresh, read, written for 5 min and for 1 h
    assert "cached 10,000" in claude and "wrote 3,000" in claude and "reasoning 0" in claude
    assert 'title="Written to the prompt cache: 2,000 for 5 min, 1,000 for 1 h"' in claude
    assert "reasoning 120" in _log_row(body, "gpt-5.2")
    gemini = _log_row(body, "gemini-3.1-pro")
    assert rows["gemini-3.1-pro"]["price_tier"] == 200000
    assert 'data-testid="price-tier"' in gemini and "&gt; 200K" in gemini
    plain = _log_row(body, "deepseek-v3.2")
    assert "cached" not in plain and "price-tier" not in plain


def test_csv_export_is_the_gateways_csv_unchanged(cached_traffic, gateway):
    client, _, funded_user = cached_traffic
    ours = client.get("/requests.csv").get_data()
    theirs = gateway.internal("GET", f"/accounts/{funded_user.user.account_id}/requests.csv",
                              params={"tz": "UTC"}).content
    assert ours == theirs
    table = list(csv.reader(io.StringIO(ours.decode("utf-8-sig"))))
    header = table[0]
    assert header[-5:] == ["cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens",
                           "price_tier"]
    by_model = {row[header.index("model")]: dict(zip(header, row)) for row in table[1:]}
    assert by_model["claude-sonnet-4.5"]["cache_write_1h_tokens"] == "1000"
    assert by_model["gemini-3.1-pro"]["price_tier"] == "200000"
    assert by_model["deepseek-v3.2"]["price_tier"] == ""


def test_usage_shows_cached_tokens_and_what_caching_saved(portal_app, gateway, funded_user):
    # claude-sonnet-4.5: input 3,000, cache read 300, 5-min write 3,750 P per 1M tokens.
    _top_up(gateway, funded_user.user.account_id)
    assert call_api(gateway, funded_user.key, "claude-sonnet-4.5", "[[usage:100:50:10000]]")["status"] == 200
    assert call_api(gateway, funded_user.key, "claude-sonnet-4.5", "[[usage:100:50:0:4000]]")["status"] == 200
    wait_for_requests(gateway, funded_user.user.account_id, 2)
    client = portal_app.test_client()
    assert login(client, funded_user.user.email, funded_user.user.password).status_code == 303
    body = client.get("/usage?range=7d").get_data(as_text=True)
    # Saved: 10,000 × (3,000 − 300) − 4,000 × (3,750 − 3,000) micro-P = 27 P − 3 P.
    saved = re.search(r'data-testid="cache-saved">.*?<p class="stat-value[^"]*">([^<]+)</p>', body, re.S).group(1)
    assert saved == "24.00 P"
    cached = re.search(r'data-testid="cached-tokens">.*?<p class="stat-value">([^<]+)</p>.*?<p class="stat-hint">([^<]+)',
                       body, re.S)
    assert cached.group(1) == "10,000" and "4,000 written" in cached.group(2)
    [claude_row] = [r for r in re.findall(r"<tr>(.*?)</tr>", body, re.S) if "claude-sonnet-4.5" in r and "24.00 P" in r]
    assert '<td class="num" title="4,000 written to the cache · 0 reasoning">10,000</td>' in claude_row


def test_negative_savings_are_shown_as_such(portal_app, gateway, funded_user):
    _top_up(gateway, funded_user.user.account_id)
    assert call_api(gateway, funded_user.key, "claude-sonnet-4.5", "[[usage:100:50:0:4000]]")["status"] == 200
    wait_for_requests(gateway, funded_user.user.account_id, 1)
    client = portal_app.test_client()
    assert login(client, funded_user.user.email, funded_user.user.password).status_code == 303
    body = client.get("/usage").get_data(as_text=True)
    assert '<p class="stat-value saved-negative">-3.00 P</p>' in body
    assert "cache writes cost more than reads saved" in body


def _price_row(body: str, model: str) -> str:
    return re.search(r'<tr data-model="%s">(.*?)</tr>' % re.escape(model), body, re.S).group(1)


@pytest.mark.parametrize("path, signed_in", [("/pricing", False), ("/models", True), ("/docs", False)])
def test_price_pages_show_cache_prices_and_tiers(client, logged_in_client, path, signed_in):
    body = (logged_in_client if signed_in else client).get(path).get_data(as_text=True)
    headers = re.findall(r'<th scope="col"[^>]*>([^<]+)</th>', body.split("price-table", 1)[1].split("</thead>")[0])
    first = ["Model", "Provider", "Input / 1M tokens", "Output / 1M tokens"] if path != "/models" else \
        ["Model", "Input / 1M tokens", "Output / 1M tokens"]
    assert headers == first + ["Cache read", "Cache write 5 min", "Cache write 1 h"]
    claude = _price_row(body, "claude-sonnet-4.5")
    prices = re.findall(r'<td class="num"[^>]*>([\d,]+) P', claude)
    assert prices == ["3,000", "15,000", "300", "3,750", "6,000"]
    assert ("Above 200K prompt tokens: input 6,000 · output 22,500 · cache read 600 · "
            "write 7,500 (5 min) / 12,000 (1 h)") in claude
    # A model without cache prices charges cached input at its input price.
    kimi = re.findall(r'<td class="num"[^>]*>([\d,]+) P', _price_row(body, "kimi-k2.5"))
    assert kimi == ["450", "2,200", "450", "450", "450"]
    assert "Above" not in _price_row(body, "kimi-k2.5")


def test_api_docs_explain_cache_and_tier_billing(client):
    body = client.get("/docs").get_data(as_text=True)
    section = body.split('id="caching"', 1)[1].split("</section>", 1)[0]
    assert 'href="#caching"' in body
    assert "the <em>whole request</em>" in section and "cache-read price" in section
    # claude-sonnet-4.5: 100 × 3,000 + 10,000 × 300 + 50 × 15,000 micro-P.
    assert "<strong>4.05 P</strong>" in section and '"cost": 4.05' in section
    assert "31.05 P" in section  # the same tokens without the cache
    for field in ("prompt_tokens_details.cached_tokens", "cache_read_input_tokens", "ephemeral_1h_input_tokens",
                  "completion_tokens_details.reasoning_tokens", "output_tokens_details.reasoning_tokens"):
        assert field in section


OLD_GATEWAY_ROW = {"id": 1, "request_id": "r1", "created_at": "2026-03-01T10:00:00Z", "key_id": "k", "key_name": "old",
                   "key_masked": "sama_1234…abcd", "model": "deepseek-v3.2", "endpoint": "/v1/chat/completions",
                   "stream": False, "input_tokens": 12, "output_tokens": 3, "cost_micro_p": 100, "latency_ms": 5,
                   "ttft_ms": None, "status": 200, "error_class": None, "estimated": False}


def test_pages_work_against_a_gateway_without_the_cache_fields(logged_in_client, monkeypatch):
    real_json = gateway_client.GatewayClient._json

    def old_answers(self, method, path, **kwargs):
        if path.endswith("/requests"):
            return {"data": [dict(OLD_GATEWAY_ROW)], "next_cursor": None}
        if path.endswith("/usage"):
            sums = {"requests": 1, "input_tokens": 12, "output_tokens": 3, "cost_micro_p": 100}
            return {"totals": dict(sums), "daily": [], "by_model": [dict(sums, model="deepseek-v3.2")], "by_key": []}
        if path == "/catalog":
            return {"providers": [], "models": [{"id": "deepseek-v3.2", "provider": "deepseek", "kind": "chat",
                                                 "input_price": 280, "output_price": 420, "priced": True}]}
        return real_json(self, method, path, **kwargs)

    monkeypatch.setattr(gateway_client.GatewayClient, "_json", old_answers)
    log = logged_in_client.get("/requests")
    assert log.status_code == 200 and "12 / 3" in log.get_data(as_text=True)
    usage = logged_in_client.get("/usage").get_data(as_text=True)
    assert re.search(r'data-testid="cache-saved">.*?stat-value">0 P<', usage, re.S)
    pricing = logged_in_client.get("/pricing").get_data(as_text=True)
    assert re.findall(r'<td class="num"[^>]*>([\d,]+) P', _price_row(pricing, "deepseek-v3.2")) == \
        ["280", "420", "280", "280", "280"]
    assert "prompt tokens:" not in pricing


@pytest.mark.parametrize("given, expected", [
    ({}, {"cache_read_tokens": 0, "cache_write_tokens": 0, "cache_write_1h_tokens": 0, "reasoning_tokens": 0,
          "price_tier": None}),
    ({"cache_read_tokens": 7, "cache_write_tokens": None, "cache_write_1h_tokens": "9", "reasoning_tokens": True,
      "price_tier": 200000},
     {"cache_read_tokens": 7, "cache_write_tokens": 0, "cache_write_1h_tokens": 0, "reasoning_tokens": 0,
      "price_tier": 200000}),
])
def test_request_rows_get_their_parts_whatever_the_gateway_sent(given, expected):
    row = gateway_client.with_request_parts(dict(given))
    assert {k: row[k] for k in expected} == expected


def test_catalogue_models_default_to_input_price_and_sorted_tiers():
    model = gateway_client.with_cache_prices({"input_price": 500, "cache_read_price": 50, "tiers": [
        {"above_input_tokens": 500000, "input_price": 2, "output_price": 3},
        "junk", {"input_price": 1},
        {"above_input_tokens": 200000, "input_price": 1, "output_price": 2, "cache_read_price": 1}]})
    assert (model["cache_read_price"], model["cache_write_price"], model["cache_write_1h_price"]) == (50, 500, 500)
    assert [t["above_input_tokens"] for t in model["tiers"]] == [200000, 500000]
    assert model["tiers"][1]["cache_read_price"] is None
    unpriced = gateway_client.with_cache_prices({"input_price": None, "cache_read_price": None})
    assert unpriced["cache_write_price"] is None and unpriced["tiers"] == []


_ANY_JSON = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.text(max_size=5) | st.floats(allow_nan=False)


# The app is only read (one template rendered), so sharing it across examples is safe.
@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(gateway_client.REQUEST_TOKEN_PARTS + ("price_tier",)), _ANY_JSON))
def test_any_row_renders_its_token_cell(portal_app, given):
    row = gateway_client.with_request_parts(dict(OLD_GATEWAY_ROW, **given))
    for name in gateway_client.REQUEST_TOKEN_PARTS:
        assert type(row[name]) is int
    assert row["price_tier"] is None or type(row["price_tier"]) is int
    with portal_app.test_request_context():
        html = render_template("requests_log/_tokens_cell.html", r=row).strip()
    assert html.startswith('<td class="num tokens-cell">12 / 3')
    assert ("cached " in html) == any(row[name] for name in gateway_client.REQUEST_TOKEN_PARTS)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.integers(1, 10**9))
def test_tier_thresholds_read_back_to_the_same_number(tokens):
    text = token_threshold(tokens)
    multiplier = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    assert int(text.rstrip("KM").replace(",", "")) * multiplier == tokens
