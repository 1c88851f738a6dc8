"""Responses API bodies: every bad field a 400 naming it, in OpenAI's error shape, never a 5xx;
and what the translations make of the fields they carry."""

from __future__ import annotations

import tomllib

import orjson
import pytest
import requests
from gwapi_helpers import new_customer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.upstream import PROVIDERS_TOML
from gateway.catalog import parse_catalog
from gateway.errors import ApiError
from gateway.proxy.translate import responses_api_requests as treq
from gateway.proxy.translate.responses_api_checks import check_responses

CATALOG = parse_catalog(tomllib.loads(PROVIDERS_TOML.read_text()))
GPT, DEEPSEEK, CLAUDE = (CATALOG.models[m] for m in ("gpt-5.2", "deepseek-v3.2", "claude-sonnet-4.5"))


def base(**fields) -> dict:
    return {"model": "m", "input": "hi", **fields}


def refused(body: dict) -> ApiError:
    with pytest.raises(ApiError) as caught:
        check_responses(body)
    assert caught.value.status == 400
    return caught.value


def translate_all(body: dict) -> None:
    """Every translation of an accepted body (a 400 ApiError is the only failure allowed)."""
    for passthrough in (True, False):
        tools = treq.split_tools(body, passthrough)
        if passthrough:
            treq.passthrough_request(body, GPT, tools)
        else:
            treq.responses_to_chat_request(body, DEEPSEEK, "deepseek", tools)
            treq.responses_to_messages_request(body, CLAUDE, tools)


# --- the checks, field by field -------------------------------------------------------


