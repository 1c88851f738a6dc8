"""The public API through the official OpenAI and Anthropic SDKs, against a real gateway process.

Every endpoint, streamed and not, for a model on each wire API, with the exact
charge checked against the balance once the batch writer has settled it.
"""

from __future__ import annotations

import base64

import orjson
import pytest
import requests
from gwapi_helpers import MODELS_BY_WIRE, cost, new_customer

from fixtures.upstream import (
    COMPLETION_TOKENS,
    EMBEDDING_TOKENS_PER_INPUT,
    PROMPT_TOKENS,
    REPLY_TEXT,
    TOOL_ARGUMENTS,
    UPSTREAM_KEYS,
)

WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def customer(gateway, fake_upstream):
    return new_customer(gateway)


def _assert_charged(customer, model: str, requests_made: int = 1) -> dict:
    before = 1000 * 1_000_000
    account = customer.settled(requests_made)
    assert account["balance_micro_p"] == before - requests_made * cost(model)
    assert customer.ledger_sum() == account["balance_micro_p"]
    return account


def _assert_upstream_call(fake_upstream, wire: str, marker: str) -> dict:
    """The recorded upstream request for this test; checks path and provider key headers."""
    seen = fake_upstream.last(marker)
    if wire == "anthropic":
        assert seen.path == "/anthropic/v1/messages"
        assert seen.headers["x-api-key"] == UPSTREAM_KEYS["ANTHROPIC_API_KEY"]
        assert seen.headers["anthropic-version"] == "2023-06-01"
        assert seen.body["model"] == "claude-haiku-4-5"
    else:
        assert seen.path == "/deepseek/chat/completions"
        assert seen.headers["Authorization"] == f"Bearer {UPSTREAM_KEYS['DEEPSEEK_API_KEY']}"
        assert seen.body["model"] == "deepseek-chat"
    return seen.body


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_chat_completions_whole_answer(customer, fake_upstream, wire):
    model = MODELS_BY_WIRE[wire]
    marker = f"chat-whole-{wire}-{customer.account_id}"
    answer = customer.openai().chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "Be kind."}, {"role": "user", "content": marker}],
        max_tokens=50,
    )
    assert answer.choices[0].message.content == REPLY_TEXT
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == model
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    sent = _assert_upstream_call(fake_upstream, wire, marker)
    if wire == "anthropic":
        assert sent["system"] == "Be kind."
        assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": marker}]}]
        assert sent["max_tokens"] == 50
    else:
        assert sent["messages"][0] == {"role": "system", "content": "Be kind."}
        assert "stream_options" not in sent
    _assert_charged(customer, model)
    row = customer.log()[0]
    assert (row["model"], row["endpoint"], row["stream"], row["status"]) == (model, "/v1/chat/completions", False, 200)
    assert (row["input_tokens"], row["output_tokens"], row["cost_micro_p"]) == (PROMPT_TOKENS, COMPLETION_TOKENS, cost(model))
    assert row["estimated"] is False


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
@pytest.mark.parametrize("include_usage", [True, False])
def test_chat_completions_stream(customer, fake_upstream, wire, include_usage):
    model = MODELS_BY_WIRE[wire]
    marker = f"chat-stream-{wire}-{include_usage}-{customer.account_id}"
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = customer.openai().chat.completions.create(
        model=model, messages=[{"role": "user", "content": marker}], stream=True, **extra
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY_TEXT
    assert {c.model for c in chunks} == {model}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1]
        assert (usage_chunks[0].usage.prompt_tokens, usage_chunks[0].usage.completion_tokens) == (
            PROMPT_TOKENS, COMPLETION_TOKENS)
    else:
        # The gateway asked the upstream for usage; the client, which did not, sees none.
        assert usage_chunks == []
    sent = _assert_upstream_call(fake_upstream, wire, marker)
    assert sent["stream"] is True
    if wire == "openai":
        assert sent["stream_options"] == {"include_usage": True}
    _assert_charged(customer, model)
    row = customer.log()[0]
    assert row["stream"] is True and row["status"] == 200
    assert row["ttft_ms"] is not None and row["ttft_ms"] <= row["latency_ms"]


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_messages_whole_answer(customer, fake_upstream, wire):
    model = MODELS_BY_WIRE[wire]
    marker = f"messages-whole-{wire}-{customer.account_id}"
    answer = customer.anthropic().messages.create(
        model=model, max_tokens=64, system="Answer briefly.", messages=[{"role": "user", "content": marker}],
        stop_sequences=["STOP"], extra_body={"temperature": 0.5},
    )
    assert answer.type == "message"
    assert answer.model == model
    assert answer.content[0].type == "text" and answer.content[0].text == REPLY_TEXT
    assert answer.stop_reason == "end_turn"
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    sent = _assert_upstream_call(fake_upstream, wire, marker)
    if wire == "openai":
        assert sent["messages"] == [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": marker}]
        assert sent["max_tokens"] == 64
        assert sent["stop"] == ["STOP"]
        assert sent["temperature"] == 0.5
    else:
        assert sent["system"] == "Answer briefly."
        assert sent["stop_sequences"] == ["STOP"]
    _assert_charged(customer, model)
    assert customer.log()[0]["endpoint"] == "/v1/messages"


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_messages_stream(customer, fake_upstream, wire):
    model = MODELS_BY_WIRE[wire]
    marker = f"messages-stream-{wire}-{customer.account_id}"
    with customer.anthropic().messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": marker}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == REPLY_TEXT
    assert final.model == model
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    sent = _assert_upstream_call(fake_upstream, wire, marker)
    if wire == "openai":
        assert sent["stream_options"] == {"include_usage": True}
    _assert_charged(customer, model)
    assert customer.log()[0]["stream"] is True


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_completions_are_served_through_chat(customer, fake_upstream, wire, stream):
    model = MODELS_BY_WIRE[wire]
    marker = f"completion-{wire}-{stream}-{customer.account_id}"
    client = customer.openai()
    if stream:
        chunks = list(client.completions.create(model=model, prompt=marker, max_tokens=20, stream=True))
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        assert all(c.object == "text_completion" for c in chunks)
    else:
        answer = client.completions.create(model=model, prompt=marker, max_tokens=20)
        text = answer.choices[0].text
        assert answer.object == "text_completion"
        assert answer.usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
    assert text == REPLY_TEXT
    sent = _assert_upstream_call(fake_upstream, wire, marker)
    if wire == "anthropic":
        assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": marker}]}]
        assert sent["max_tokens"] == 20
    else:
        assert sent["messages"] == [{"role": "user", "content": marker}]
    _assert_charged(customer, model)
    assert customer.log()[0]["endpoint"] == "/v1/completions"


def test_embeddings(customer, fake_upstream):
    marker = f"embed-{customer.account_id}"
    answer = customer.openai().embeddings.create(model="text-embedding-3-small", input=[marker, "second"])
    assert len(answer.data) == 2
    assert answer.data[0].embedding == [0.25, -0.5, 0.125]
    seen = fake_upstream.last(marker)
    assert seen.path == "/openai/embeddings"
    assert seen.body["model"] == "text-embedding-3-small"
    tokens = 2 * EMBEDDING_TOKENS_PER_INPUT
    account = customer.settled(1)
    assert account["balance_micro_p"] == 1000 * 1_000_000 - cost("text-embedding-3-small", tokens, 0)


def test_models_lists_the_catalogue_including_unpriced_models(customer):
    models = customer.openai().models.list()
    ids = [m.id for m in models.data]
    assert ids[:2] == ["deepseek-v3.2", "deepseek-r1"]
    assert {"claude-haiku-4.5", "gpt-5.2", "gpt-5.2-pro", "text-embedding-3-small"} <= set(ids)
    owners = {m.id: m.owned_by for m in models.data}
    assert owners["claude-haiku-4.5"] == "Anthropic"
    assert customer.openai().models.retrieve("glm-5").owned_by == "Zhipu"


def test_anthropic_clients_may_use_x_api_key_on_openai_routes(customer, gateway):
    answer = requests.post(
        f"{gateway.url}/v1/chat/completions", headers={"x-api-key": customer.key},
        json={"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "x-api-key route"}]}, timeout=30,
    )
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == REPLY_TEXT


# --- tools and images, both directions -------------------------------------------------


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_tool_calls_on_chat_completions(customer, fake_upstream, wire):
    model = MODELS_BY_WIRE[wire]
    marker = f"[[tool]] chat-tools-{wire}-{customer.account_id}"
    client = customer.openai()
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": marker}], tools=[WEATHER_TOOL_OPENAI], tool_choice="required",
    )
    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == orjson.loads(TOOL_ARGUMENTS)
    sent = fake_upstream.last(marker).body
    if wire == "anthropic":
        assert sent["tools"] == [WEATHER_TOOL_ANTHROPIC]
        assert sent["tool_choice"] == {"type": "any"}
    else:
        assert sent["tools"] == [WEATHER_TOOL_OPENAI]

    # The second turn: the tool's result goes back, in the upstream's own format.
    follow_up = f"chat-tools-result-{wire}-{customer.account_id}"
    client.chat.completions.create(model=model, tools=[WEATHER_TOOL_OPENAI], messages=[
        {"role": "user", "content": marker},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees"},
        {"role": "user", "content": follow_up},
    ])
    sent = fake_upstream.last(follow_up).body
    if wire == "anthropic":
        assert sent["messages"][1] == {"role": "assistant", "content": [
            {"type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Paris"}}]}
        assert sent["messages"][2] == {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": "18 degrees"},
            {"type": "text", "text": follow_up}]}
    else:
        assert sent["messages"][2] == {"role": "tool", "tool_call_id": call.id, "content": "18 degrees"}


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_tool_calls_streamed_on_chat_completions(customer, wire):
    model = MODELS_BY_WIRE[wire]
    stream = customer.openai().chat.completions.create(
        model=model, messages=[{"role": "user", "content": f"[[tool]] stream {wire}"}],
        tools=[WEATHER_TOOL_OPENAI], stream=True,
    )
    name = ""
    arguments = ""
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        for call in chunk.choices[0].delta.tool_calls or ():
            name += call.function.name or "" if call.function else ""
            arguments += call.function.arguments or "" if call.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather"
    assert orjson.loads(arguments) == {"city": "Paris"}
    assert finish == "tool_calls"


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_on_messages(customer, fake_upstream, wire, stream):
    model = MODELS_BY_WIRE[wire]
    marker = f"[[tool]] messages-tools-{wire}-{stream}-{customer.account_id}"
    client = customer.anthropic()
    request = dict(model=model, max_tokens=100, tools=[WEATHER_TOOL_ANTHROPIC],
                   tool_choice={"type": "tool", "name": "get_weather"},
                   messages=[{"role": "user", "content": marker}])
    if stream:
        with client.messages.stream(**request) as events:
            final = events.get_final_message()
    else:
        final = client.messages.create(**request)
    block = final.content[-1]
    assert final.stop_reason == "tool_use"
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.input == {"city": "Paris"}
    sent = fake_upstream.last(marker).body
    if wire == "openai":
        assert sent["tools"] == [WEATHER_TOOL_OPENAI]
        assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    else:
        assert sent["tools"] == [WEATHER_TOOL_ANTHROPIC]


