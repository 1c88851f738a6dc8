"""The simulated provider (``api = "simulated"``): both wire formats, streams, tools, usage,
its header, and that nothing reaches it unless demo mode or a providers file asks for it."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest
import requests
from gwapi_helpers import ONE_P, PRICES, new_customer

from fixtures.gateway import SHIPPED_PROVIDERS, start_gateway
from gateway.catalog import parse_catalog
from gateway.proxy.sse import is_content_event

SIMULATED = "x-samalink-simulated"
WEATHER_TOOL_OPENAI = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"]}}}
WEATHER_TOOL_ANTHROPIC = {"name": "get_weather", "input_schema": WEATHER_TOOL_OPENAI["function"]["parameters"]}


@pytest.fixture(scope="module")
def demo_gateway(gateway_env):
    """A gateway in demo mode on the session's database, answering at once."""
    env = {name: value for name, value in gateway_env.items() if not name.endswith("_API_KEY")}
    env.update(PROVIDERS_FILE=str(SHIPPED_PROVIDERS), SAMALINK_DEMO="1",
               SIMULATED_TOKENS_PER_SECOND="0", SIMULATED_FIRST_TOKEN_MS="0")
    handle = start_gateway(env)
    yield handle
    handle.stop()


def _unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex}"


def test_chat_answers_say_they_are_simulated_and_are_charged_by_their_usage(demo_gateway):
    customer = new_customer(demo_gateway)
    raw = customer.openai().chat.completions.with_raw_response.create(
        model="deepseek-v3.2", messages=[{"role": "user", "content": _unique("What is SAMALink?")}])
    assert raw.headers[SIMULATED] == "true"
    answer = raw.parse()
    assert answer.choices[0].message.content.startswith("(Simulated answer")
    assert answer.choices[0].finish_reason == "stop"
    usage = answer.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    account = customer.settled(1)
    input_price, output_price = PRICES["deepseek-v3.2"]
    spent = usage.prompt_tokens * input_price + usage.completion_tokens * output_price
    assert account["balance_micro_p"] == 1000 * ONE_P - spent
    [row] = customer.log()
    assert (row["model"], row["status"], row["cost_micro_p"]) == ("deepseek-v3.2", 200, spent)


def test_the_same_prompt_gives_the_same_usage_and_then_reads_from_the_cache(demo_gateway):
    customer = new_customer(demo_gateway)
    messages = [{"role": "system", "content": "You are terse. " * 40},
                {"role": "user", "content": _unique("Repeat me")}]
    client = customer.openai()
    first = client.chat.completions.create(model="gpt-5.2", messages=messages)
    second = client.chat.completions.create(model="gpt-5.2", messages=messages)
    assert first.usage.prompt_tokens == second.usage.prompt_tokens
    assert first.usage.completion_tokens == second.usage.completion_tokens
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert 0 < second.usage.prompt_tokens_details.cached_tokens <= second.usage.prompt_tokens
    # A conversation that grows keeps its earlier turns cached.
    longer = [*messages, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]
    third = client.chat.completions.create(model="gpt-5.2", messages=longer)
    assert third.usage.prompt_tokens_details.cached_tokens == second.usage.prompt_tokens_details.cached_tokens
    customer.settled(3)
    costs = [row["cost_micro_p"] for row in reversed(customer.log())]
    assert costs[1] < costs[0], "the cached repeat costs less"


def test_messages_on_the_anthropic_wire_with_cache_reads(demo_gateway):
    customer = new_customer(demo_gateway)
    body = {"model": "claude-haiku-4.5", "max_tokens": 200, "system": "Be brief. " * 40,
            "messages": [{"role": "user", "content": _unique("Hello")}]}
    client = customer.anthropic()
    raw = client.messages.with_raw_response.create(**body)
    assert raw.headers[SIMULATED] == "true"
    first = raw.parse()
    assert first.content[0].text.startswith("(Simulated answer") and first.stop_reason == "end_turn"
    second = client.messages.create(**body)
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens > 0
    assert second.usage.input_tokens + second.usage.cache_read_input_tokens == first.usage.input_tokens


@pytest.mark.parametrize("model", ["deepseek-v3.2", "claude-haiku-4.5"])
def test_openai_streams_arrive_in_pieces_with_usage(demo_gateway, model):
    customer = new_customer(demo_gateway)
    stream = customer.openai().chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": _unique("Stream please")}])
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 5 and "".join(pieces).startswith("(Simulated answer")
    assert chunks[-1].usage.completion_tokens > 0
    account = customer.settled(1)
    assert account["balance_micro_p"] < 1000 * ONE_P


