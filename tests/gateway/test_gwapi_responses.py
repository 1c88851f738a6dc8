"""POST /v1/responses through the gateway with the official ``openai`` SDK: passed through to
OpenAI (gpt-5.2), translated to chat completions (deepseek-v3.2) and to Messages
(claude-sonnet-4.5), streamed and not; tools, reasoning, cached usage billed exactly, and
the errors a Responses client sees."""

from __future__ import annotations

import tomllib
import uuid

import openai
import orjson
import pytest
import requests
from gwapi_helpers import ONE_P, new_customer
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from fixtures.upstream import PROVIDERS_TOML, REPLY_TEXT, THINKING_TEXT, TOOL_ARGUMENTS
from gateway.accounting.pricing import TokenUsage, cost_micro_p
from gateway.catalog import parse_catalog
from gateway.config import ConfigError

CATALOG = parse_catalog(tomllib.loads(PROVIDERS_TOML.read_text()))
MODELS = ("gpt-5.2", "deepseek-v3.2", "claude-sonnet-4.5")
# Where each model's request goes upstream.
UPSTREAM_PATHS = {"gpt-5.2": "/openai/responses", "deepseek-v3.2": "/deepseek/chat/completions",
                  "claude-sonnet-4.5": "/anthropic/v1/messages"}
START = 1000 * ONE_P
WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
def customer(gateway, fake_upstream):
    return new_customer(gateway, START)


def marker() -> str:
    return f"m-{uuid.uuid4().hex}"


def create(client: openai.OpenAI, how: str, **request):
    """The final response of one request: ``create``, ``create(stream=True)`` or ``stream``."""
    if how == "create":
        return client.responses.create(**request), []
    if how == "create-stream":
        events = list(client.responses.create(stream=True, **request))
        assert events[0].type == "response.created" and events[-1].type == "response.completed", \
            [event.type for event in events]
        return events[-1].response, events
    with client.responses.stream(**request) as stream:
        events = list(stream)
        return stream.get_final_response(), events


def charged(model: str, fresh: int, output: int, cached: int = 0, reasoning: int = 0) -> int:
    return cost_micro_p(CATALOG.models[model], TokenUsage(input_tokens=fresh, cache_read_tokens=cached,
                                                          output_tokens=output, reasoning_tokens=reasoning))


HOWS = ("create", "create-stream", "stream")


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("model", MODELS)
def test_a_text_answer_is_served_and_billed(gateway, fake_upstream, customer, model, how):
    mark = marker()
    response, events = create(customer.openai(), how, model=model, input=f"hello {mark}",
                              instructions="Be brief.", max_output_tokens=500)
    assert response.output_text == REPLY_TEXT
    assert response.model == model
    assert response.status == "completed"
    if events:
        deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
        assert deltas == REPLY_TEXT
    sent = fake_upstream.last(mark)
    assert sent.path == UPSTREAM_PATHS[model]
    assert response.usage.input_tokens == 11 and response.usage.output_tokens == 7
    customer.settled(1)
    expected = charged(model, 11, 7)
    assert customer.ledger_sum() == START - expected
    assert round(response.usage.model_extra["cost"] * ONE_P) == expected
    log = customer.log()[0]
    assert (log["endpoint"], log["model"], log["stream"]) == ("/v1/responses", model, how != "create")


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("model", MODELS)
def test_a_function_tool_round_trip(gateway, fake_upstream, customer, model, how):
    client = customer.openai()
    mark = marker()
    first, _ = create(client, how, model=model, tools=[WEATHER_TOOL],
                      input=[{"role": "user", "content": [{"type": "input_text", "text": f"weather? [[tool]] {mark}"}]}])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert (call.name, orjson.loads(call.arguments)) == ("get_weather", orjson.loads(TOOL_ARGUMENTS))
    second, _ = create(client, how, model=model, tools=[WEATHER_TOOL], input=[
        {"role": "user", "content": [{"type": "input_text", "text": f"weather? [[tool]] {mark}"}]},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
    ])
    assert second.output_text == REPLY_TEXT
    sent = fake_upstream.last(mark)
    text = sent.raw.decode()
    assert "sunny, 21 C" in text and call.call_id in text
    if model == "deepseek-v3.2":
        assert [m["role"] for m in sent.body["messages"]] == ["user", "assistant", "tool"]
        assert sent.body["messages"][1]["tool_calls"][0]["id"] == call.call_id
    elif model == "claude-sonnet-4.5":
        assert [m["role"] for m in sent.body["messages"]] == ["user", "assistant", "user"]
        assert sent.body["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": call.call_id,
                                                          "content": "sunny, 21 C"}


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("model", MODELS)
def test_reasoning_reaches_the_client_as_a_reasoning_item(gateway, fake_upstream, customer, model, how):
    response, events = create(customer.openai(), how, model=model, input=f"hello [[think]] {marker()}",
                              reasoning={"effort": "medium", "summary": "auto"})
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "message"]
    assert response.output[0].summary[0].text == THINKING_TEXT
    assert response.output_text == REPLY_TEXT
    if events:
        summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
        assert summary == THINKING_TEXT


