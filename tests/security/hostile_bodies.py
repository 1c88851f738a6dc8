"""Hypothesis strategies for hostile request bodies: a rich valid body per endpoint with one or
more fields (anywhere in it, or known top-level fields) replaced by arbitrary JSON values."""

from __future__ import annotations

import copy

from hypothesis import strategies as st

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
JSON_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
                | st.sampled_from(["", "text", "image", "tool_result", "function", "auto", "END"]))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(["type", "text", "content", "url", "name", "id"])
                                             | st.text(max_size=4), inner, max_size=3), max_leaves=6)

CHAT = {
    "model": "deepseek-v3.2", "max_tokens": 20, "temperature": 0.5, "top_p": 0.9, "stop": ["END"], "n": 1,
    "user": "u", "seed": 7, "stream": False, "stream_options": {"include_usage": True},
    "parallel_tool_calls": True, "tool_choice": "auto",
    "tools": [{"type": "function", "function": {"name": "f", "description": "d",
                                                "parameters": {"type": "object", "properties": {}}}}],
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": [{"type": "text", "text": "in French"}]},
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
        {"role": "assistant", "content": "ok", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        {"role": "user", "content": "thanks"},
    ],
}
MESSAGES = {
    "model": "deepseek-v3.2", "max_tokens": 20, "temperature": 0.5, "top_p": 0.9, "top_k": 5,
    "stop_sequences": ["END"], "stream": False, "metadata": {"user_id": "u"},
    "system": [{"type": "text", "text": "be brief"}],
    "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object", "properties": {}}}],
    "tool_choice": {"type": "auto"},
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                  "data": PNG}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"},
                                          {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": [{"type": "text", "text": "done"}]},
                                     {"type": "text", "text": "thanks"}]},
    ],
}
COMPLETION = {"model": "deepseek-v3.2", "prompt": "Say hi", "max_tokens": 20, "temperature": 0.5,
              "stop": "END", "n": 1, "stream": False, "user": "u", "presence_penalty": 0}
EMBEDDING = {"model": "text-embedding-3-small", "input": ["hello", "world"], "encoding_format": "float",
             "dimensions": 64, "user": "u"}
BASES = {"/v1/chat/completions": CHAT, "/v1/messages": MESSAGES, "/v1/completions": COMPLETION,
         "/v1/embeddings": EMBEDDING}
EXTRA_FIELDS = ["stop", "stop_sequences", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
                "n", "stream", "stream_options", "tools", "tool_choice", "system", "metadata", "user", "seed",
                "echo", "suffix", "input", "prompt", "messages", "thinking", "response_format", "logit_bias"]


def paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside ``value`` (dict keys and list indexes), ``model`` left out."""
    found = []
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return found
    for key, child in items:
        if prefix == () and key == "model":
            continue
        found.append(prefix + (key,))
        found.extend(paths(child, prefix + (key,)))
    return found


def replaced(body: dict, path: tuple, value: object) -> dict:
    """A deep copy of ``body`` with the value at ``path`` replaced."""
    out = copy.deepcopy(body)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


@st.composite
def hostile_body(draw, endpoint: str, models: list[str]) -> dict:
    """A body for ``endpoint`` with up to three fields replaced by arbitrary JSON."""
    body = copy.deepcopy(BASES[endpoint])
    body["model"] = draw(st.sampled_from(models))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(body) + [(name,) for name in EXTRA_FIELDS]))
        try:
            body = replaced(body, where, draw(JSON_VALUES))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement removed the path
    return body
