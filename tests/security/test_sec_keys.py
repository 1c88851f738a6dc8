"""API keys: a documented format secret scanners can match, stored only as hashes, never shown again."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def _documented_pattern() -> re.Pattern:
    text = DOCS.read_text()
    match = re.search(r"```regex\n(.+?)\n```", text)
    assert match, "docs/security.md shows the key pattern in a ```regex block"
    return re.compile(match.group(1))


def test_new_keys_match_the_documented_pattern_and_nothing_else_does(gateway):
    pattern = _documented_pattern()
    account_id = gateway.create_account()
    keys = [gateway.create_key(account_id)["key"] for _ in range(5)]
    assert all(pattern.fullmatch(key) for key in keys)
    for not_a_key in ("sk-abc123", "sama_", "sama_1234", "sama_" + "g" * 36, gateway.token):
        assert not pattern.fullmatch(not_a_key)
    # In running text (a log, a paste) the same pattern finds the key.
    assert pattern.search(f"oops: Authorization: Bearer {keys[0]} leaked").group(0) == keys[0]


def test_the_api_docs_page_shows_the_pattern(client):
    page = client.get("/docs").get_data(as_text=True)
    assert "sama_" in page and "[0-9a-f]{8}" in page


def test_only_hashes_reach_the_database(gateway, gateway_db):
    account_id = gateway.create_account()
    key = gateway.create_key(account_id)["key"]
    with gateway_db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM api_keys WHERE account_id = :a"), {"a": account_id}).mappings().all()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0].values())
    assert key not in stored and key[5:] not in stored and key[5:25] not in stored


def test_the_key_is_shown_once_then_masked(logged_in_client):
    created = logged_in_client.post("/keys", data={"name": "shown once"}).get_data(as_text=True)
    key = re.search(r"sama_[0-9a-f-]{36}", created).group(0)
    listing = logged_in_client.get("/keys").get_data(as_text=True)
    assert key not in listing and key[5:] not in listing
    assert f"{key[:9]}…{key[-4:]}" in listing or f"{key[:9]}&hellip;{key[-4:]}" in listing


def test_keys_never_travel_in_urls(gateway):
    account_id = gateway.create_account(10**9)
    key = gateway.create_key(account_id)["key"]
    import requests

    answer = requests.get(f"{gateway.url}/v1/models", params={"api_key": key}, timeout=30)
    assert answer.status_code == 401 and key not in answer.text
    assert key not in gateway.log_text()
