"""Unit tests of the OpenAI ⇄ Anthropic translators: requests, answers and stream events."""

from __future__ import annotations

import orjson
import pytest

from gateway.catalog import Model
from gateway.errors import ApiError
from gateway.proxy.translate import requests as treq
from gateway.proxy.translate import responses as tresp
from gateway.proxy.translate import streams

CLAUDE = Model("claude-haiku-4.5", "anthropic", "claude-haiku-4-5", "chat", "International Models",
               800, 4000, 64000, 200000)
DEEPSEEK = Model("deepseek-v3.2", "deepseek", "deepseek-chat", "chat", "Chinese Models", 280, 420, 8192, 128000)
GPT = Model("gpt-5.2", "openai", "gpt-5.2", "chat", "International Models", 1750, 14000, 32768, 400000)

PNG_DATA = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_chat_request_becomes_messages_request_with_system_images_tools_and_results():
    body = {
        "model": "claude-haiku-4.5",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these pictures?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_DATA}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ]},
            {"role": "assistant", "content": "Let me check the weather.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "stop": "END",
        "temperature": 1.5,
        "top_p": 0.9,
        "stream": True,
        "user": "customer-7",
    }
    out = treq.chat_to_messages_request(body, CLAUDE)

    assert out["model"] == "claude-haiku-4-5"
    assert out["system"] == "Be brief.\n\nAnswer in French."
    assert out["max_tokens"] == CLAUDE.max_output_tokens
    assert out["stop_sequences"] == ["END"]
    assert out["temperature"] == 1.0  # Anthropic's ceiling
    assert out["top_p"] == 0.9
    assert out["stream"] is True
    assert out["metadata"] == {"user_id": "customer-7"}
    assert out["tools"] == [{
        "name": "get_weather", "description": "Weather for a city",
        "input_schema": WEATHER_TOOL["function"]["parameters"],
    }]
    assert out["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}

    user, assistant, results = out["messages"]
    assert user["role"] == "user"
    assert user["content"] == [
        {"type": "text", "text": "What is in these pictures?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_DATA}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    assert assistant == {"role": "assistant", "content": [
        {"type": "text", "text": "Let me check the weather."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Lyon"}},
    ]}
    # Both tool results and the next user text merge into one user turn, results first.
    assert results == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "rain"},
        {"type": "text", "text": "Thanks"},
    ]}


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"type": "auto"}),
    ("none", {"type": "none"}),
    ("required", {"type": "any"}),
])
def test_tool_choice_words_map_to_anthropic_types(choice, expected):
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL], "tool_choice": choice}
    assert treq.chat_to_messages_request(body, CLAUDE)["tool_choice"] == expected


def test_a_chat_of_only_system_messages_is_refused_for_anthropic_models():
    with pytest.raises(ApiError) as caught:
        treq.chat_to_messages_request({"messages": [{"role": "system", "content": "rules"}]}, CLAUDE)
    assert caught.value.param == "messages"


def test_max_completion_tokens_wins_over_the_models_default():
    body = {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 77}
    assert treq.chat_to_messages_request(body, CLAUDE)["max_tokens"] == 77


@pytest.mark.parametrize("url", ["data:text/plain;base64,aGk=", "ftp://example.com/x.png", "data:image/png,raw"])
def test_unusable_image_urls_are_refused_with_the_field_named(url):
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
    with pytest.raises(ApiError) as caught:
        treq.chat_to_messages_request(body, CLAUDE)
    assert caught.value.status == 400
    assert caught.value.param == "messages[0].content[0].image_url.url"


def test_tool_call_arguments_that_are_not_json_are_refused():
    body = {"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]},
    ]}
    with pytest.raises(ApiError) as caught:
        treq.chat_to_messages_request(body, CLAUDE)
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