def test_reasoning_effort_goes_upstream_where_the_model_has_it(gateway, fake_upstream, customer):
    client = customer.openai()
    for model in MODELS:
        mark = marker()
        client.responses.create(model=model, input=mark, reasoning={"effort": "high"})
        sent = fake_upstream.last(mark).body
        if model == "gpt-5.2":
            assert sent["reasoning"] == {"effort": "high"}
        elif model == "claude-sonnet-4.5":
            assert sent["thinking"] == {"type": "enabled", "budget_tokens": 16384}
        else:
            assert "reasoning_effort" not in sent and "reasoning" not in sent


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("model", MODELS)
def test_cached_usage_is_billed_exactly(gateway, fake_upstream, customer, model, how):
    # Fresh 1,000, cache read 9,000 (Anthropic: also a 500-token cache write), 300 output of which 100 reasoning.
    write = 500 if model.startswith("claude") else 0
    reasoning = 0 if model.startswith("claude") else 100
    response, _ = create(customer.openai(), how, model=model,
                         input=f"cached [[usage:1000:300:9000:{write}:0:{reasoning}]] {marker()}")
    usage = response.usage
    assert usage.input_tokens == 1000 + 9000 + write
    assert usage.input_tokens_details.cached_tokens == 9000
    assert usage.output_tokens == 300
    assert usage.output_tokens_details.reasoning_tokens == reasoning
    customer.settled(1)
    model_ = CATALOG.models[model]
    expected = cost_micro_p(model_, TokenUsage(input_tokens=1000, cache_read_tokens=9000, cache_write_tokens=write,
                                               output_tokens=300, reasoning_tokens=reasoning))
    assert customer.ledger_sum() == START - expected
    assert round(usage.model_extra["cost"] * ONE_P) == expected
    log = customer.log()[0]
    assert (log["cache_read_tokens"], log["cost_micro_p"]) == (9000, expected)


@pytest.mark.parametrize("model", MODELS)
def test_web_search_is_omitted_and_named_in_a_header(gateway, fake_upstream, customer, model):
    mark = marker()
    raw = customer.openai().responses.with_raw_response.create(
        model=model, input=mark, tools=[WEATHER_TOOL, {"type": "web_search"}])
    assert raw.headers["x-samalink-omitted-tools"] == "web_search"
    assert raw.parse().output_text == REPLY_TEXT
    assert b"web_search" not in fake_upstream.last(mark).raw


@pytest.mark.parametrize("model", MODELS)
def test_forcing_an_omitted_tool_is_a_400(gateway, fake_upstream, customer, model):
    with pytest.raises(openai.BadRequestError) as caught:
        customer.openai().responses.create(model=model, input="hi", tools=[{"type": "web_search"}],
                                           tool_choice={"type": "web_search"})
    assert caught.value.body["param"] == "tool_choice"