@pytest.mark.parametrize("body, param", [
    (base(input=None), "input"),
    (base(input=[]), "input"),
    (base(input=5), "input"),
    (base(input=["hi"]), "input[0]"),
    (base(input=[{"role": "robot", "content": "x"}]), "input[0].role"),
    (base(input=[{"role": "user"}]), "input[0].content"),
    (base(input=[{"role": "user", "content": [{"type": "input_text"}]}]), "input[0].content[0].text"),
    (base(input=[{"role": "user", "content": [{"type": "input_text", "text": 5}]}]), "input[0].content[0].text"),
    (base(input=[{"role": "user", "content": [{"type": "input_video", "url": "x"}]}]), "input[0].content[0].type"),
    (base(input=[{"role": "user", "content": [{"type": "input_image"}]}]), "input[0].content[0]"),
    (base(input=[{"type": "function_call", "name": "f", "arguments": "{}"}]), "input[0].call_id"),
    (base(input=[{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]), "input[0].arguments"),
    (base(input=[{"type": "function_call_output", "call_id": "c"}]), "input[0].output"),
    (base(input=[{"type": "function_call_output", "call_id": "c", "output": 3}]), "input[0].output"),
    (base(input=[{"type": "reasoning", "summary": "x"}]), "input[0].summary"),
    (base(input=[{"type": "item_reference", "id": "msg_1"}]), "input[0]"),
    (base(instructions=["x"]), "instructions"),
    (base(max_output_tokens=0), "max_output_tokens"),
    (base(max_output_tokens="100"), "max_output_tokens"),
    (base(max_tokens=100), "max_tokens"),
    (base(temperature=3), "temperature"),
    (base(top_p=-1), "top_p"),
    (base(stream="yes"), "stream"),
    (base(store=1), "store"),
    (base(parallel_tool_calls="false"), "parallel_tool_calls"),
    (base(tools={"type": "function"}), "tools"),
    (base(tools=[{"type": "function"}]), "tools[0].name"),
    (base(tools=[{"type": "function", "name": "f", "parameters": "object"}]), "tools[0].parameters"),
    (base(tools=["web_search"]), "tools[0]"),
    (base(tool_choice="always"), "tool_choice"),
    (base(tool_choice={"type": "function"}), "tool_choice.name"),
    (base(reasoning="high"), "reasoning"),
    (base(reasoning={"effort": "extreme"}), "reasoning.effort"),
    (base(reasoning={"summary": "long"}), "reasoning.summary"),
    (base(text={"verbosity": 1}), "text.verbosity"),
    (base(text={"format": "json"}), "text.format"),
    (base(include="reasoning.encrypted_content"), "include"),
    (base(prompt_cache_key=7), "prompt_cache_key"),
    (base(stream_options=[]), "stream_options"),
    (base(metadata="x"), "metadata"),
    (base(previous_response_id="resp_1"), "previous_response_id"),
    (base(conversation="conv_1"), "conversation"),
    (base(background=True), "background"),
])
def test_a_bad_field_is_a_400_naming_it(body, param):
    error = refused(body)
    assert error.param == param
    assert error.message.startswith(param) or param in error.message


def test_what_codex_sends_is_accepted():
    check_responses(base(
        instructions="You are Codex.", tool_choice="auto", parallel_tool_calls=False, store=False, stream=True,
        include=["reasoning.encrypted_content"], prompt_cache_key="019ad3c4", text={"verbosity": "low"},
        reasoning={"effort": "medium", "summary": "auto"}, stream_options={"include_obfuscation": False},
        input=[{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
               {"type": "reasoning", "id": "rs_1", "summary": [], "content": None, "encrypted_content": "gAAA"},
               {"type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": "*** Begin Patch"},
               {"type": "custom_tool_call_output", "call_id": "c", "output": "ok"},
               {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}}],
        tools=[{"type": "function", "name": "shell", "parameters": {"type": "object"}, "strict": False},
               {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
               {"type": "web_search"}, {"type": "namespace", "name": "mcp", "tools": []}],
    ))


# --- translation -------------------------------------------------------------------------


def test_roles_instructions_and_images_become_chat_messages():
    body = base(instructions="Top.", input=[
        {"role": "developer", "content": "Dev."},
        {"role": "user", "content": [{"type": "input_text", "text": "Look:"},
                                     {"type": "input_image", "image_url": "https://example.com/a.png"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "A cat."}]},
        {"role": "system", "content": "Later."},
        {"role": "user", "content": "Thanks"},
    ], max_output_tokens=300, temperature=0.5, top_p=0.9)
    check_responses(body)
    out = treq.responses_to_chat_request(body, DEEPSEEK, "deepseek", treq.split_tools(body, False))
    assert out["messages"] == [
        {"role": "system", "content": "Top."},
        {"role": "system", "content": "Dev."},
        {"role": "user", "content": [{"type": "text", "text": "Look:"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "system", "content": "Later."},
        {"role": "user", "content": "Thanks"},
    ]
    assert (out["max_tokens"], out["temperature"], out["top_p"]) == (300, 0.5, 0.9)
    claude = treq.responses_to_messages_request(body, CLAUDE, treq.split_tools(body, False))
    assert claude["system"] == "Top.\n\nDev."
    assert claude["messages"][0]["content"][1] == {"type": "image", "source": {"type": "url",
                                                                                "url": "https://example.com/a.png"}}
    assert claude["messages"][2]["content"][0]["text"] == "<system-reminder>\nLater.\n</system-reminder>"
    assert claude["max_tokens"] == 300


@pytest.mark.parametrize("choice, parallel, chat, anthropic", [
    ("auto", None, "auto", {"type": "auto"}),
    ("required", None, "required", {"type": "any"}),
    ("none", None, "none", {"type": "none"}),
    ({"type": "function", "name": "f"}, None, {"type": "function", "function": {"name": "f"}},
     {"type": "tool", "name": "f"}),
    ("auto", False, "auto", {"type": "auto", "disable_parallel_tool_use": True}),
])
def test_tool_choice_and_parallel_tool_calls_translate(choice, parallel, chat, anthropic):
    body = base(tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}], tool_choice=choice,
                **({"parallel_tool_calls": parallel} if parallel is not None else {}))
    check_responses(body)
    tools = treq.split_tools(body, False)
    out = treq.responses_to_chat_request(body, DEEPSEEK, "deepseek", tools)
    assert out["tool_choice"] == chat
    assert out.get("parallel_tool_calls") == parallel
    assert treq.responses_to_messages_request(body, CLAUDE, tools)["tool_choice"] == anthropic


def test_a_forced_tool_turns_claude_thinking_off():
    body = base(tools=[{"type": "function", "name": "f"}], tool_choice="required", reasoning={"effort": "high"})
    assert "thinking" not in treq.responses_to_messages_request(body, CLAUDE, treq.split_tools(body, False))


def test_built_in_and_custom_tools_are_left_out_and_named():
    body = base(tools=[{"type": "function", "name": "f"}, {"type": "custom", "name": "apply_patch"},
                       {"type": "web_search"}, {"type": "file_search", "vector_store_ids": []},
                       {"type": "web_search_preview"}, {"type": "namespace", "name": "mcp__docs", "tools": []}])
    passed = treq.split_tools(body, True)
    assert passed.omitted == ["web_search", "file_search", "web_search_preview"]
    assert [tool["type"] for tool in passed.kept] == ["function", "custom", "namespace"]
    assert treq.split_tools(body, False).omitted == ["apply_patch", "web_search", "file_search",
                                                    "web_search_preview", "mcp__docs"]
    with pytest.raises(ApiError):
        treq.split_tools(dict(body, tool_choice={"type": "file_search"}), True)
    with pytest.raises(ApiError) as caught:
        treq.split_tools(dict(body, tool_choice={"type": "custom", "name": "apply_patch"}), False)
    assert caught.value.param == "tool_choice" and "not available" in caught.value.message
    assert treq.split_tools(dict(body, tool_choice={"type": "custom", "name": "apply_patch"}), True).kept


def test_arguments_that_are_not_a_json_object_are_a_400_for_claude():
    body = base(input=[{"role": "user", "content": "x"},
                       {"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"},
                       {"type": "function_call_output", "call_id": "c", "output": "ok"}])
    check_responses(body)
    with pytest.raises(ApiError) as caught:
        treq.responses_to_messages_request(body, CLAUDE, treq.split_tools(body, False))
    assert caught.value.param == "input[1].arguments"


# --- fuzz: any body is accepted and translated, or a 400 --------------------------------

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**7), st.floats(allow_nan=False, width=32),
                    st.text(max_size=8), st.sampled_from(["auto", "none", "required", "function", "message", "user",
                                                          "input_text", "input_image", "high", "web_search"]))