@pytest.mark.parametrize("model", ["claude-haiku-4.5", "deepseek-v3.2"])
def test_anthropic_streams_arrive_in_pieces_with_usage(demo_gateway, model):
    customer = new_customer(demo_gateway)
    with customer.anthropic().messages.stream(
            model=model, max_tokens=300, messages=[{"role": "user", "content": _unique("Stream please")}]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 5 and "".join(pieces).startswith("(Simulated answer")
    assert final.usage.output_tokens > 0


def test_openai_tool_calls_when_tools_are_offered_then_text_after_the_result(demo_gateway):
    customer = new_customer(demo_gateway)
    client = customer.openai()
    messages = [{"role": "user", "content": _unique("Weather in Riyadh?")}]
    answer = client.chat.completions.create(model="deepseek-v3.2", messages=messages, tools=[WEATHER_TOOL_OPENAI])
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == {"city": "simulated", "unit": "celsius"}
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "31 C"}]
    after = client.chat.completions.create(model="deepseek-v3.2", messages=messages, tools=[WEATHER_TOOL_OPENAI])
    assert after.choices[0].finish_reason == "stop" and not after.choices[0].message.tool_calls
    none = client.chat.completions.create(model="deepseek-v3.2", messages=messages[:1], tools=[WEATHER_TOOL_OPENAI],
                                          tool_choice="none")
    assert none.choices[0].finish_reason == "stop"


def test_streamed_tool_calls_on_both_wires(demo_gateway):
    customer = new_customer(demo_gateway)
    stream = customer.openai().chat.completions.create(
        model="claude-haiku-4.5", stream=True, tools=[WEATHER_TOOL_OPENAI],
        messages=[{"role": "user", "content": _unique("Weather?")}])
    arguments = "".join(
        call.function.arguments or "" for chunk in stream if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or ())
    assert orjson.loads(arguments) == {"city": "simulated", "unit": "celsius"}
    with customer.anthropic().messages.stream(
            model="deepseek-v3.2", max_tokens=300, tools=[WEATHER_TOOL_ANTHROPIC],
            messages=[{"role": "user", "content": _unique("Weather?")}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    [tool] = [block for block in final.content if block.type == "tool_use"]
    assert (tool.name, tool.input) == ("get_weather", {"city": "simulated", "unit": "celsius"})


def test_embeddings_completions_and_token_counts(demo_gateway):
    customer = new_customer(demo_gateway)
    client = customer.openai()
    vectors = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta", "alpha"])
    assert [len(item.embedding) for item in vectors.data] == [256, 256, 256]
    assert vectors.data[0].embedding == vectors.data[2].embedding != vectors.data[1].embedding
    assert vectors.usage.prompt_tokens == 3
    completion = client.completions.with_raw_response.create(model="deepseek-v3.2", prompt="Once", max_tokens=4)
    assert completion.headers[SIMULATED] == "true"
    assert completion.parse().choices[0].finish_reason == "length"
    assert 0 < completion.parse().usage.completion_tokens <= 4
    counted = customer.anthropic().messages.with_raw_response.count_tokens(
        model="claude-haiku-4.5", messages=[{"role": "user", "content": "hello"}])
    assert counted.headers[SIMULATED] == "true" and counted.parse().input_tokens > 0


def test_the_demo_catalogue_says_every_provider_is_configured(demo_gateway):
    catalog = demo_gateway.internal("GET", "/catalog").json()
    assert all(provider["configured"] for provider in catalog["providers"])
    assert all(provider["api"] == "simulated" for provider in catalog["providers"])


def test_streams_arrive_at_the_configured_pace_and_ttft_is_the_first_content(gateway_env):
    """The role chunk comes at once, the text after the first-token wait: TTFT is the wait."""
    env = {name: value for name, value in gateway_env.items() if not name.endswith("_API_KEY")}
    env.update(PROVIDERS_FILE=str(SHIPPED_PROVIDERS), SAMALINK_DEMO="1",
               SIMULATED_TOKENS_PER_SECOND="400", SIMULATED_FIRST_TOKEN_MS="700")
    handle = start_gateway(env)
    try:
        customer = new_customer(handle)
        started = time.monotonic()
        stream = customer.openai().chat.completions.create(
            model="deepseek-v3.2", stream=True, messages=[{"role": "user", "content": _unique("Slowly")}])
        list(stream)
        took = time.monotonic() - started
        assert took >= 0.7
        customer.settled(1)
        [row] = customer.log()
        assert 650 <= row["ttft_ms"] <= row["latency_ms"]
    finally:
        handle.stop()


def test_only_content_events_count_as_the_first_token():
    role_only = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    text = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
    tool = b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}\n\n'
    assert not is_content_event(role_only) and is_content_event(text) and is_content_event(tool)
    assert not is_content_event(b'event: message_start\ndata: {"type":"message_start"}\n\n')
    assert is_content_event(b'event: content_block_delta\ndata: {"type":"content_block_delta"}\n\n')
    assert not is_content_event(b"data: [DONE]\n\n")


def test_without_demo_mode_no_model_reaches_the_simulated_provider(gateway_env):
    env = {name: value for name, value in gateway_env.items() if not name.endswith("_API_KEY")}
    env.update(PROVIDERS_FILE=str(SHIPPED_PROVIDERS), SAMALINK_DEMO="0")
    handle = start_gateway(env)
    try:
        customer = new_customer(handle)
        for path, body in [
            ("/v1/chat/completions", {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]}),
            ("/v1/messages", {"model": "claude-haiku-4.5", "max_tokens": 10,
                              "messages": [{"role": "user", "content": "hi"}]}),
            ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}),
        ]:
            answer = requests.post(handle.url + path, json=body, timeout=30,
                                   headers={"Authorization": f"Bearer {customer.key}"})
            assert answer.status_code == 503, answer.text
            assert SIMULATED not in answer.headers
            assert "not configured" in answer.text
        catalog = handle.internal("GET", "/catalog").json()
        assert not any(provider["api"] == "simulated" for provider in catalog["providers"])
    finally:
        handle.stop()