def test_messages_request_becomes_chat_request_with_tools_results_and_images():
    body = {
        "model": "deepseek-v3.2",
        "system": [{"type": "text", "text": "You are terse."}],
        "max_tokens": 300,
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.3,
        "stream": True,
        "metadata": {"user_id": "u-1"},
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "cold"}]},
                {"type": "text", "text": "And tomorrow?"},
            ]},
        ],
    }
    out = treq.messages_to_chat_request(body, DEEPSEEK, "deepseek")

    assert out["model"] == "deepseek-chat"
    assert out["max_tokens"] == 300
    assert out["stop"] == ["\n\nHuman:"]
    assert out["temperature"] == 0.3
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}
    assert "user" not in out and "metadata" not in out  # the client's user id is for Anthropic only
    assert out["tool_choice"] == "required"
    assert out["parallel_tool_calls"] is False
    assert out["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}}]
    assert out["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [
            {"type": "text", "text": "Look:"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
        ]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [{
            "id": "toolu_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "cold"},
        {"role": "user", "content": "And tomorrow?"},
    ]


def test_openais_own_models_get_max_completion_tokens():
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    out = treq.messages_to_chat_request(body, GPT, "openai")
    assert out["max_completion_tokens"] == 10
    assert "max_tokens" not in out


def test_messages_request_without_max_tokens_uses_the_models_limit():
    out = treq.messages_to_chat_request({"messages": [{"role": "user", "content": "hi"}]}, DEEPSEEK, "deepseek")
    assert out["max_tokens"] == DEEPSEEK.max_output_tokens


def test_completion_request_becomes_one_user_message():
    out = treq.completion_to_chat_request(
        {"model": "deepseek-v3.2", "prompt": ["Once upon"], "stop": ["."], "temperature": 0.2}, "deepseek"
    )
    assert out["messages"] == [{"role": "user", "content": "Once upon"}]
    assert out["max_tokens"] == treq.COMPLETION_DEFAULT_MAX_TOKENS
    assert out["stop"] == ["."]
    assert out["temperature"] == 0.2


def test_round_trip_chat_to_messages_and_back_keeps_the_conversation():
    chat = {
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "r"},
        ],
        "max_tokens": 5,
    }
    anthropic = treq.chat_to_messages_request(chat, CLAUDE)
    back = treq.messages_to_chat_request(dict(anthropic, model="x"), DEEPSEEK, "deepseek")
    assert back["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"},
    ]
    assert back["max_tokens"] == 5


# --- whole answers ------------------------------------------------------------


def test_anthropic_answer_becomes_chat_completion_with_tool_calls_and_usage():
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Rome"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 20, "output_tokens": 9, "cache_read_input_tokens": 5},
    }
    out = tresp.messages_to_chat_response(message, "claude-haiku-4.5")
    assert out["object"] == "chat.completion"
    assert out["model"] == "claude-haiku-4.5"
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me look."
    assert choice["message"]["tool_calls"] == [{
        "id": "toolu_9", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
    }]
    assert out["usage"] == {"prompt_tokens": 25, "completion_tokens": 9, "total_tokens": 34,
                            "prompt_tokens_details": {"cached_tokens": 5}}


@pytest.mark.parametrize("stop_reason, finish", [
    ("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("stop_sequence", "stop"),
])
def test_stop_reasons_map_to_finish_reasons(stop_reason, finish):
    message = {"id": "m", "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason,
               "usage": {"input_tokens": 1, "output_tokens": 1}}
    assert tresp.messages_to_chat_response(message, "m")["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize("finish, stop_reason", [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"),
])
def test_finish_reasons_map_to_stop_reasons(finish, stop_reason):
    completion = {"id": "c", "choices": [{"message": {"content": "x"}, "finish_reason": finish}]}
    assert tresp.chat_to_messages_response(completion, "m")["stop_reason"] == stop_reason


