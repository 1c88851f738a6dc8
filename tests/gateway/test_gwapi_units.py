"""Unit tests of the public API's building blocks: SSE splitting, relays, checks, errors, tokens."""

from __future__ import annotations

import orjson
import pytest

from gateway.proxy import tokens
from gateway.errors import ApiError, anthropic_error_body, openai_error_body
from gateway.proxy.upstream_errors import sanitise, status_error, upstream_message
from gateway.proxy.sse import SSESplitter, parse_event
from gateway.proxy.translate import validate
from gateway.proxy.translate.relays import ChatPassthrough, ChatToMessagesRelay, MessagesPassthrough


def test_sse_splitter_yields_whole_events_across_chunk_boundaries():
    splitter = SSESplitter()
    stream = b'data: {"a":1}\n\ndata: {"b":2}\n\nevent: x\ndata: {"c":3}\n\n'
    events = []
    for i in range(0, len(stream), 5):
        events.extend(splitter.feed(stream[i:i + 5]))
    assert events == [b'data: {"a":1}\n\n', b'data: {"b":2}\n\n', b'event: x\ndata: {"c":3}\n\n']
    assert splitter.rest() == b""


def test_sse_splitter_understands_crlf_even_split_between_chunks():
    splitter = SSESplitter()
    events = splitter.feed(b"data: one\r\n\r") + splitter.feed(b"\ndata: two\r\n\r\n")
    assert [parse_event(e) for e in events] == [(None, b"one"), (None, b"two")]


def test_sse_splitter_keeps_a_cut_off_event_as_rest():
    splitter = SSESplitter()
    assert splitter.feed(b'data: {"a":1}\n\ndata: {"par') == [b'data: {"a":1}\n\n']
    assert splitter.rest() == b'data: {"par'


def test_parse_event_reads_name_and_multiline_data_and_skips_comments():
    assert parse_event(b": keepalive\nevent: message_stop\ndata: {\ndata: }\n\n") == (b"message_stop", b"{\n}")


def _openai_event(chunk):
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


