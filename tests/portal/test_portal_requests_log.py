"""Request Log: newest first, filters, htmx pages by cursor, streamed CSV export."""

from __future__ import annotations

import csv
import io
import re

import pytest

from fixtures.portal import call_api, login, wait_for_requests
from portal.requests_log import routes as log_routes

HTMX = {"HX-Request": "true"}


@pytest.fixture
def traffic(portal_app, gateway, funded_user):
    """Five logged requests: three deepseek-v3.2, one glm-5, one failing upstream call."""
    for _ in range(3):
        assert call_api(gateway, funded_user.key, "deepseek-v3.2")["status"] == 200
    assert call_api(gateway, funded_user.key, "glm-5")["status"] == 200
    assert call_api(gateway, funded_user.key, "deepseek-v3.2", "[[error:500]]")["status"] >= 500
    rows = wait_for_requests(gateway, funded_user.user.account_id, 5)
    assert len(rows) == 5
    client = portal_app.test_client()
    assert login(client, funded_user.user.email, funded_user.user.password).status_code == 303
    return client, rows, funded_user


def test_empty_state(logged_in_client):
    body = logged_in_client.get("/requests").get_data(as_text=True)
    assert "No usage records yet. Your API call history will appear here." in body


def test_log_lists_requests_newest_first(traffic):
    client, rows, _ = traffic
    body = client.get("/requests").get_data(as_text=True)
    models = re.findall(r'<td><code class="mono">([a-z0-9.\-]+)</code><span class="cell-sub">', body)
    assert models == [r["model"] for r in rows]  # the gateway's order: newest first
    assert models[0] == "deepseek-v3.2" and "glm-5" in models
    assert "test key" in body


def test_filters_by_model_and_status(traffic):
    client, rows, _ = traffic
    glm = client.get("/requests?model=glm-5").get_data(as_text=True)
    assert glm.count('<code class="mono">glm-5</code>') == 1
    assert '<code class="mono">deepseek-v3.2</code>' not in glm
    failed = client.get("/requests?status=error", headers=HTMX).get_data(as_text=True)
    assert failed.lstrip().startswith('<section class="card" id="log-table">')
    assert failed.count("badge-error") == 1
    bad = client.get("/requests?status=teapot").get_data(as_text=True)
    assert "Status must be Succeeded, Failed or an HTTP code like 429." in bad


def test_further_pages_load_by_cursor(traffic, monkeypatch):
    client, rows, _ = traffic
    monkeypatch.setattr(log_routes, "PAGE_SIZE", 2)
    first = client.get("/requests").get_data(as_text=True)
    more = re.search(r'hx-get="(/requests\?[^"]*cursor=[^"]+)"', first)
    assert more and "Load more" in first
    seen = first.count("<time datetime=")
    url = more.group(1).replace("&amp;", "&")
    while url:
        fragment = client.get(url, headers=HTMX).get_data(as_text=True)
        assert "<html" not in fragment and "<thead" not in fragment
        assert fragment.lstrip().startswith("<tr")
        seen += fragment.count("<time datetime=")
        nxt = re.search(r'hx-get="(/requests\?[^"]*cursor=[^"]+)"', fragment)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
    assert seen == len(rows)
    # Without JavaScript the same link is a full page.
    full = client.get(more.group(1).replace("&amp;", "&"))
    assert "<html" in full.get_data(as_text=True)


def test_csv_export_streams_the_filtered_log(traffic):
    client, rows, funded = traffic
    response = client.get("/requests.csv?model=deepseek-v3.2")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    header, data = table[0], table[1:]
    assert "model" in header and "cost_micro_p" in header
    model_col = header.index("model")
    assert len(data) == 4 and {row[model_col] for row in data} == {"deepseek-v3.2"}
    assert funded.key not in response.get_data(as_text=True)
    everything = list(csv.reader(io.StringIO(client.get("/requests.csv").get_data(as_text=True))))
    assert len(everything) == 1 + len(rows)


def test_csv_export_when_the_gateway_is_down(down_portal_app, user):
    client = down_portal_app.test_client()
    login(client, user.email, user.password)
    response = client.get("/requests.csv")
    assert response.status_code == 503
    assert "usage service is unavailable" in response.get_data(as_text=True)


def _input_value(body: str, input_id: str) -> str:
    match = re.search(rf'<input id="{input_id}"[^>]*\bvalue="([^"]*)"', body)
    assert match, f"no #{input_id} input"
    return match.group(1)


def _selected(body: str, select_id: str) -> list[str]:
    select = re.search(rf'<select id="{select_id}".*?</select>', body, re.S)
    assert select, f"no #{select_id} select"
    return re.findall(r'<option value="([^"]*)" selected>', select.group(0))


@pytest.mark.parametrize(("query", "message", "start", "end"), [
    ("start=2026-11-20&end=2026-11-10", "The from date must be on or before the to date.", "2026-11-20", "2026-11-10"),
    ("start=2026-02-30&end=2026-03-04", "The from date must look like 2026-11-25.", "2026-02-30", "2026-03-04"),
    ("start=2026-03-01&end=yesterday", "The to date must look like 2026-11-25.", "2026-03-01", "yesterday"),
])
def test_a_refused_date_keeps_what_was_typed_in_the_filters(logged_in_client, query, message, start, end):
    for headers in ({}, HTMX):
        body = logged_in_client.get(f"/requests?model=glm-5&status=error&{query}", headers=headers).get_data(as_text=True)
        assert message in body
        if headers:
            continue  # the fragment is the table; the filter bar stays on the page as the user left it
        assert _input_value(body, "f-start") == start
        assert _input_value(body, "f-end") == end
        assert _selected(body, "f-model") == ["glm-5"]
        assert _selected(body, "f-status") == ["error"]


def test_a_filter_the_gateway_refuses_keeps_every_typed_value(logged_in_client):
    # The portal lets the key id through (it looks like an id); the gateway refuses it.
    body = logged_in_client.get("/requests?key_id=not-a-key&model=glm-5&status=error&start=2026-11-01"
                                "&end=2026-11-20").get_data(as_text=True)
    assert "key_id must be a key id." in body
    assert _input_value(body, "f-start") == "2026-11-01"
    assert _input_value(body, "f-end") == "2026-11-20"
    assert _selected(body, "f-model") == ["glm-5"]
    assert _selected(body, "f-status") == ["error"]
    assert "/requests.csv?" in body and "model=glm-5" in body  # the export link keeps the filters too


@pytest.mark.parametrize("query", ["end=9999-12-31", "start=0001-01-01", "start=2026-11-01&end=9999-12-31"])
def test_a_far_off_date_is_refused_by_name_without_blaming_the_usage_service(logged_in_client, query):
    response = logged_in_client.get(f"/requests?{query}")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "must be a date in the years 2000 to 2999." in body
    assert "usage service is unavailable" not in body
    assert "Change the filters above to see the log." in body