def test_previous_response_id_is_refused_by_name(gateway, fake_upstream, customer):
    with pytest.raises(openai.BadRequestError) as caught:
        customer.openai().responses.create(model="gpt-5.2", input="again", previous_response_id="resp_123")
    error = caught.value.body
    assert (error["type"], error["param"]) == ("invalid_request_error", "previous_response_id")
    assert "previous_response_id" in error["message"]
    customer.settled(1)
    assert customer.ledger_sum() == START


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_upstream_400_passes_through_with_its_status(gateway, fake_upstream, customer, model, stream):
    with pytest.raises(openai.BadRequestError) as caught:
        customer.openai().responses.create(model=model, input="too long [[error:400]]", stream=stream)
    error = caught.value.body
    assert caught.value.status_code == 400
    assert "upstream says no (400)" in error["message"] and "sk-" not in error["message"]
    customer.settled(1)
    assert customer.ledger_sum() == START
    assert customer.log()[0]["status"] == 400


def test_an_upstream_401_is_a_502_that_does_not_blame_the_customer(gateway, fake_upstream, customer):
    with pytest.raises(openai.APIStatusError) as caught:
        customer.openai().responses.create(model="gpt-5.2", input="[[error:401]]")
    assert caught.value.status_code == 502
    assert "refused the gateway's credentials" in caught.value.body["message"]


def test_store_false_reaches_openai_and_nothing_is_stored(gateway, fake_upstream, customer):
    mark = marker()
    response = customer.openai().responses.create(model="gpt-5.2", input=mark, store=True)
    assert fake_upstream.last(mark).body["store"] is False
    assert response.store is False


def test_insufficient_balance_is_a_402_in_the_responses_error_shape(gateway, fake_upstream):
    poor = new_customer(gateway, 10)
    answer = requests.post(f"{gateway.url}/v1/responses", headers={"Authorization": f"Bearer {poor.key}"},
                           json={"model": "claude-sonnet-4.5", "input": "hi"}, timeout=30)
    assert answer.status_code == 402
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "insufficient_balance"
    assert "smaller max_output_tokens" in error["message"]


def test_the_output_bound_is_lowered_to_what_the_balance_pays_for(gateway, fake_upstream):
    small = new_customer(gateway, 500 * ONE_P)
    mark = marker()
    raw = small.openai().responses.with_raw_response.create(model="claude-sonnet-4.5", input=mark)
    bound = int(raw.headers["x-samalink-max-tokens"])
    assert 1024 <= bound < CATALOG.models["claude-sonnet-4.5"].max_output_tokens
    assert fake_upstream.last(mark).body["max_tokens"] == bound


SPEC = OpenAPI.from_file_path(str(PROVIDERS_TOML.parent / "openapi.yaml"))