USAGE_CHUNK = {"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
TEXT_CHUNK = {"id": "c", "choices": [{"index": 0, "delta": {"content": "hello world"}}], "usage": None}


def test_passthrough_keeps_bytes_and_drops_the_usage_chunk_the_client_did_not_ask_for():
    relay = ChatPassthrough("deepseek", client_wants_usage=False)
    raw = _openai_event(TEXT_CHUNK)
    assert relay.event(raw) == raw
    assert relay.event(_openai_event(USAGE_CHUNK)) == b""
    assert relay.event(b"data: [DONE]\n\n") == b"data: [DONE]\n\n"
    assert (relay.usage.input_tokens, relay.usage.output_tokens) == (3, 4)
    assert relay.complete


def test_passthrough_ends_with_one_done_whether_or_not_the_upstream_sent_it():
    relay = ChatPassthrough("deepseek", client_wants_usage=False)
    relay.event(b"data: [DONE]\n\n")
    assert relay.finish() == b""
    assert ChatPassthrough("deepseek", client_wants_usage=False).finish() == b"data: [DONE]\n\n"


def test_passthrough_forwards_the_usage_chunk_when_the_client_asked():
    relay = ChatPassthrough("deepseek", client_wants_usage=True)
    raw = _openai_event(USAGE_CHUNK)
    assert relay.event(raw) == raw


def test_passthrough_estimates_output_from_the_text_when_no_usage_came():
    relay = ChatPassthrough("deepseek", client_wants_usage=False)
    relay.event(_openai_event(TEXT_CHUNK))
    assert not relay.usage.reported
    estimate = relay.estimated_usage(12)
    assert (estimate.input_tokens, estimate.output_tokens) == (12, tokens.count_text("hello world"))


@pytest.mark.parametrize("raw", [b'data: {"usage": {broken\n\n', b"data: <html>\n\n"])
def test_passthrough_refuses_malformed_events(raw):
    relay = ChatPassthrough("deepseek", client_wants_usage=False)
    with pytest.raises(ApiError) as caught:
        relay.event(raw)
    assert caught.value.status == 502


def test_usage_inside_the_last_choice_is_read_too():
    relay = ChatPassthrough("moonshot", client_wants_usage=False)
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop",
                                     "usage": {"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13}}]}
    raw = _openai_event(chunk)
    assert relay.event(raw) == raw
    assert (relay.usage.input_tokens, relay.usage.output_tokens) == (5, 8)


def test_anthropic_passthrough_reads_usage_from_start_and_delta():
    relay = MessagesPassthrough("anthropic")
    start = b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":9,"output_tokens":1}}}\n\n'
    delta = b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":6}}\n\n'
    assert relay.event(start) == start
    assert relay.event(delta) == delta
    relay.event(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert (relay.usage.input_tokens, relay.usage.output_tokens) == (9, 6)
    assert relay.complete


def test_translating_relay_emits_anthropic_sse_and_an_anthropic_error_event():
    relay = ChatToMessagesRelay("deepseek", "deepseek-v3.2", 5)
    out = relay.event(_openai_event(TEXT_CHUNK))
    assert out.startswith(b"event: message_start\n")
    assert b"event: content_block_delta" in out
    error = relay.error_event(ApiError(502, "gone"))
    assert error.startswith(b"event: error\n")
    assert orjson.loads(error.split(b"data: ", 1)[1]) == {
        "type": "error", "error": {"type": "api_error", "message": "gone"}}


def test_sanitise_removes_the_provider_key_and_anything_key_shaped():
    message = ("Incorrect API key provided: sk-live-abcdef123456. Also sama_1234abcd-0000-4000-8000-000000000000, "
               "Bearer tok123 and the-secret-value")
    clean = sanitise(message, "the-secret-value")
    for secret in ("sk-live-abcdef123456", "sama_1234abcd", "tok123", "the-secret-value"):
        assert secret not in clean
    assert "Incorrect API key provided" in clean


def test_upstream_errors_map_to_gateway_statuses():
    body = orjson.dumps({"error": {"message": "slow down"}})
    limited = status_error("deepseek", 429, body, None)
    assert (limited.status, limited.error_class) == (429, "upstream_http_429")
    assert "slow down" in limited.message
    failed = status_error("deepseek", 500, b"<html>oops</html>", None)
    assert (failed.status, failed.message) == (500, "provider deepseek answered 500: <html>oops</html>")
    assert status_error("deepseek", 302, b"", None).status == 502
    assert upstream_message(orjson.dumps({"type": "error", "error": {"type": "x", "message": "anthropic says"}})) == "anthropic says"


def test_error_bodies_have_the_openai_and_anthropic_shapes():
    error = ApiError(404, "no such model", code="model_not_found", param="model")
    assert orjson.loads(openai_error_body(error)) == {"error": {
        "message": "no such model", "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}
    assert orjson.loads(anthropic_error_body(error)) == {
        "type": "error", "error": {"type": "not_found_error", "message": "no such model"}}


@pytest.mark.parametrize("check, body, param", [
    (validate.check_chat, {"messages": []}, "messages"),
    (validate.check_chat, {"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    (validate.check_chat, {"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    (validate.check_chat, {"messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
    (validate.check_chat, {"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    (validate.check_chat, {"messages": [{"role": "user", "content": "x"}], "max_tokens": True}, "max_tokens"),
    (validate.check_chat, {"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    (validate.check_chat, {"messages": [{"role": "user", "content": "x"}], "stop": ["a"] * 5}, "stop"),
    (validate.check_chat, {"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    (validate.check_chat, {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}, "tools[0]"),
    (validate.check_completion, {"prompt": ["a", "b"]}, "prompt"),
    (validate.check_completion, {"prompt": "a", "echo": True}, "echo"),
    (validate.check_embedding, {"input": ""}, "input"),
    (validate.check_embedding, {"input": [1, "a"]}, "input"),
    (validate.check_messages, {"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
    (validate.check_messages, {"messages": [{"role": "user"}]}, "messages.0.content"),
    (validate.check_messages, {"messages": [{"role": "user", "content": "x"}], "temperature": 1.5}, "temperature"),
])
def test_bad_fields_are_named_in_a_400(check, body, param):
    with pytest.raises(ApiError) as caught:
        check(body)
    assert caught.value.status == 400
    assert caught.value.param == param


def test_valid_bodies_pass_the_checks():
    validate.check_chat({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
                         "max_tokens": 5, "temperature": 0.5, "stop": ["x"], "stream": True,
                         "stream_options": {"include_usage": True}})
    validate.check_completion({"prompt": "x", "max_tokens": 3})
    validate.check_embedding({"input": [[1, 2], [3]]})
    validate.check_messages({"messages": [{"role": "user", "content": "x"}], "max_tokens": 5,
                             "system": [{"type": "text", "text": "s"}]})


def test_prompt_estimates_count_text_images_and_tools():
    text_only = tokens.estimate_chat_prompt({"messages": [{"role": "user", "content": "hello there"}]})
    assert text_only == 3 + tokens.MESSAGE_OVERHEAD + tokens.count_text("hello there")
    with_image = tokens.estimate_chat_prompt({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "hello there"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100000}},
    ]}]})
    assert with_image == text_only + tokens.IMAGE_TOKENS
    anthropic = tokens.estimate_messages_prompt({"system": "be brief", "messages": [
        {"role": "user", "content": "hello there"}]})
    assert anthropic == text_only + tokens.count_text("be brief")
    assert tokens.estimate_embedding_input(["ab", "cd"]) == tokens.count_text("ab") + tokens.count_text("cd")
    assert tokens.estimate_embedding_input([5, 6, 7]) == 3


TOOL_TURN = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}


def _tool_result(content):
    return {"messages": [TOOL_TURN, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": content}]}]}


@pytest.mark.parametrize("body, param", [
    (_tool_result([1]), "messages.1.content.0.content.0"),
    (_tool_result(5), "messages.1.content.0.content"),
    (_tool_result({}), "messages.1.content.0.content"),
    (_tool_result([{"type": "text", "text": 7}]), "messages.1.content.0.content.0.text"),
    (_tool_result([{"type": "tool_use"}]), "messages.1.content.0.content.0"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": ["x"]}]}]}, "messages.0.content.0.text"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": 1}}]}]},
     "messages.0.content.0.source.media_type"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": None}}]}]},
     "messages.0.content.0.source.url"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}]}]},
     "messages.0.content.0.input"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": 3, "name": "f", "input": {}}]}]},
     "messages.0.content.0.id"),
    ({"messages": [{"role": "user", "content": "x"}], "system": [{"type": "image"}]}, "system.0.type"),
    ({"messages": [{"role": "user", "content": "x"}], "stop_sequences": "END"}, "stop_sequences"),
    ({"messages": [{"role": "user", "content": "x"}], "stop_sequences": [1]}, "stop_sequences"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2.5}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "top_k": -1}, "top_k"),
    ({"messages": [{"role": "user", "content": "x"}], "stream": 1}, "stream"),
    ({"messages": [{"role": "user", "content": "x"}], "metadata": {"user_id": 5}}, "metadata.user_id"),
    ({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "tool"}}, "tool_choice.name"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"name": "f", "input_schema": []}]},
     "tools.0.input_schema"),
])
def test_anthropic_fields_of_the_wrong_type_are_400_naming_the_field(body, param):
    with pytest.raises(ApiError) as caught:
        validate.check_messages(body)
    assert caught.value.status == 400 and caught.value.param == param
    assert caught.value.message.startswith(param + ":")


