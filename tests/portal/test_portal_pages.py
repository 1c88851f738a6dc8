"""Every page as a full page and as an htmx fragment, and what each page must say."""

from __future__ import annotations

import html
import re

import pytest

from fixtures.portal import login

HTMX = {"HX-Request": "true"}
BOOSTED = {"HX-Request": "true", "HX-Boosted": "true"}

# Page, and the id the fragment answer starts with for a targeted htmx request.
FRAGMENTS = [
    ("/usage", '<div id="usage-panel"'),
    ("/requests", '<section class="card" id="log-table"'),
    ("/keys", '<div id="keys-section"'),
    ("/support", '<div id="support-form"'),
]
PAGES = ["/dashboard", "/quickstart", "/models", "/keys", "/pricing", "/usage", "/requests", "/settings",
         "/support", "/docs"]


@pytest.mark.parametrize("path, start", FRAGMENTS)
def test_fragment_endpoints_both_ways(logged_in_client, path, start):
    fragment = logged_in_client.get(path, headers=HTMX)
    text = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert text.lstrip().startswith(start)
    assert "<html" not in text and "nav-link" not in text
    assert "HX-Request" in fragment.headers["Vary"]
    full = logged_in_client.get(path).get_data(as_text=True)
    assert full.startswith("<!doctype html>") and start in full and "nav-link" in full


@pytest.mark.parametrize("path", PAGES + ["/billing", "/payments"])
def test_every_page_answers_a_targeted_htmx_request_with_its_content_alone(logged_in_client, path):
    response = logged_in_client.get(path, headers=HTMX)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in text and "nav-link" not in text
    assert "<h1" in text or "<section" in text or "<div" in text


@pytest.mark.parametrize("path", ["/pricing", "/docs", "/support", "/login", "/signup", "/reset"])
def test_public_pages_answer_a_targeted_htmx_request_too(client, path):
    response = client.get(path, headers=HTMX)
    assert response.status_code == 200
    assert "<html" not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", PAGES)
def test_boosted_navigation_gets_the_whole_page(logged_in_client, path):
    response = logged_in_client.get(path, headers=BOOSTED)
    assert response.status_code == 200
    assert "<!doctype html>" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_no_inline_script_or_style(logged_in_client, path):
    body = logged_in_client.get(path).get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), "inline script"
    assert not re.search(r"\sstyle=", body), "style attribute"
    assert not re.search(r"\son[a-z]+=", body), "inline event handler"
    assert "<style" not in body
    assert "/static/vendor/htmx-2." in body
    assert '"selfRequestsOnly": true' in body and '"allowEval": false' in body and '"allowScriptTags": false' in body
    assert 'hx-headers=\'{"X-CSRFToken": "' in body


def test_pricing_is_grouped_and_priced(client):
    body = client.get("/pricing").get_data(as_text=True)
    assert body.index("Chinese Models") < body.index("International Models")
    assert "1 SAMA-P = $0.001 USD" in body
    assert "Chinese model pricing based on official CNY rates." in body
    row = re.search(r"gpt-5\.2-pro</code>.*?</tr>", body, re.S).group(0)
    assert "Not yet priced" in row
    deepseek = re.search(r"deepseek-v3\.2</code>.*?</tr>", body, re.S).group(0)
    assert "280 P" in deepseek and "420 P" in deepseek and "$0.28" in deepseek and "$0.42" in deepseek
    claude = re.search(r"claude-4\.6-opus</code>.*?</tr>", body, re.S).group(0)
    assert "5,000 P" in claude and "25,000 P" in claude and "$25.00" in claude


def test_api_docs_are_public_and_generated_from_the_catalogue(client, gateway):
    body = html.unescape(client.get("/docs").get_data(as_text=True))
    for section in ("Overview", "Base URL", "Authentication", "Endpoints", "Examples", "Supported Models"):
        assert f">{section}</h2>" in body
    assert "sama_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}" in body
    assert f"{gateway.url}/v1" in body
    assert 'export SAMA_API_KEY="sama_..."' in body
    catalogue = gateway.internal("GET", "/catalog").json()["models"]
    for model in catalogue:
        assert f">{model['id']}</code>" in body
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages", "/v1/models"):
        assert path in body


def test_quickstart_uses_the_customers_key_prefix(logged_in_client, gateway):
    before = html.unescape(logged_in_client.get("/quickstart").get_data(as_text=True))
    assert 'export SAMA_API_KEY="sama_..."' in before
    key = gateway.create_key(logged_in_client.user.account_id, name="qs")
    after = html.unescape(logged_in_client.get("/quickstart").get_data(as_text=True))
    assert f'export SAMA_API_KEY="{key["prefix"]}..."' in after
    assert key["key"] not in after
    assert 'base_url="' + gateway.url + '/v1"' in after  # openai SDK
    assert 'base_url="' + gateway.url + '"' in after  # Anthropic SDK adds /v1 itself
    assert after.count('class="copy-btn"') >= 4
    assert 'role="tab"' in after


