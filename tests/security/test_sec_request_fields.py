"""Every field of every public request body, in-process: the checks and the translators either
accept a body or refuse it with a 400 naming a field; nothing else may escape (no TypeError,
no AttributeError, no 500). Thousands of bodies in a few seconds, for both wire formats."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.catalog import load_catalog
from gateway.errors import ApiError
from gateway.proxy.call import EMBEDDINGS, plan_request
from gateway.proxy.translate import validate

from fixtures.gateway import SHIPPED_PROVIDERS
from hostile_bodies import BASES, hostile_body

CATALOG = load_catalog(SHIPPED_PROVIDERS)
CHAT_MODELS = ["deepseek-v3.2", "claude-haiku-4.5", "gpt-5.2"]
CHECKS = {"/v1/chat/completions": validate.check_chat, "/v1/messages": validate.check_messages,
          "/v1/completions": validate.check_completion, "/v1/embeddings": validate.check_embedding}


def _plan(endpoint: str, body: dict) -> None:
    """What the public API does with a body before it reserves: check it, then translate it.

    The body first goes through JSON as on the wire (where an integer beyond 64 bits reads as a float).
    """
    body = orjson.loads(json.dumps(body))
    try:
        model = CATALOG.models[validate.check_model(body)]
        CHECKS[endpoint](body)
        plan_request(endpoint, body, model, CATALOG.provider_of(model), "sk-upstream", None)
    except ApiError as error:
        assert 400 <= error.status < 500, error.message
        assert error.param is None or error.message.startswith(error.param) or endpoint != "/v1/messages"


@pytest.mark.parametrize("endpoint", list(BASES))
def test_the_valid_bodies_plan(endpoint):
    models = ["text-embedding-3-small"] if endpoint == EMBEDDINGS else CHAT_MODELS
    for model_id in models:
        model = CATALOG.models[model_id]
        body = dict(BASES[endpoint], model=model_id)
        CHECKS[endpoint](body)
        plan_request(endpoint, body, model, CATALOG.provider_of(model), "sk-upstream", None)


@pytest.mark.parametrize("endpoint", list(BASES))
@settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_body_is_accepted_or_a_400_naming_a_field(endpoint, data):
    models = ["text-embedding-3-small"] if endpoint == EMBEDDINGS else CHAT_MODELS
    _plan(endpoint, data.draw(hostile_body(endpoint, models)))


@pytest.mark.parametrize("options", [[None], "yes", 1, True, {"include_usage": "yes"}, None])
def test_stream_options_of_any_shape_on_messages_plan_or_answer_400(options):
    _plan("/v1/messages", dict(BASES["/v1/messages"], model="deepseek-v3.2", stream=True, stream_options=options))