def test_chat_answer_becomes_anthropic_message_with_tool_use():
    completion = {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Calling.",
            "tool_calls": [{"id": "call_5", "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Bern"}'}}],
        }}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
    }
    out = tresp.chat_to_messages_response(completion, "deepseek-v3.2")
    assert out["type"] == "message"
    assert out["model"] == "deepseek-v3.2"
    assert out["content"] == [
        {"type": "text", "text": "Calling."},
        {"type": "tool_use", "id": "call_5", "name": "get_weather", "input": {"city": "Bern"}},
    ]
    assert out["stop_reason"] == "tool_use"
    assert out["usage"] == {"input_tokens": 30, "output_tokens": 12,
                            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def test_chat_answer_becomes_text_completion():
    completion = {"id": "x", "created": 5, "choices": [{"index": 0, "message": {"content": "tail"},
                                                         "finish_reason": "length"}],
                  "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    out = tresp.chat_to_completion_response(completion, "deepseek-v3.2")
    assert out["object"] == "text_completion"
    assert out["choices"] == [{"text": "tail", "index": 0, "logprobs": None, "finish_reason": "length"}]
    assert out["usage"]["total_tokens"] == 3


# --- streams ---------------------------------------------------------------------


ANTHROPIC_EVENTS = [
    {"type": "message_start", "message": {"id": "msg_s", "usage": {"input_tokens": 14, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1,
     "content_block": {"type": "tool_use", "id": "toolu_s", "name": "get_weather", "input": {}}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city":'}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 21}},
    {"type": "message_stop"},
]


def test_anthropic_stream_becomes_chat_chunks_with_tool_calls_and_usage():
    translator = streams.MessagesToChatStream("claude-haiku-4.5", include_usage=True)
    chunks = [chunk for event in ANTHROPIC_EVENTS for chunk in translator.feed(event)]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Hi"}
    assert deltas[2] == {"tool_calls": [{"index": 0, "id": "toolu_s", "type": "function",
                                         "function": {"name": "get_weather", "arguments": ""}}]}
    arguments = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[3:5])
    assert orjson.loads(arguments) == {"city": "Oslo"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 14, "completion_tokens": 21, "total_tokens": 35,
                                   "prompt_tokens_details": {"cached_tokens": 0}}
    assert translator.usage.reported
    assert all(c["id"] == "chatcmpl-msg_s" and c["model"] == "claude-haiku-4.5" for c in chunks)


def test_anthropic_stream_without_include_usage_sends_no_usage_chunk():
    translator = streams.MessagesToChatStream("m", include_usage=False)
    chunks = [chunk for event in ANTHROPIC_EVENTS for chunk in translator.feed(event)]
    assert all(c["choices"] for c in chunks)
    assert (translator.usage.input_tokens, translator.usage.output_tokens) == (14, 21)


def test_anthropic_error_event_raises_a_502():
    translator = streams.MessagesToChatStream("m", include_usage=False)
    with pytest.raises(ApiError) as caught:
        translator.feed({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert caught.value.status == 502
    assert "Overloaded" in caught.value.message


def _chat_chunk(delta=None, finish=None, usage=None, choices=True):
    chunk = {"id": "chatcmpl-z", "object": "chat.completion.chunk"}
    chunk["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []
    if usage:
        chunk["usage"] = usage
    return chunk


def test_chat_stream_becomes_anthropic_events_with_text_then_tool_use():
    translator = streams.ChatToMessagesStream("deepseek-v3.2", estimated_input_tokens=12)
    upstream = [
        _chat_chunk({"role": "assistant", "content": ""}),
        _chat_chunk({"content": "Let "}),
        _chat_chunk({"content": "me see."}),
        _chat_chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                     "function": {"name": "get_weather", "arguments": ""}}]}),
        _chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Rome"}'}}]}),
        _chat_chunk({}, finish="tool_calls"),
        _chat_chunk(choices=False, usage={"prompt_tokens": 40, "completion_tokens": 15, "total_tokens": 55}),
    ]
    events = [event for chunk in upstream for event in translator.feed(chunk)] + translator.finish()
    types = [e["type"] for e in events]
    assert types == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    assert events[0]["message"]["usage"] == {"input_tokens": 12, "output_tokens": 0}
    assert events[0]["message"]["model"] == "deepseek-v3.2"
    assert events[1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert [e["delta"]["text"] for e in events[2:4]] == ["Let ", "me see."]
    assert events[5]["index"] == 1
    assert events[5]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}}
    assert events[6]["delta"] == {"type": "input_json_delta", "partial_json": '{"city": "Rome"}'}
    assert events[7] == {"type": "content_block_stop", "index": 1}
    assert events[8]["delta"]["stop_reason"] == "tool_use"
    assert events[8]["usage"] == {"input_tokens": 40, "output_tokens": 15,
                                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def test_chat_stream_with_two_parallel_tool_calls_opens_two_blocks():
    translator = streams.ChatToMessagesStream("m", 1)
    upstream = [
        _chat_chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}]}),
        _chat_chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]}),
        _chat_chunk({}, finish="tool_calls"),
    ]
    events = [event for chunk in upstream for event in translator.feed(chunk)] + translator.finish()
    starts = [e["content_block"]["id"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["a", "b"]
    assert [e["index"] for e in events if e["type"] == "content_block_stop"] == [0, 1]


def test_chat_stream_becomes_completion_chunks():
    translator = streams.ChatToCompletionStream("deepseek-v3.2")
    out = []
    for chunk in [
        _chat_chunk({"role": "assistant", "content": ""}),
        _chat_chunk({"content": "abc"}),
        _chat_chunk({}, finish="stop"),
        _chat_chunk(choices=False, usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}),
    ]:
        out.extend(translator.feed(chunk))
    assert [c["choices"][0]["text"] for c in out if c["choices"]] == ["abc", ""]
    assert out[1]["choices"][0]["finish_reason"] == "stop"
    assert out[-1]["usage"]["total_tokens"] == 3
    assert all(c["object"] == "text_completion" for c in out)


def test_sse_bytes_are_what_clients_parse():
    assert streams.openai_sse({"a": 1}) == b'data: {"a":1}\n\n'
    assert streams.anthropic_sse({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