def test_a_providers_file_may_name_the_simulated_provider_without_demo_mode(gateway_env, tmp_path):
    providers = tmp_path / "providers.toml"
    providers.write_text('[providers.sim]\ndisplay_name = "Simulated"\napi = "simulated"\n\n'
                         '[[models]]\nid = "sim-chat"\nprovider = "sim"\nupstream = "sim-chat"\n'
                         'input_price = 100\noutput_price = 200\n')
    env = {name: value for name, value in gateway_env.items() if not name.endswith("_API_KEY")}
    env.update(PROVIDERS_FILE=str(providers), SIMULATED_TOKENS_PER_SECOND="0", SIMULATED_FIRST_TOKEN_MS="0")
    env.pop("SAMALINK_DEMO", None)
    handle = start_gateway(env)
    try:
        customer = new_customer(handle)
        raw = customer.openai().chat.completions.with_raw_response.create(
            model="sim-chat", messages=[{"role": "user", "content": "hi"}])
        assert raw.headers[SIMULATED] == "true"
        assert raw.parse().choices[0].message.content.startswith("(Simulated answer")
    finally:
        handle.stop()


def test_a_simulated_provider_needs_no_url_or_key_but_other_apis_do():
    catalog = parse_catalog({"providers": {"sim": {"api": "simulated"}},
                             "models": [{"id": "m", "provider": "sim", "upstream": "m"}]})
    assert catalog.providers["sim"].api == "simulated"
    from gateway.config import ConfigError

    with pytest.raises(ConfigError, match="base_url is missing"):
        parse_catalog({"providers": {"p": {"api": "openai"}},
                       "models": [{"id": "m", "provider": "p", "upstream": "m"}]})
    with pytest.raises(ConfigError, match="api must be one of openai, anthropic, simulated"):
        parse_catalog({"providers": {"p": {"api": "grpc", "base_url": "x", "api_key_env": "K"}},
                       "models": [{"id": "m", "provider": "p", "upstream": "m"}]})


def test_a_demo_account_out_of_credit_is_told_that_this_server_takes_no_payments(demo_gateway):
    customer = new_customer(demo_gateway, balance_micro_p=0)
    answer = requests.post(f"{demo_gateway.url}/v1/chat/completions", timeout=30,
                           headers={"Authorization": f"Bearer {customer.key}"},
                           json={"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 402
    message = answer.json()["error"]["message"]
    assert "demo server takes no payments" in message and "Top up" not in message
