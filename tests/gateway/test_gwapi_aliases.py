"""Clients' own model ids (dated, dashed, ``[1m]``) resolve to the catalogue's models."""

from __future__ import annotations

import re
import uuid

import pytest
import requests
from gwapi_helpers import new_customer

from fixtures.upstream import PROVIDERS_TOML
from gateway.catalog import load_catalog, parse_catalog
from gateway.config import ConfigError

# What Anthropic, OpenAI and DeepSeek call these models, and the catalogue's id for each.
CLIENT_IDS = {
    "claude-sonnet-4-5": "claude-sonnet-4.5",
    "claude-sonnet-4-5-20250929": "claude-sonnet-4.5",
    "claude-haiku-4-5": "claude-haiku-4.5",
    "claude-haiku-4-5-20251001": "claude-haiku-4.5",
    "claude-opus-4-6": "claude-4.6-opus",
    "deepseek-chat": "deepseek-v3.2",
    "gpt-5.2-2025-12-11": "gpt-5.2",
}


def _catalog(models: list[dict]) -> dict:
    return {
        "providers": {"p": {"base_url": "https://p.example", "api_key_env": "P_KEY", "api": "openai"}},
        "models": [{"provider": "p", "input_price": 1, "output_price": 2, **m} for m in models],
    }


def test_the_shipped_catalogue_maps_each_client_id_onto_the_same_upstream_model():
    catalog = load_catalog(PROVIDERS_TOML)
    for client_id, model_id in CLIENT_IDS.items():
        model = catalog.resolve(client_id)
        assert model is not None and model.id == model_id, client_id
    for model in catalog.models.values():
        assert catalog.resolve(model.id) is model
        for alias in model.aliases:
            # Dated ids extend the upstream's own id: never another (older or newer) model.
            assert alias == model.upstream or alias.startswith(model.upstream + "-"), alias
    assert catalog.resolve("claude-sonnet-5") is None
    assert catalog.resolve("claude-opus-4-8") is None


@pytest.mark.parametrize("models, complaint", [
    ([{"id": "a", "upstream": "a", "aliases": ["x"]}, {"id": "b", "upstream": "b", "aliases": ["x"]}],
     "alias 'x' is given to 'a' and 'b'"),
    ([{"id": "a", "upstream": "a", "aliases": ["b"]}, {"id": "b", "upstream": "b"}], "alias 'b' of 'a' is a model id"),
    ([{"id": "a", "upstream": "a", "aliases": "x"}], "models[0].aliases must be a list"),
    ([{"id": "a", "upstream": "a", "aliases": [""]}], "models[0].aliases must be a list"),
    ([{"id": "a", "upstream": "a", "aliases": [5]}], "models[0].aliases must be a list"),
])
def test_aliases_are_checked_when_the_catalogue_loads(models, complaint):
    with pytest.raises(ConfigError, match=re.escape(complaint)):
        parse_catalog(_catalog(models))


def _messages(gateway, key: str, model: str, text: str, headers: dict | None = None) -> requests.Response:
    return requests.post(f"{gateway.url}/v1/messages", timeout=30,
                         headers={"x-api-key": key, "anthropic-version": "2023-06-01", **(headers or {})},
                         json={"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}]})


@pytest.mark.parametrize("client_id, model_id", [
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4.5"), ("claude-haiku-4-5", "claude-haiku-4.5"),
    ("deepseek-chat", "deepseek-v3.2"),
])
def test_a_client_id_is_served_and_logged_as_the_canonical_model(gateway, fake_upstream, client_id, model_id):
    customer = new_customer(gateway)
    marker = uuid.uuid4().hex
    answer = _messages(gateway, customer.key, client_id, marker)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == model_id
    catalog = load_catalog(PROVIDERS_TOML)
    assert fake_upstream.last(marker).body["model"] == catalog.models[model_id].upstream
    chat = customer.openai().chat.completions.create(model=client_id, messages=[{"role": "user", "content": "hi"}])
    assert chat.model == model_id
    customer.settled(2)
    assert [row["model"] for row in customer.log()] == [model_id, model_id]


def test_models_lists_canonical_ids_and_finds_a_model_by_alias(gateway):
    customer = new_customer(gateway)
    ids = [m.id for m in customer.openai().models.list().data]
    assert "claude-sonnet-4.5" in ids and not set(CLIENT_IDS) & set(ids)
    assert customer.openai().models.retrieve("claude-haiku-4-5-20251001").id == "claude-haiku-4.5"


def test_the_long_context_suffix_opens_the_long_window_where_the_model_has_one(gateway, fake_upstream):
    customer = new_customer(gateway)
    marker = uuid.uuid4().hex
    answer = _messages(gateway, customer.key, "claude-sonnet-4-5[1m]", marker,
                       headers={"anthropic-beta": "interleaved-thinking-2025-05-14"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "claude-sonnet-4.5"
    beta = fake_upstream.last(marker).headers["anthropic-beta"].split(",")
    assert beta == ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]
    # Haiku has no long window: the suffix resolves the model and adds nothing.
    other = uuid.uuid4().hex
    assert _messages(gateway, customer.key, "claude-haiku-4-5[1m]", other).status_code == 200
    assert "anthropic-beta" not in fake_upstream.last(other).headers
    customer.settled(2)
    assert {row["model"] for row in customer.log()} == {"claude-sonnet-4.5", "claude-haiku-4.5"}


def test_ids_of_other_models_are_not_guessed(gateway):
    customer = new_customer(gateway)
    for unknown in ("claude-sonnet-5", "claude-opus-4-8[1m]", "claude-sonnet-4-5[2m]"):
        answer = _messages(gateway, customer.key, unknown, "hi")
        assert answer.status_code == 404, unknown
        assert answer.json()["error"]["type"] == "not_found_error"
