"""What Claude Code really sends to /v1/messages: recorded bodies, today's Messages fields,
their translation for OpenAI-wire upstreams, and thinking carried across formats."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import orjson
import pytest
import requests
from gwapi_helpers import ONE_P, cost, new_customer
from hypothesis import given, settings
from hypothesis import strategies as st
from test_gwapi_translate import DEEPSEEK, GPT

from fixtures.upstream import REPLY_TEXT, THINKING_TEXT
from gateway.errors import ApiError
from gateway.proxy.translate import requests as treq
from gateway.proxy.translate import responses as tresp
from gateway.proxy.translate import streams
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


# --- translation for OpenAI-wire upstreams ---------------------------------------------

def test_a_mid_conversation_system_message_stays_in_place_for_openai_wire_upstreams():
    body = base(system=[{"type": "text", "text": "Top.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
                messages=[
                    {"role": "user", "content": [{"type": "text", "text": "one", "cache_control": {"type": "ephemeral"}}]},
                    {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "xyz"},
                        {"type": "text", "text": "two"},
                    ]},
                    {"role": "system", "content": [{"type": "text", "text": "Mid."}]},
                    {"role": "user", "content": "three"},
                    {"role": "system", "content": "Last."},
                ],
                thinking={"type": "adaptive"}, output_config={"effort": "low"},
                context_management={"edits": []}, metadata={"user_id": "device-1"}, unknown_field=1)
    out = treq.messages_to_chat_request(body, DEEPSEEK, "deepseek")
    assert out["messages"] == [
        {"role": "system", "content": "Top."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "system", "content": "Mid."},
        {"role": "user", "content": "three"},
        {"role": "system", "content": "Last."},
    ]
    assert set(out) == {"model", "messages", "max_tokens"}  # no reasoning_effort: DeepSeek's chat has none
    gpt = treq.messages_to_chat_request(body, GPT, "openai")
    assert gpt["reasoning_effort"] == "low"
    assert [m["role"] for m in gpt["messages"]] == ["system", "user", "assistant", "system", "user", "system"]


@pytest.mark.parametrize("thinking, output_config, effort", [
    ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
    ({"type": "enabled", "budget_tokens": 8000}, None, "medium"),
    ({"type": "enabled", "budget_tokens": 31999}, None, "high"),
    ({"type": "adaptive"}, {"effort": "max"}, "high"),
    ({"type": "adaptive"}, None, "medium"),
    ({"type": "disabled"}, None, None),
])
def test_thinking_becomes_reasoning_effort_only_where_the_model_has_it(thinking, output_config, effort):
    body = base(thinking=thinking, **({"output_config": output_config} if output_config else {}))
    assert treq.messages_to_chat_request(body, GPT, "openai").get("reasoning_effort") == effort
    assert "reasoning_effort" not in treq.messages_to_chat_request(body, DEEPSEEK, "deepseek")


def test_server_tools_are_left_out_for_openai_wire_upstreams_unless_forced():
    tools = [{"name": "Bash", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
             {"type": "web_search_20250305", "name": "web_search"}]
    out = treq.messages_to_chat_request(base(tools=tools), DEEPSEEK, "deepseek")
    assert [t["function"]["name"] for t in out["tools"]] == ["Bash"]
    assert "cache_control" not in orjson.dumps(out).decode()
    only_server = treq.messages_to_chat_request(base(tools=tools[1:], tool_choice={"type": "auto"}), GPT, "openai")
    assert "tools" not in only_server and "tool_choice" not in only_server  # OpenAI refuses a choice without tools
    with pytest.raises(ApiError) as caught:
        treq.messages_to_chat_request(base(tools=tools, tool_choice={"type": "tool", "name": "web_search"}),
                                      DEEPSEEK, "deepseek")
    assert caught.value.status == 400 and caught.value.param == "tool_choice.name"


def test_system_messages_become_user_turns_in_place_for_anthropic():
    body = base(messages=[{"role": "user", "content": "a"}, {"role": "system", "content": "Mid."},
                          {"role": "assistant", "content": "b"}])
    out = treq.system_messages_as_user_turns(body)
    assert [m["role"] for m in out["messages"]] == ["user", "user", "assistant"]
    assert out["messages"][1]["content"] == [{"type": "text", "text": "<system-reminder>\nMid.\n</system-reminder>"}]
    assert body["messages"][1]["role"] == "system"  # the client's body is left alone


# --- recorded bodies through the real gateway --------------------------------------------

REPLAY_MODELS = ("claude-haiku-4.5", "deepseek-v3.2", "gpt-5.2")
OPENAI_FIELDS = {"model", "messages", "max_tokens", "max_completion_tokens", "stream", "stream_options", "tools",
                 "tool_choice", "parallel_tool_calls", "reasoning_effort", "temperature", "top_p", "stop"}


@pytest.fixture
def customer(gateway, fake_upstream):
    return new_customer(gateway)


def _replay(gateway, customer, fixture: dict, model: str, stream: bool, marker: str) -> str:
    body = copy.deepcopy(fixture["body"])
    body["model"] = model
    body["stream"] = stream
    first = body["messages"][0]["content"]
    first.append({"type": "text", "text": marker})
    headers = dict(fixture["headers"], **{"x-api-key": customer.key, "content-type": "application/json"})
    answer = requests.post(gateway.url + fixture["path"], data=orjson.dumps(body), headers=headers,
                           timeout=30, stream=stream)
    assert answer.status_code == 200, answer.text
    if not stream:
        message = answer.json()
        assert message["type"] == "message"
        return "".join(block.get("text", "") for block in message["content"])
    text = []
    for line in answer.iter_lines():
        if line.startswith(b"data: "):
            event = orjson.loads(line[6:])
            if event.get("type") == "content_block_delta" and event["delta"].get("type") == "text_delta":
                text.append(event["delta"]["text"])
    return "".join(text)


def _chat_roles(body: dict) -> list[str]:
    """The chat roles a Messages conversation becomes: system messages where they were, tool results as tool."""
    roles = []
    for message in body["messages"]:
        content = message["content"]
        if message["role"] != "user" or isinstance(content, str):
            roles.append(message["role"])
            continue
        roles.extend("tool" for block in content if block["type"] == "tool_result")
        if any(block["type"] != "tool_result" for block in content):
            roles.append("user")
    return roles


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("model", REPLAY_MODELS)
@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_recorded_claude_code_bodies_get_an_answer_and_are_billed(gateway, fake_upstream, customer, path, model,
                                                                   stream):
    fixture = orjson.loads(path.read_bytes())
    assert "?beta=true" in fixture["path"]
    marker = f"replay-{uuid.uuid4().hex}"
    assert _replay(gateway, customer, fixture, model, stream, marker) == REPLY_TEXT

    sent = fake_upstream.last(marker)
    roles = [m["role"] for m in fixture["body"]["messages"]]
    if model.startswith("claude"):
        assert sent.headers["anthropic-beta"] == fixture["headers"]["anthropic-beta"]
        assert [m["role"] for m in sent.body["messages"]] == ["user" if r == "system" else r for r in roles]
        assert sent.body["thinking"] == fixture["body"]["thinking"]
        assert sent.body["context_management"] == fixture["body"]["context_management"]
    else:
        assert "anthropic-beta" not in {name.lower() for name in sent.headers}
        assert set(sent.body) <= OPENAI_FIELDS
        assert [m["role"] for m in sent.body["messages"]] == ["system", *_chat_roles(fixture["body"])]
        assert not any(word.encode() in sent.raw for word in ("cache_control", "defer_loading", "context_management"))
        assert ("reasoning_effort" in sent.body) == (model == "gpt-5.2")
        assert all(set(t) == {"type", "function"} for t in sent.body["tools"])
        assert all(set(m) <= {"role", "content", "tool_calls", "tool_call_id"} for m in sent.body["messages"])

    customer.settled(1)
    assert customer.ledger_sum() == 1000 * ONE_P - cost(model)


# --- thinking across formats --------------------------------------------------------------


def test_deepseek_reasoning_content_becomes_a_thinking_block_for_anthropic_clients():
    completion = {"id": "c1", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "reasoning_content": "Let me think.", "content": "Hi!"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3}}
    message = tresp.chat_to_messages_response(completion, "deepseek-v3.2")
    assert message["content"] == [{"type": "thinking", "thinking": "Let me think.", "signature": ""},
                                  {"type": "text", "text": "Hi!"}]


def test_anthropic_thinking_becomes_reasoning_content_for_openai_clients():
    message = {"id": "m1", "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 3}, "content": [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Hi!"}]}
    reply = tresp.messages_to_chat_response(message, "claude-haiku-4.5")["choices"][0]["message"]
    assert reply == {"role": "assistant", "content": "Hi!", "reasoning_content": "Let me think."}
    plain = dict(message, content=[{"type": "text", "text": "Hi!"}])
    assert "reasoning_content" not in tresp.messages_to_chat_response(plain, "claude-haiku-4.5")["choices"][0]["message"]


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_streamed_reasoning_content_becomes_thinking_deltas_before_the_text():
    stream = streams.ChatToMessagesStream("deepseek-v3.2", 10)
    events = []
    for chunk in (_chunk({"role": "assistant", "reasoning_content": "Hmm"}), _chunk({"reasoning_content": ", ok."}),
                  _chunk({"content": "Hi"}), _chunk({}, "stop")):
        events.extend(stream.feed(chunk))
    events.extend(stream.finish())
    kinds = [(e["type"], e.get("index"), (e.get("delta") or e.get("content_block") or {}).get("type")) for e in events]
    assert kinds == [
        ("message_start", None, None),
        ("content_block_start", 0, "thinking"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"), ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"), ("content_block_delta", 1, "text_delta"), ("content_block_stop", 1, None),
        ("message_delta", None, None), ("message_stop", None, None),
    ]
    assert events[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[2]["delta"]["thinking"] + events[3]["delta"]["thinking"] == "Hmm, ok."


def test_streamed_anthropic_thinking_becomes_reasoning_content_chunks():
    stream = streams.MessagesToChatStream("claude-haiku-4.5", include_usage=False)
    events = [
        {"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "x"}},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
        {"type": "message_stop"},
    ]
    deltas = [chunk["choices"][0]["delta"] for event in events for chunk in stream.feed(event) if chunk["choices"]]
    assert deltas == [{"role": "assistant", "content": ""}, {"reasoning_content": "Hmm."}, {"content": "Hi"}, {}]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_deepseek_reasoning_reaches_an_anthropic_client_as_thinking(gateway, fake_upstream, customer, stream):
    client = customer.anthropic()
    request = {"model": "deepseek-v3.2", "max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1024},
               "messages": [{"role": "user", "content": "hello [[think]]"}]}
    if stream:
        with client.messages.stream(**request) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**request)
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == THINKING_TEXT
    assert message.content[1].text == REPLY_TEXT
    assert "reasoning_effort" not in fake_upstream.last("[[think]]").body


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_claude_thinking_reaches_an_openai_client_as_reasoning_content(gateway, fake_upstream, customer, stream):
    answer = requests.post(f"{gateway.url}/v1/chat/completions", headers={"Authorization": f"Bearer {customer.key}"},
                           json={"model": "claude-haiku-4.5", "stream": stream,
                                 "messages": [{"role": "user", "content": "hello [[think]]"}]},
                           timeout=30, stream=stream)
    assert answer.status_code == 200, answer.text
    if not stream:
        reply = answer.json()["choices"][0]["message"]
        reasoning, text = reply["reasoning_content"], reply["content"]
    else:
        deltas = [orjson.loads(line[6:])["choices"] for line in answer.iter_lines()
                  if line.startswith(b"data: {")]
        deltas = [choices[0]["delta"] for choices in deltas if choices]
        reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
        text = "".join(d.get("content") or "" for d in deltas)
    assert (reasoning, text) == (THINKING_TEXT, REPLY_TEXT)