def test_images_reach_anthropic_as_image_blocks(customer, fake_upstream):
    png = base64.b64encode(b"\x89PNG fake image bytes").decode()
    marker = f"image-openai-to-anthropic-{customer.account_id}"
    customer.openai().chat.completions.create(model="claude-haiku-4.5", messages=[{"role": "user", "content": [
        {"type": "text", "text": marker},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/photo.jpg"}},
    ]}])
    content = fake_upstream.last(marker).body["messages"][0]["content"]
    assert content[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}
    assert content[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/photo.jpg"}}


def test_images_reach_openai_providers_as_image_urls(customer, fake_upstream):
    marker = f"image-anthropic-to-openai-{customer.account_id}"
    customer.anthropic().messages.create(model="deepseek-v3.2", max_tokens=10, messages=[{"role": "user", "content": [
        {"type": "text", "text": marker},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}},
    ]}])
    content = fake_upstream.last(marker).body["messages"][0]["content"]
    assert content[1] == {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}}


def test_a_large_prompt_is_served(customer, fake_upstream):
    marker = f"large-{customer.account_id}"
    prompt = marker + " " + "lorem ipsum dolor sit amet " * 40000
    answer = customer.openai().chat.completions.create(
        model="deepseek-v3.2", messages=[{"role": "user", "content": prompt}])
    assert answer.choices[0].message.content == REPLY_TEXT
    assert fake_upstream.last(marker).body["messages"][0]["content"] == prompt


@pytest.mark.parametrize("path, model, terminator", [
    ("/v1/chat/completions", "deepseek-v3.2", b"data: [DONE]"),
    ("/v1/chat/completions", "claude-haiku-4.5", b"data: [DONE]"),
    ("/v1/completions", "deepseek-v3.2", b"data: [DONE]"),
    ("/v1/completions", "claude-haiku-4.5", b"data: [DONE]"),
    ("/v1/messages", "deepseek-v3.2", b"event: message_stop"),
    ("/v1/messages", "claude-haiku-4.5", b"event: message_stop"),
])
def test_every_stream_ends_exactly_once(customer, gateway, path, model, terminator):
    body = {"model": model, "stream": True, "max_tokens": 30}
    if path == "/v1/completions":
        body["prompt"] = "end once"
    else:
        body["messages"] = [{"role": "user", "content": "end once"}]
    answer = requests.post(f"{gateway.url}{path}", json=body, headers={"Authorization": f"Bearer {customer.key}"},
                           timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert answer.content.count(terminator) == 1
    last_event = answer.content.strip().split(b"\n\n")[-1]
    assert last_event.startswith(terminator)