USER = {"role": "user", "content": "x"}


@pytest.mark.parametrize("body, param", [
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": 1}]}]},
     "messages[0].content[0].text"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": 1}}]}]},
     "messages[0].tool_calls[0].function.name"),
    ({"messages": [{"role": "assistant", "tool_calls": "all"}]}, "messages[0].tool_calls"),
    ({"messages": [{"role": "user", "content": "x", "name": 5}]}, "messages[0].name"),
    ({"messages": [USER], "stop": ["a", 1]}, "stop"),
    ({"messages": [USER], "stop": 5}, "stop"),
    ({"messages": [USER], "seed": 2**64}, "seed"),
    ({"messages": [USER], "user": 5}, "user"),
    ({"messages": [USER], "presence_penalty": "x"}, "presence_penalty"),
    ({"messages": [USER], "tool_choice": {"type": "function", "function": {"name": 5}}}, "tool_choice"),
    ({"messages": [USER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"messages": [USER], "parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ({"messages": [USER], "response_format": "json"}, "response_format"),
])
def test_openai_fields_of_the_wrong_type_are_400_naming_the_field(body, param):
    with pytest.raises(ApiError) as caught:
        validate.check_chat(body)
    assert caught.value.status == 400 and caught.value.param == param


@pytest.mark.parametrize("check, body, param", [
    (validate.check_completion, {"prompt": "x", "echo": "no"}, "echo"),
    (validate.check_completion, {"prompt": "x", "stop": "END", "n": 0}, "n"),
    (validate.check_embedding, {"input": [True, 2]}, "input"),
    (validate.check_embedding, {"input": [[-1]]}, "input"),
    (validate.check_embedding, {"input": "x", "user": []}, "user"),
])
def test_completion_and_embedding_fields_are_checked_too(check, body, param):
    with pytest.raises(ApiError) as caught:
        check(body)
    assert caught.value.status == 400 and caught.value.param == param


def test_documented_anthropic_bodies_still_pass():
    validate.check_messages({
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "ok", "is_error": False},
                {"type": "tool_result", "tool_use_id": "t1",
                 "content": [{"type": "text", "text": "ok"}, {"type": "image", "source": {"type": "file", "file_id": "f"}}]},
                {"type": "tool_result", "tool_use_id": "t1"},
                {"type": "web_search_result_location", "anything": [1]},
            ]},
        ],
        "system": "s", "stop_sequences": ["END"], "max_tokens": 10, "temperature": 1, "top_k": 5,
        "tools": [{"name": "f", "input_schema": {"type": "object"}}, {"type": "web_search_20250305", "name": "web"}],
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u"}, "thinking": {"type": "enabled", "budget_tokens": 1024},
    })