def test_models_page_groups_by_provider(logged_in_client, gateway):
    body = logged_in_client.get("/models").get_data(as_text=True)
    catalogue = gateway.internal("GET", "/catalog").json()
    for provider in {m["provider_name"] for m in catalogue["models"]}:
        assert f"<h2>{provider} <span class=\"count\">" in body


def test_dashboard_figures(logged_in_client, gateway):
    account = logged_in_client.user.account_id
    gateway.internal("POST", f"/accounts/{account}/ledger",
                     json={"kind": "credit", "amount_micro_p": 12_345_678_900, "idempotency_key": f"dash-{account}"})
    body = logged_in_client.get("/dashboard").get_data(as_text=True)
    assert "12,345.68 P" in body and "$12.35" in body
    assert "Spend this month" in body and "Requests this month" in body and "Spend today" in body
    assert f"{gateway.url}/v1" in body
    assert 'href="/keys"' in body and 'href="/models"' in body


def test_topbar_shows_balance_and_account_menu(logged_in_client):
    body = logged_in_client.get("/settings").get_data(as_text=True)
    assert 'class="balance-pill"' in body
    assert logged_in_client.user.email in body
    menu = re.search(r'<div class="user-menu-items".*?</div>', body, re.S).group(0)
    assert 'href="/settings"' in menu and "Sign out" in menu


def test_settings_show_account_info_and_change_time_zone(logged_in_client):
    body = logged_in_client.get("/settings").get_data(as_text=True)
    assert logged_in_client.user.account_id in body
    assert "Account Info" in body and "Change Password" in body
    fragment = logged_in_client.post("/settings/timezone", data={"timezone": "Asia/Kolkata"}, headers=HTMX)
    assert fragment.get_data(as_text=True).lstrip().startswith('<form id="tz-form"')
    assert "Saved." in fragment.get_data(as_text=True)
    assert '<option selected value="Asia/Kolkata">' in logged_in_client.get("/settings").get_data(as_text=True)
    bad = logged_in_client.post("/settings/timezone", data={"timezone": "Mars/Olympus"})
    assert bad.status_code == 422 and "Choose a time zone from the list." in bad.get_data(as_text=True)


def test_browser_time_zone_is_taken_only_once(portal_app, make_user):
    user = make_user()  # no zone yet
    client = portal_app.test_client()
    login(client, user.email, user.password)
    assert 'data-tz-detect="/settings/timezone/detect"' in client.get("/dashboard").get_data(as_text=True)
    assert client.post("/settings/timezone/detect", data={"timezone": "Australia/Adelaide"}).status_code == 204
    assert "Australia/Adelaide" in client.get("/dashboard").get_data(as_text=True)
    client.post("/settings/timezone/detect", data={"timezone": "Europe/Berlin"})
    body = client.get("/settings").get_data(as_text=True)
    assert '<option selected value="Australia/Adelaide">' in body and "data-tz-detect" not in body


def test_api_docs_list_count_tokens_and_the_upstream_error_rule(client):
    body = client.get("/docs").get_data(as_text=True)
    assert "/v1/messages/count_tokens" in body
    assert "529 on /v1/messages" in body and "retry-after" in body


def test_api_docs_list_the_responses_api_and_count_tokens(client):
    body = html.unescape(client.get("/docs").get_data(as_text=True))
    assert "/v1/responses" in body and "/v1/messages/count_tokens" in body
    assert "x-samalink-omitted-tools" in body


def test_quickstart_has_a_responses_api_example_with_the_customers_base_url(logged_in_client, gateway):
    body = html.unescape(logged_in_client.get("/quickstart").get_data(as_text=True))
    panel = re.search(r'id="qs-panel-responses".*?</pre>', body, re.S).group(0)
    assert "client.responses.create(" in panel
    assert 'base_url="' + gateway.url + '/v1"' in panel
    assert "print(response.output_text)" in panel


def test_dashboard_model_chips_mark_unpriced_models(logged_in_client):
    body = logged_in_client.get("/dashboard").get_data(as_text=True)
    chips = body[body.index('<ul class="model-chips">'):]
    chips = chips[:chips.index("</ul>")]
    unpriced = re.findall(r'<li class="chip-unpriced" data-unpriced[^>]*><code class="mono">([^<]+)</code>', chips)
    assert unpriced == ["gpt-5.2-pro"]
    assert "Not yet priced" in chips
    assert '<li><code class="mono">deepseek-v3.2</code></li>' in chips
