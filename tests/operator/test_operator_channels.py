"""The console's channels page (live health, switch off and on, test), provider keys entered
in the console, and the margin on the traffic page."""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from fixtures.gateway import start_gateway
from fixtures.portal import portal_config
from operator_helpers import audit_rows, sign_in_with_code

CHANNEL = "deepseek:deepseek-chat"
MODEL = "deepseek-v3.2"


def _chat(gateway, key: str) -> requests.Response:
    return requests.post(f"{gateway.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, timeout=30)


def test_the_channels_page_shows_each_model_s_channels_with_their_health(operator_client):
    page = operator_client.get("/operator/channels")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'data-channel="{CHANNEL}"' in html and "Test channel" in html
    # The health table refreshes itself: as a fragment, it is the table alone, without the
    # forms, so a reason being typed is never swapped away.
    fragment = operator_client.get("/operator/channels", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="channel-table"') and "<html" not in fragment
    assert 'hx-trigger="every 5s"' in fragment and "<form" not in fragment


def test_switching_a_channel_off_and_on_is_audited_and_reaches_the_gateway(operator_client, customer, gateway):
    try:
        answer = operator_client.post("/operator/channels/switch", data={"channel": CHANNEL, "reason": "provider outage"})
        assert answer.status_code == 303
        html = operator_client.get("/operator/channels").get_data(as_text=True)
        row = re.search(rf'<tr data-channel="{re.escape(CHANNEL)}">.*?</tr>', html, re.S).group(0)
        actions = re.search(rf'<tr data-channel-actions="{re.escape(CHANNEL)}">.*?</tr>', html, re.S).group(0)
        assert "switched off" in row and "Switch on" in actions
        refused = _chat(gateway, customer.key)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "no_channel_available"
        [entry] = audit_rows(operator_client.application, "channel.disable", CHANNEL)[:1]
        assert entry.reason == "provider outage"
    finally:
        back = operator_client.post("/operator/channels/switch",
                                    data={"channel": CHANNEL, "enabled": "y", "reason": "provider back"})
    assert back.status_code == 303
    assert _chat(gateway, customer.key).status_code == 200
    assert audit_rows(operator_client.application, "channel.enable", CHANNEL)


def test_a_switch_without_a_reason_changes_nothing(operator_client, gateway):
    answer = operator_client.post("/operator/channels/switch", data={"channel": CHANNEL, "reason": ""})
    assert answer.status_code == 422
    model = next(m for m in gateway.internal("GET", "/admin/channels").json()["models"] if m["id"] == MODEL)
    assert model["channels"][0]["state"] != "off"


@pytest.mark.parametrize("channel", [CHANNEL, "openai:text-embedding-3-small"])
def test_the_test_button_says_what_the_channel_answered(operator_client, channel):
    answer = operator_client.post("/operator/channels/test", data={"channel": channel}, follow_redirects=True)
    assert f"{channel} answered in" in answer.get_data(as_text=True)
    assert audit_rows(operator_client.application, "channel.test", channel)
    unknown = operator_client.post("/operator/channels/test", data={"channel": "nobody:x"}, follow_redirects=True)
    assert "No channel with this id" in unknown.get_data(as_text=True)


def test_without_secrets_key_the_console_says_key_entry_is_off(operator_client):
    html = operator_client.get("/operator/channels").get_data(as_text=True)
    assert "Console key entry is switched off" in html and "SECRETS_KEY" in html
    assert 'name="key"' not in html
    refused = operator_client.post("/operator/provider-keys/deepseek",
                                   data={"key": "sk-0123456789abcdef", "reason": "try"})
    assert refused.status_code == 422 and "SECRETS_KEY" in refused.get_data(as_text=True)


@pytest.fixture
def console_on(portal_database_url, operator, tmp_path):
    """``console_on(env)``: a gateway of its own with ``env`` and a console client signed in to it."""
    from portal import create_app
    from portal.extensions import db

    started = []

    def start(env: dict):
        handle = start_gateway(env)
        app = create_app(portal_config(portal_database_url, handle.internal_url, handle.token,
                                       tmp_path / f"console-{len(started)}"))
        started.append((handle, app))
        client = app.test_client()
        sign_in_with_code(client, operator.email, operator.password, operator.secret)
        return handle, client

    yield start
    for handle, app in started:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        handle.stop()


@pytest.fixture
def keyed_console(gateway_env, console_on):
    """A gateway with SECRETS_KEY and a console signed in to it; MiniMax has no key in the environment."""
    return console_on({**gateway_env, "SECRETS_KEY": Fernet.generate_key().decode()})


def test_the_traffic_log_shows_the_serving_channel_and_every_try(gateway_env, console_on, tmp_path):
    providers = Path(gateway_env["PROVIDERS_FILE"]).read_text()
    marker = 'id = "deepseek-v3.2"\n'
    assert marker in providers
    routed = providers.replace(marker, marker + 'fallbacks = [ { provider = "qwen", upstream = "deepseek-mirror" } ]\n')
    (tmp_path / "providers.toml").write_text(routed)
    handle, client = console_on({**gateway_env, "PROVIDERS_FILE": str(tmp_path / "providers.toml")})
    account = handle.create_account(10**9)
    key = handle.create_key(account)["key"]
    failed = requests.post(f"{handle.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"model": MODEL, "messages": [{"role": "user", "content": "[[error:503]]"}]},
                           timeout=30)
    assert failed.status_code == 503
    deadline = time.monotonic() + 20
    while handle.internal("GET", f"/accounts/{account}").json()["requests"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    html = client.get(f"/operator/traffic?account_id={account}").get_data(as_text=True)
    tries = re.search(r'<span class="cell-sub" data-testid="tries" title="([^"]*)">after 2 tries</span>', html)
    assert tries, html[:2000]
    assert tries.group(1).startswith(f"{CHANNEL} 503 upstream_http_503 ")
    assert "qwen:deepseek-mirror 503" in tries.group(1)


def test_a_key_entered_in_the_console_is_masked_rotated_and_never_shown(keyed_console, fake_upstream):
    keyed, client = keyed_console
    secret = "sk-minimax-console-" + uuid.uuid4().hex
    answer = client.post("/operator/provider-keys/minimax", data={"key": secret, "reason": "new contract"},
                         follow_redirects=True)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and secret not in html
    assert f"sk-…{secret[-4:]}" in html
    row = re.search(r'<tr data-provider="minimax">.*?</tr>', html, re.S).group(0)
    assert "console" in row and "Rotate key" in row
    [entry] = audit_rows(client.application, "provider_key.set", "minimax")[:1]
    assert secret not in str(entry.after) and entry.after == {"key": f"sk-…{secret[-4:]}"}
    # In force at once, with no restart: the MiniMax model is served with that key.
    account = keyed.create_account(10**9)
    key = keyed.create_key(account)["key"]
    served = requests.post(f"{keyed.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"model": "minimax-m2.5", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert served.status_code == 200, served.text
    assert fake_upstream.last().headers["Authorization"] == f"Bearer {secret}"
    assert secret not in keyed.log_text()
    forgotten = client.post("/operator/provider-keys/minimax/delete", data={"reason": "contract ended"},
                            follow_redirects=True)
    assert "is forgotten" in forgotten.get_data(as_text=True)
    time.sleep(0.3)
    again = requests.post(f"{keyed.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                          json={"model": "minimax-m2.5", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert again.status_code == 503


def test_the_traffic_page_shows_the_margin_and_its_csv_matches(operator_client, customer, gateway):
    assert _chat(gateway, customer.key).status_code == 200
    deadline = time.monotonic() + 20
    while gateway.internal("GET", f"/accounts/{customer.account_id}").json()["requests"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    html = operator_client.get("/operator/traffic?range=7d").get_data(as_text=True)
    assert f'data-model="{MODEL}" data-channel="{CHANNEL}"' in html
    assert "without cost" in html  # the shipped catalogue sets no cost prices
    download = operator_client.get("/operator/traffic/margin.csv?range=7d")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
    ours = [r for r in rows if r["model"] == MODEL and r["channel"] == CHANNEL]
    assert ours and all(int(r["revenue_micro_p"]) > 0 for r in ours)
    assert all(int(r["margin_micro_p"]) == 0 and int(r["requests_without_cost"]) == int(r["requests"]) for r in ours)
