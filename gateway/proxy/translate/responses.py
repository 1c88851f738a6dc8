"""Whole (non-streamed) answers: Anthropic Messages ⇄ OpenAI chat, and chat → text completion."""

from __future__ import annotations

import time

import orjson

from . import usage as tusage

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


def assistant_message(blocks: list[dict], with_reasoning: bool = False) -> dict:
    """Anthropic assistant content blocks as one OpenAI assistant message (text and tool calls).

    With ``with_reasoning`` (an answer for a client), thinking blocks become the
    ``reasoning_content`` DeepSeek-style chat APIs use; redacted thinking has no
    readable text and is left out.
    """
    texts = []
    calls = []
    thoughts = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking" and with_reasoning:
            thoughts.append(block.get("thinking") or "")
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
    if thoughts:
        reply["reasoning_content"] = "".join(thoughts)
    return reply


def messages_to_chat_response(message: dict, model_id: str, usage: dict | None = None) -> dict:
    """An Anthropic message as an OpenAI chat.completion object.

    ``usage`` is the client's usage object when the caller has it (checked, with its
    cost); otherwise the message's own usage is translated.
    """
    reply = assistant_message(message.get("content") or [], with_reasoning=True)
    if usage is None:
        usage = tusage.openai_usage(tusage.from_anthropic(message.get("usage")) or tusage.TokenUsage())
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
        "usage": usage,
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


def chat_to_messages_response(completion: dict, model_id: str, usage: dict | None = None) -> dict:
    """An OpenAI chat.completion object as an Anthropic message.

    ``usage`` is the client's usage object when the caller has it (checked, with its
    cost); otherwise the completion's own usage is translated.
    """
    choices = completion.get("choices") or [{}]
    choice = choices[0] or {}
    reply = choice.get("message") or {}
    content: list[dict] = []
    if isinstance(reply.get("reasoning_content"), str) and reply["reasoning_content"]:
        # No signature exists for another provider's reasoning; Anthropic clients take an empty one.
        content.append({"type": "thinking", "thinking": reply["reasoning_content"], "signature": ""})
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
    if usage is None:
        usage = tusage.anthropic_usage(tusage.from_openai(completion.get("usage")) or tusage.TokenUsage())
    return {
        "id": "msg_" + str(completion.get("id") or ""),
        "type": "message",
        "role": "assistant",
        "model": model_id,
        "content": content,
        "stop_reason": STOP_FROM_FINISH.get(choice.get("finish_reason"), "end_turn"),
        "stop_sequence": None,
        "usage": usage,
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
