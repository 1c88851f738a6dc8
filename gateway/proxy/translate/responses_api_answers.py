"""Whole Responses API answers built from a chat completion or an Anthropic message.

A ``response`` object echoes the request's settings (as OpenAI's does) and holds the
answer as output items: ``reasoning`` (DeepSeek's ``reasoning_content``, Claude's
thinking), ``message`` with ``output_text`` parts, and ``function_call``. The gateway
stores nothing, so ``store`` is always false.
"""

from __future__ import annotations

import time
import uuid

import orjson

INCLUDE_ENCRYPTED_REASONING = "reasoning.encrypted_content"
# Marks a reasoning item's encrypted content as a Claude thinking signature, so that only
# Claude's own thinking goes back to Claude (another provider's would be refused there).
CLAUDE_SIGNATURE_PREFIX = "claude-thinking:"


def new_id(prefix: str) -> str:
    """A fresh id in OpenAI's style (``resp_…``, ``msg_…``, ``fc_…``, ``rs_…``)."""
    return f"{prefix}_{uuid.uuid4().hex}"


def wants_encrypted_reasoning(body: dict) -> bool:
    """True when the client asked for reasoning it can send back (Codex always does)."""
    return INCLUDE_ENCRYPTED_REASONING in (body.get("include") or ())


def response_object(response_id: str, model_id: str, body: dict, output: list[dict], status: str,
                    usage: dict | None, tools: list[dict], created_at: int | None = None) -> dict:
    """A ``response`` object for ``body``'s request, with ``output`` and ``usage``."""
    reasoning = body.get("reasoning") or {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at or int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": model_id,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "service_tier": "default",
        "store": False,
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools,
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def message_item(texts: list[str], item_id: str | None = None, status: str = "completed") -> dict:
    """An assistant ``message`` output item holding one ``output_text`` part per text."""
    return {"id": item_id or new_id("msg"), "type": "message", "status": status, "role": "assistant",
            "content": [output_text(text) for text in texts]}


def output_text(text: str) -> dict:
    """One ``output_text`` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call_item(call_id: str, name: str, arguments: str, item_id: str | None = None,
                       status: str = "completed") -> dict:
    """A ``function_call`` output item."""
    return {"id": item_id or new_id("fc"), "type": "function_call", "status": status, "arguments": arguments,
            "call_id": call_id, "name": name}


def reasoning_item(text: str, encrypted: str | None, item_id: str | None = None) -> dict:
    """A ``reasoning`` output item whose summary is the reasoning text the upstream showed."""
    item: dict = {"id": item_id or new_id("rs"), "type": "reasoning",
                  "summary": [{"type": "summary_text", "text": text}] if text else []}
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    return item


def chat_to_response(completion: dict, model_id: str, body: dict, usage: dict, tools: list[dict]) -> dict:
    """A chat completion as a ``response`` object."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] or {}
    reply = choice.get("message") or {}
    output = []
    if isinstance(reply.get("reasoning_content"), str) and reply["reasoning_content"]:
        output.append(reasoning_item(reply["reasoning_content"], None))
    if reply.get("content"):
        output.append(message_item([reply["content"]]))
    for call in reply.get("tool_calls") or ():
        function = call.get("function") or {}
        output.append(function_call_item(str(call.get("id") or new_id("call")), str(function.get("name") or ""),
                                         str(function.get("arguments") or "")))
    status = "incomplete" if choice.get("finish_reason") == "length" else "completed"
    return response_object(new_id("resp"), model_id, body, output, status, usage, tools)


def messages_to_response(message: dict, model_id: str, body: dict, usage: dict, tools: list[dict]) -> dict:
    """An Anthropic message as a ``response`` object.

    A thinking block's signature travels as the reasoning item's ``encrypted_content``
    when the client asked for it, so the thinking can go back to Claude on the next turn.
    """
    encrypted = wants_encrypted_reasoning(body)
    output: list[dict] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            output.append(message_item(list(texts)))
            texts.clear()

    for block in message.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
            continue
        flush()
        if kind == "thinking":
            signature = CLAUDE_SIGNATURE_PREFIX + str(block.get("signature") or "")
            output.append(reasoning_item(str(block.get("thinking") or ""), signature if encrypted else None))
        elif kind == "tool_use":
            output.append(function_call_item(str(block.get("id") or new_id("call")), str(block.get("name") or ""),
                                             orjson.dumps(block.get("input") or {}).decode()))
    flush()
    status = "incomplete" if message.get("stop_reason") == "max_tokens" else "completed"
    return response_object(new_id("resp"), model_id, body, output, status, usage, tools)


def passthrough_text(response: dict) -> str:
    """Generated text of a pass-through answer, for upstreams that report no usage."""
    pieces = []
    for item in response.get("output") or ():
        if not isinstance(item, dict):
            continue
        for part in item.get("content") or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                pieces.append(part["text"])
        for part in item.get("summary") or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                pieces.append(part["text"])
        for name in ("name", "arguments", "input"):
            if isinstance(item.get(name), str):
                pieces.append(item[name])
    return "".join(pieces)