_json = st.recursive(_scalar, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)), max_leaves=8)
_part = st.fixed_dictionaries({"type": st.sampled_from(["input_text", "output_text", "input_image", "refusal",
                                                        "input_file", "other"])},
                              optional={"text": _json, "image_url": st.one_of(_json, st.sampled_from(
                                  ["https://x/a.png", "data:image/png;base64,AAAA", "data:text", "ftp://x"])),
                                  "refusal": _json, "file_id": _json})
_item = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "developer", "tool"])},
                          optional={"type": st.just("message"),
                                    "content": st.one_of(st.text(max_size=5), st.lists(_part, max_size=3), _json)}),
    st.fixed_dictionaries({"type": st.sampled_from(["function_call", "custom_tool_call"])},
                          optional={"call_id": _json, "name": _json, "arguments": st.one_of(
                              _json, st.sampled_from(["{}", '{"a": 1}', "[1]", "{bad"])), "input": _json}),
    st.fixed_dictionaries({"type": st.sampled_from(["function_call_output", "custom_tool_call_output"])},
                          optional={"call_id": _json, "output": st.one_of(_json, st.lists(_part, max_size=2))}),
    st.fixed_dictionaries({"type": st.just("reasoning")},
                          optional={"summary": st.one_of(_json, st.lists(st.fixed_dictionaries(
                              {"type": st.just("summary_text"), "text": _json}), max_size=2)),
                              "encrypted_content": st.one_of(_json, st.just("claude-thinking:c2ln"))}),
    _json,
)
_tool = st.one_of(st.fixed_dictionaries({"type": st.sampled_from(["function", "custom", "web_search", "x"])},
                                        optional={"name": _json, "parameters": _json, "strict": _json,
                                                  "description": _json}), _json)
_BODY = st.fixed_dictionaries({"model": st.just("m")}, optional={
    "input": st.one_of(st.text(max_size=5), st.lists(_item, max_size=4), _json),
    "instructions": _json, "max_output_tokens": _json, "temperature": _json, "top_p": _json,
    "stream": _json, "store": _json, "parallel_tool_calls": _json,
    "tools": st.one_of(st.lists(_tool, max_size=3), _json),
    "tool_choice": st.one_of(_json, st.fixed_dictionaries({"type": st.sampled_from(
        ["function", "custom", "web_search", "allowed_tools"])}, optional={"name": _json, "mode": _json})),
    "reasoning": st.one_of(_json, st.fixed_dictionaries({}, optional={
        "effort": st.one_of(_json, st.sampled_from(["low", "medium", "high", "xhigh", "minimal"])),
        "summary": _json})),
    "text": _json, "include": _json, "prompt_cache_key": _json, "previous_response_id": _json,
    "stream_options": _json, "metadata": _json,
})


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(_BODY)
def test_any_body_is_translated_or_refused_with_a_400(body):
    try:
        check_responses(body)
        translate_all(body)
    except ApiError as error:
        assert error.status == 400 and error.param and error.message


@pytest.fixture
def customer(gateway, fake_upstream):
    return new_customer(gateway)


@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_BODY, model=st.sampled_from(["gpt-5.2", "deepseek-v3.2", "claude-sonnet-4.5"]))
def test_no_body_gets_a_5xx_from_the_gateway(gateway, fake_upstream, customer, body, model):
    body = dict(body, model=model, stream=False)
    answer = requests.post(f"{gateway.url}/v1/responses", data=orjson.dumps(body), timeout=30,
                           headers={"Authorization": f"Bearer {customer.key}", "Content-Type": "application/json"})
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 400:
        error = answer.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"


def test_only_openais_own_reasoning_goes_back_to_openai():
    body = base(input=[
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB-openai"},
        {"type": "reasoning", "id": "rs_2", "summary": [{"type": "summary_text", "text": "DeepSeek thought"}]},
        {"type": "reasoning", "id": "rs_3", "summary": [], "encrypted_content": "claude-thinking:c2ln"},
        {"role": "assistant", "content": "hello"},
    ])
    check_responses(body)
    out = treq.passthrough_request(body, GPT, treq.split_tools(body, True))
    assert [item.get("id") for item in out["input"]] == [None, "rs_1", None]
    assert out["store"] is False and out["model"] == "gpt-5.2"
    claude = treq.responses_to_messages_request(dict(body, reasoning={"effort": "low"}), CLAUDE,
                                                treq.split_tools(body, False))
    assert claude["messages"][1]["content"] == [{"type": "thinking", "thinking": "", "signature": "c2ln"},
                                                {"type": "text", "text": "hello"}]
