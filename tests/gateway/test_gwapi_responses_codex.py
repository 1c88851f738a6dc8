"""What the Codex CLI sends to /v1/responses, replayed through the gateway to OpenAI (pass-through),
DeepSeek (chat completions) and Claude (Messages), streamed and whole: an answer, a clean
upstream body and the exact charge."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import orjson
import pytest
import requests
from gwapi_helpers import ONE_P, cost, new_customer

from fixtures.upstream import REPLY_TEXT

FIXTURES = Path(__file__).parent / "fixtures" / "codex"
# Written to the client's shape, with every kind of item the translations must handle.
SHAPED = sorted(FIXTURES.glob("codex_*.json"))
# Recorded from the real CLI (its path is relative to the configured base URL, …/v1).
RECORDED = sorted(FIXTURES.glob("recorded_*.json"))
# Tools OpenAI bills apart from tokens: left out even on pass-through.
BILLED_APART = ("web_search", "file_search", "code_interpreter", "image_generation")
REPLAY_MODELS = ("gpt-5.2", "deepseek-v3.2", "claude-sonnet-4.5")
PRICES = {"claude-sonnet-4.5": (3000, 15000)}
CHAT_FIELDS = {"model", "messages", "max_tokens", "stream", "stream_options", "tools", "tool_choice",
               "parallel_tool_calls"}
MESSAGES_FIELDS = {"model", "messages", "max_tokens", "system", "stream", "tools", "tool_choice", "thinking"}


@pytest.fixture
def customer(gateway, fake_upstream):
    return new_customer(gateway)


def _replay(gateway, customer, fixture: dict, model: str, stream: bool, mark: str) -> requests.Response:
    body = copy.deepcopy(fixture["body"])
    body["model"] = model
    body["stream"] = stream
    first_user = next(item for item in body["input"] if item.get("role") == "user")
    first_user["content"].append({"type": "input_text", "text": mark})
    headers = dict(fixture["headers"], Authorization=f"Bearer {customer.key}")
    path = fixture["path"] if fixture["path"].startswith("/v1/") else "/v1" + fixture["path"]
    return requests.post(gateway.url + path, data=orjson.dumps(body), headers=headers, timeout=30, stream=stream)


def _answer_text(answer: requests.Response, stream: bool) -> str:
    if not stream:
        response = answer.json()
        assert response["object"] == "response" and response["status"] == "completed"
        return "".join(part["text"] for item in response["output"] if item["type"] == "message"
                       for part in item["content"])
    events = []
    for line in answer.iter_lines():
        if line.startswith(b"data: "):
            events.append(orjson.loads(line[6:]))
    kinds = [event["type"] for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    assert [event["sequence_number"] for event in events] == sorted(event["sequence_number"] for event in events)
    assert events[-1]["response"]["usage"]["input_tokens"] > 0
    return "".join(event["delta"] for event in events if event["type"] == "response.output_text.delta")


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("model", REPLAY_MODELS)
@pytest.mark.parametrize("path", SHAPED, ids=lambda p: p.stem)
def test_codex_requests_get_an_answer_and_are_billed(gateway, fake_upstream, customer, path, model, stream):
    fixture = orjson.loads(path.read_bytes())
    mark = f"replay-{uuid.uuid4().hex}"
    answer = _replay(gateway, customer, fixture, model, stream, mark)
    assert answer.status_code == 200, answer.text
    passthrough = model == "gpt-5.2"
    assert answer.headers["x-samalink-omitted-tools"] == ("web_search" if passthrough else "apply_patch, web_search")
    assert _answer_text(answer, stream) == REPLY_TEXT

    sent = fake_upstream.last(mark)
    original = fixture["body"]
    function_names = [tool["name"] for tool in original["tools"] if tool["type"] == "function"]
    if passthrough:
        assert sent.path == "/openai/responses"
        assert [tool.get("name") for tool in sent.body["tools"]] == function_names[:4] + ["apply_patch", "view_image"]
        for name in ("instructions", "include", "prompt_cache_key", "reasoning", "text", "parallel_tool_calls"):
            assert sent.body[name] == original[name]
        assert sent.body["store"] is False
        assert len(sent.body["input"]) == len(original["input"])
    elif model == "deepseek-v3.2":
        assert set(sent.body) <= CHAT_FIELDS
        assert [tool["function"]["name"] for tool in sent.body["tools"]] == function_names
        roles = [message["role"] for message in sent.body["messages"]]
        assert roles[:5] == ["system", "system", "user", "user", "user"]
        assert sent.body["messages"][0]["content"] == original["instructions"]
        if "tool_turn" in path.stem:
            assert roles[5:] == ["assistant", "tool"]
            assert sent.body["messages"][5]["tool_calls"][0]["function"]["name"] == "shell_command"
        assert b"encrypted" not in sent.raw and b"gAAAA" not in sent.raw
    else:
        assert set(sent.body) <= MESSAGES_FIELDS
        assert sent.body["system"].startswith(original["instructions"])
        assert "<permissions instructions>" in sent.body["system"]
        assert sent.body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
        assert sent.body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
        assert [tool["name"] for tool in sent.body["tools"]] == function_names
        if "tool_turn" in path.stem:
            assert [m["role"] for m in sent.body["messages"]] == ["user", "assistant", "user"]
            # OpenAI's encrypted reasoning means nothing to Claude: left out, not sent as a thinking block.
            assert [block["type"] for block in sent.body["messages"][1]["content"]] == ["tool_use"]
            assert b"gAAAA" not in sent.raw

    customer.settled(1)
    input_price, output_price = PRICES.get(model, (None, None))
    expected = 11 * input_price + 7 * output_price if input_price else cost(model)
    assert customer.ledger_sum() == 1000 * ONE_P - expected


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("model", REPLAY_MODELS)
@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_recorded_codex_requests_get_an_answer_and_are_billed(gateway, fake_upstream, customer, path, model, stream):
    """A body exactly as the CLI sent it, to every kind of upstream: a change in what the client
    sends shows up here first."""
    fixture = orjson.loads(path.read_bytes())
    mark = f"replay-{uuid.uuid4().hex}"
    answer = _replay(gateway, customer, fixture, model, stream, mark)
    assert answer.status_code == 200, answer.text
    assert _answer_text(answer, stream) == REPLY_TEXT
    tools = fixture["body"]["tools"]
    functions = [tool["name"] for tool in tools if tool["type"] == "function"]
    omitted = answer.headers["x-samalink-omitted-tools"].split(", ")
    sent = fake_upstream.last(mark)
    if model == "gpt-5.2":
        assert sent.path == "/openai/responses"
        assert omitted == [tool["type"] for tool in tools if tool["type"].startswith(BILLED_APART)]
        assert len(sent.body["tools"]) == len(tools) - len(omitted)
        assert sent.body["store"] is False and sent.body["prompt_cache_key"] == fixture["body"]["prompt_cache_key"]
    else:
        assert "web_search" in omitted and all(name not in omitted for name in functions)
        names = ([tool["function"]["name"] for tool in sent.body["tools"]] if model == "deepseek-v3.2"
                 else [tool["name"] for tool in sent.body["tools"]])
        assert names == functions
    customer.settled(1)
    input_price, output_price = PRICES.get(model, (None, None))
    expected = 11 * input_price + 7 * output_price if input_price else cost(model)
    assert customer.ledger_sum() == 1000 * ONE_P - expected


def test_claude_thinking_goes_back_to_claude_on_the_next_turn(gateway, fake_upstream, customer):
    client = customer.openai()
    mark = f"m-{uuid.uuid4().hex}"
    first = client.responses.create(model="claude-sonnet-4.5", input=f"hi [[think]] {mark}",
                                    reasoning={"effort": "low", "summary": "auto"},
                                    include=["reasoning.encrypted_content"], store=False)
    reasoning = first.output[0]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content
    client.responses.create(model="claude-sonnet-4.5", reasoning={"effort": "low"}, input=[
        {"role": "user", "content": f"hi [[think]] {mark}"},
        reasoning.model_dump(exclude_none=True),
        {"role": "assistant", "content": [{"type": "output_text", "text": first.output_text}]},
        {"role": "user", "content": f"again {mark}-2"},
    ])
    sent = fake_upstream.last(f"{mark}-2").body
    assert sent["messages"][1]["content"][0] == {"type": "thinking", "thinking": reasoning.summary[0].text,
                                                 "signature": "c2ln"}
