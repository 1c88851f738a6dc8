"""Whole (non-streamed) answers: Anthropic Messages ⇄ OpenAI chat, and chat → text completion."""

from __future__ import annotations

import time

import orjson

# Anthropic stop_reason → OpenAI finish_reason.
FINISH_FROM_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}
# OpenAI finish_reason → Anthropic stop_reason.
STOP_FROM_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def anthropic_usage_tokens(usage: dict | None) -> tuple[int, int] | None:
    """(input, output) tokens from an Anthropic usage object; cache reads and writes are input."""
    if not isinstance(usage, dict):
        return None
    input_tokens = (
        (usage.get("input_tokens") or 0)
        + (usage.get("cache_creation_input_tokens") or 0)
        + (usage.get("cache_read_input_tokens") or 0)
    )
    return int(input_tokens), int(usage.get("output_tokens") or 0)


def openai_usage_tokens(usage: dict | None) -> tuple[int, int] | None:
    """(input, output) tokens from an OpenAI usage object."""
    if not isinstance(usage, dict):
        return None
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def openai_usage(input_tokens: int, output_tokens: int) -> dict:
    """An OpenAI usage object."""
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def assistant_message(blocks: list[dict]) -> dict:
    """Anthropic assistant content blocks as one OpenAI assistant message (text and tool calls)."""
    texts = []
    calls = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append({
                "id": block.get("id"),
                "type": "function",
                "function": {
                    "name": block.get("name"),
                    "arguments": orjson.dumps(block.get("input") or {}).decode(),
                },
            })
    # OpenAI allows null content only beside tool calls.
    reply: dict = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    return reply


def messages_to_chat_response(message: dict, model_id: str) -> dict:
    """An Anthropic message as an OpenAI chat.completion object."""
    reply = assistant_message(message.get("content") or [])
    tokens = anthropic_usage_tokens(message.get("usage")) or (0, 0)
    return {
        "id": "chatcmpl-" + str(message.get("id") or ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [{
            "index": 0,
            "message": reply,
            "finish_reason": FINISH_FROM_STOP.get(message.get("stop_reason"), "stop"),
            "logprobs": None,
        }],
        "usage": openai_usage(*tokens),
    }


def _tool_input(arguments: object) -> dict:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        # Keep what the model produced rather than drop it.
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def chat_to_messages_response(completion: dict, model_id: str) -> dict:
    """An OpenAI chat.completion object as an Anthropic message."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] or {}
    reply = choice.get("message") or {}
    content: list[dict] = []
    if reply.get("content"):
        content.append({"type": "text", "text": reply["content"]})
    for call in reply.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append({
            "type": "tool_use",
            "id": call.get("id"),
            "name": function.get("name"),
            "input": _tool_input(function.get("arguments")),
        })
    tokens = openai_usage_tokens(completion.get("usage")) or (0, 0)
    return {
        "id": "msg_" + str(completion.get("id") or ""),
        "type": "message",
        "role": "assistant",
        "model": model_id,
        "content": content,
        "stop_reason": STOP_FROM_FINISH.get(choice.get("finish_reason"), "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]},
    }


def chat_to_completion_response(completion: dict, model_id: str) -> dict:
    """An OpenAI chat.completion object as a text_completion object."""
    choices = []
    for index, choice in enumerate(completion.get("choices") or ()):
        reply = choice.get("message") or {}
        choices.append({
            "text": reply.get("content") or "",
            "index": choice.get("index", index),
            "logprobs": None,
            "finish_reason": choice.get("finish_reason") or "stop",
        })
    out = {
        "id": "cmpl-" + str(completion.get("id") or ""),
        "object": "text_completion",
        "created": completion.get("created") or int(time.time()),
        "model": model_id,
        "choices": choices,
    }
    if completion.get("usage") is not None:
        out["usage"] = completion["usage"]
    return out
