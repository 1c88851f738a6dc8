"""What Claude Code really sends to /v1/messages: recorded bodies, today's Messages fields,
their translation for OpenAI-wire upstreams, and thinking carried across formats."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import ApiError
from gateway.proxy.translate import validate

FIXTURES = Path(__file__).parent / "fixtures" / "claude_code"
RECORDED = sorted(FIXTURES.glob("*.json"))


def recorded(name: str) -> dict:
    return orjson.loads((FIXTURES / name).read_bytes())


def refused(body: dict) -> str:
    with pytest.raises(ApiError) as caught:
        validate.check_messages(body)
    assert caught.value.status == 400
    return caught.value.param


def base(**fields) -> dict:
    return {"model": "m", "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}], **fields}


# --- the validator -------------------------------------------------------------------


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_every_recorded_claude_code_body_is_accepted(path):
    validate.check_messages(orjson.loads(path.read_bytes())["body"])


def test_system_messages_anywhere_with_string_or_text_blocks_are_accepted():
    validate.check_messages(base(messages=[
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "ok"},
        {"role": "system", "content": [{"type": "text", "text": "Now in French.", "cache_control": {"type": "ephemeral"}}]},
    ]))


def test_a_system_message_holding_an_image_is_refused_by_name():
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    assert refused(base(messages=[{"role": "system", "content": [image]}])) == "messages.0.content.0.type"
    assert refused(base(messages=[{"role": "tool", "content": "x"}])) == "messages.0.role"


@pytest.mark.parametrize("thinking", [
    {"type": "enabled", "budget_tokens": 1024},
    {"type": "enabled", "budget_tokens": 31999, "display": "omitted"},
    {"type": "disabled"},
    {"type": "adaptive"},
])
def test_thinking_as_anthropic_defines_it_is_accepted(thinking):
    validate.check_messages(base(thinking=thinking, output_config={"effort": "high"},
                                 context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}))


@pytest.mark.parametrize("thinking", [
    {"type": "enabled"},
    {"type": "enabled", "budget_tokens": 1023},
    {"type": "enabled", "budget_tokens": "2000"},
    {"type": "enabled", "budget_tokens": True},
    {"type": "sometimes"},
    "enabled",
])
def test_bad_thinking_is_a_400_naming_it(thinking):
    assert refused(base(thinking=thinking)).startswith("thinking")


@settings(max_examples=50, derandomize=True, deadline=None)
@given(st.integers(min_value=-(2**40), max_value=2**40))
def test_thinking_budgets_below_anthropics_minimum_are_refused(budget):
    body = base(thinking={"type": "enabled", "budget_tokens": budget})
    if 1024 <= budget <= validate.MAX_OUTPUT_TOKENS:
        validate.check_messages(body)
    else:
        assert refused(body) == "thinking.budget_tokens"


@pytest.mark.parametrize("control", [{"type": "ephemeral"}, {"type": "ephemeral", "ttl": "5m"},
                                     {"type": "ephemeral", "ttl": "1h"}])
def test_cache_control_is_accepted_on_system_user_and_tool_blocks(control):
    validate.check_messages(base(
        system=[{"type": "text", "text": "sys", "cache_control": control}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": control}]}],
        tools=[{"name": "t", "input_schema": {"type": "object"}, "cache_control": control}],
    ))


@pytest.mark.parametrize("control, param", [
    ({"type": "persistent"}, "messages.0.content.0.cache_control"),
    ({"type": "ephemeral", "ttl": "2h"}, "messages.0.content.0.cache_control.ttl"),
    ("ephemeral", "messages.0.content.0.cache_control"),
])
def test_bad_cache_control_is_a_400_naming_the_block(control, param):
    body = base(messages=[{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": control}]}])
    assert refused(body) == param


def test_tools_take_any_json_schema_and_server_tools_need_none():
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": "#/$defs/x"}}]}},
              "$defs": {"x": {"type": "integer"}}, "additionalProperties": False}
    validate.check_messages(base(tools=[
        {"name": "custom", "input_schema": schema, "defer_loading": True},
        {"type": "custom", "name": "typed", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ]))
    assert refused(base(tools=[{"name": "custom"}])) == "tools.0.input_schema"
    assert refused(base(tools=[{"name": "custom", "input_schema": "object"}])) == "tools.0.input_schema"


def test_metadata_output_config_and_context_management_are_type_checked():
    validate.check_messages(base(metadata={"user_id": '{"device_id":"abc"}'}, some_future_field={"x": 1}))
    assert refused(base(metadata={"user_id": 7})) == "metadata.user_id"
    assert refused(base(output_config="high")) == "output_config"
    assert refused(base(output_config={"effort": 3})) == "output_config.effort"
    assert refused(base(context_management=[1])) == "context_management"