@pytest.mark.parametrize("model", MODELS)
def test_answers_and_errors_are_as_openapi_yaml_documents_them(gateway, fake_upstream, customer, model):
    headers = {"Authorization": f"Bearer {customer.key}"}
    for body in ({"model": model, "input": "hi [[think]]"}, {"model": model, "input": []},
                 {"model": model, "input": "hi", "previous_response_id": "resp_1"}):
        answer = requests.post(f"{gateway.url}/v1/responses", json=body, headers=headers, timeout=30)
        assert answer.status_code == (200 if body["input"] == "hi [[think]]" else 400)
        SPEC.validate_response(RequestsOpenAPIRequest(answer.request), RequestsOpenAPIResponse(answer))
    counted = requests.post(f"{gateway.url}/v1/messages/count_tokens", headers=headers, timeout=30,
                            json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert counted.status_code == 200
    SPEC.validate_response(RequestsOpenAPIRequest(counted.request), RequestsOpenAPIResponse(counted))


# --- the providers file's flag ---------------------------------------------------------------


def _providers(**openai_fields) -> dict:
    data = tomllib.loads(PROVIDERS_TOML.read_text())
    data["providers"]["openai"] = dict(data["providers"]["openai"], **openai_fields)
    return data


def test_only_openai_has_the_responses_api_in_the_shipped_catalogue():
    assert [name for name, provider in CATALOG.providers.items() if provider.responses] == ["openai"]


@pytest.mark.parametrize("fields, message", [
    ({"responses": "yes"}, "providers.openai.responses must be true or false"),
    ({"responses": True, "api": "anthropic"}, "providers.openai.responses is only for providers whose api is openai"),
])
def test_a_wrong_responses_flag_stops_the_gateway_from_starting(fields, message):
    with pytest.raises(ConfigError, match=message):
        parse_catalog(_providers(**fields))


def test_without_the_flag_openai_is_served_through_chat_completions():
    catalog = parse_catalog(_providers(responses=False))
    assert catalog.providers["openai"].responses is False


# --- usage is checked, not trusted; failures mid-stream -----------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_usage_beyond_the_output_bound_is_clamped_and_flagged(gateway, fake_upstream, customer, model):
    response = customer.openai().responses.create(model=model, max_output_tokens=100,
                                                  input=f"[[usage:-50:999999]] {marker()}")
    # Passed through, the provider's own counts stay as it sent them (as on chat); the cost is what was charged.
    if model != "gpt-5.2":
        assert response.usage.output_tokens == 100 and response.usage.input_tokens == 0
    assert round(response.usage.model_extra["cost"] * ONE_P) == charged(model, 0, 100)
    customer.settled(1)
    assert customer.ledger_sum() == START - charged(model, 0, 100)
    assert set(customer.log()[0]["flags"]) >= {"negative_input", "output_above_bound"}


@pytest.mark.parametrize("model", MODELS)
def test_a_stream_without_usage_is_billed_an_estimate(gateway, fake_upstream, customer, model):
    response, _ = create(customer.openai(), "stream", model=model, input=f"[[nousage]] {marker()}")
    assert response.output_text == REPLY_TEXT
    customer.settled(1)
    log = customer.log()[0]
    assert log["estimated"] is True and log["output_tokens"] > 0 and log["cost_micro_p"] > 0
    assert customer.ledger_sum() == START - log["cost_micro_p"]


@pytest.mark.parametrize("model", MODELS)
def test_a_stream_cut_off_ends_with_an_error_event_and_costs_nothing(gateway, fake_upstream, customer, model):
    answer = requests.post(f"{gateway.url}/v1/responses", headers={"Authorization": f"Bearer {customer.key}"},
                           json={"model": model, "input": "[[cut]]", "stream": True}, timeout=30, stream=True)
    assert answer.status_code == 200
    events = [orjson.loads(line[6:]) for line in answer.iter_lines() if line.startswith(b"data: ")]
    errors = [event for event in events if event["type"] == "error"]
    assert [error["code"] for error in errors] == ["upstream_broken_stream"]
    assert events[-1]["type"] in ("error", "response.failed")
    assert "response.completed" not in [event["type"] for event in events]
    with pytest.raises(openai.APIError):
        list(customer.openai().responses.create(model=model, input="[[cut]]", stream=True))
    customer.settled(2)
    assert customer.ledger_sum() == START


# --- every priced chat model -------------------------------------------------------------------

CONFIGURED_CHAT_MODELS = [model.id for model in CATALOG.models.values()
                          if model.kind == "chat" and model.priced and model.provider != "minimax"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("model", CONFIGURED_CHAT_MODELS)
def test_every_priced_chat_model_answers_and_is_billed_exactly(gateway, fake_upstream, customer, model, stream):
    response, _ = create(customer.openai(), "create-stream" if stream else "create", model=model,
                         input=f"hello [[usage:100:40:300]] {marker()}")
    assert response.output_text == REPLY_TEXT
    customer.settled(1)
    expected = charged(model, 100, 40, cached=300)
    assert customer.ledger_sum() == START - expected
    assert round(response.usage.model_extra["cost"] * ONE_P) == expected


def test_a_provider_without_a_key_is_a_503_in_the_responses_shape(gateway, fake_upstream, customer):
    with pytest.raises(openai.APIStatusError) as caught:
        customer.openai().responses.create(model="minimax-m2.5", input="hi")
    assert caught.value.status_code == 503
    assert caught.value.body["code"] == "provider_not_configured"
