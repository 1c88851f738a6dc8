"""Request bodies: OpenAI chat ⇄ Anthropic Messages, and text completions → chat.

The caller has validated the client body (``translate.validate``); what can
still be wrong here is content the other format cannot express, which raises a
400 ``ApiError`` naming the field.
"""

from __future__ import annotations

import orjson

from ...catalog import Model
from ...errors import bad_request
from .responses import assistant_message

# Anthropic accepts temperatures in [0, 1]; OpenAI in [0, 2].
ANTHROPIC_MAX_TEMPERATURE = 1.0
# OpenAI's own default for a text completion without max_tokens.
COMPLETION_DEFAULT_MAX_TOKENS = 16
# Chat APIs that take ``reasoning_effort`` for every model the catalogue routes to them
# (OpenAI's GPT-5 family); other OpenAI-compatible providers refuse or ignore it.
REASONING_EFFORT_PROVIDERS = ("openai",)
# Anthropic's output_config.effort → OpenAI's reasoning_effort ("max" has no OpenAI twin).
REASONING_EFFORT = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
# An enabled thinking budget → reasoning_effort, by the smallest budget of each step.
BUDGET_EFFORT = ((16_000, "high"), (4_000, "medium"), (0, "low"))


# --------------------------------------------------------------------------
# OpenAI chat → Anthropic Messages
# --------------------------------------------------------------------------


def _text_of(content: object, param: str) -> str:
    """Plain text of a content that may only hold text (system prompts, tool results)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for index, part in enumerate(content):
        if part.get("type") != "text":
            raise bad_request(f"{param}[{index}] must be a text part here", f"{param}[{index}]")
        parts.append(part.get("text") or "")
    return "\n".join(parts)


def _image_source(url: str, param: str) -> dict:
    """An OpenAI ``image_url.url`` (data: URL or http URL) as an Anthropic image source."""
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type.startswith("image/"):
            raise bad_request(
                "image data URLs must look like data:image/png;base64,<data>", param
            )
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise bad_request("image_url.url must be an http(s) URL or a data: URL", param)


def _user_blocks(content: object, param: str) -> list[dict]:
    """OpenAI user content → Anthropic content blocks (text and images)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for index, part in enumerate(content or ()):
        where = f"{param}[{index}]"
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise bad_request("image_url.url must be a string", f"{where}.image_url.url")
            blocks.append({"type": "image", "source": _image_source(url, f"{where}.image_url.url")})
        else:
            raise bad_request(f"content part type {kind!r} is not supported for this model", where)
    return blocks


def _tool_input(arguments: object, param: str) -> dict:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        raise bad_request("tool call arguments must be a JSON object string", param) from None
    if not isinstance(value, dict):
        raise bad_request("tool call arguments must be a JSON object string", param)
    return value


def _append_turn(messages: list[dict], role: str, blocks: list[dict]) -> None:
    """Add blocks as a turn, merging with the previous turn of the same role.

    Anthropic wants user and assistant turns to alternate; OpenAI allows
    consecutive messages of one role (and sends tool results as separate
    messages), so those merge into one turn.
    """
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _anthropic_tool_choice(choice: object, parallel: object) -> dict | None:
    if choice is None:
        result = None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "none":
        result = {"type": "none"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        result = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise bad_request("tool_choice must be auto, none, required or a function", "tool_choice")
    if parallel is False:
        result = dict(result or {"type": "auto"})
        if result["type"] != "none":
            result["disable_parallel_tool_use"] = True
    return result


def chat_to_messages_request(body: dict, model: Model) -> dict:
    """An OpenAI chat request as an Anthropic Messages request for ``model``."""
    system: list[str] = []
    messages: list[dict] = []
    for index, message in enumerate(body["messages"]):
        role = message["role"]
        param = f"messages[{index}].content"
        content = message.get("content")
        if role in ("system", "developer"):
            text = _text_of(content, param)
            if text:
                system.append(text)
        elif role == "user":
            _append_turn(messages, "user", _user_blocks(content, param))
        elif role == "assistant":
            blocks: list[dict] = []
            text = _text_of(content, param)
            if text:
                blocks.append({"type": "text", "text": text})
            for call_index, call in enumerate(message.get("tool_calls") or ()):
                function = call.get("function") or {}
                blocks.append({
                    "type": "tool_use",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "input": _tool_input(
                        function.get("arguments"),
                        f"messages[{index}].tool_calls[{call_index}].function.arguments",
                    ),
                })
            _append_turn(messages, "assistant", blocks)
        elif role == "tool":
            _append_turn(messages, "user", [{
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": _text_of(content, param),
            }])
    if not messages:
        raise bad_request("messages must hold at least one user or assistant message", "messages")
    out: dict = {
        "model": model.upstream,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or model.max_output_tokens,
    }
    if system:
        out["system"] = "\n\n".join(system)
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), ANTHROPIC_MAX_TEMPERATURE)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream"):
        out["stream"] = True
    if body.get("tools"):
        out["tools"] = [
            {
                "name": tool["function"]["name"],
                "description": tool["function"].get("description") or "",
                "input_schema": tool["function"].get("parameters") or {"type": "object", "properties": {}},
            }
            for tool in body["tools"]
        ]
    choice = _anthropic_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    return out


# --------------------------------------------------------------------------
# Anthropic Messages → OpenAI chat
# --------------------------------------------------------------------------


def _system_text(system: object) -> str:
    if isinstance(system, str):
        return system
    return "\n".join(block.get("text") or "" for block in system or () if block.get("type") == "text")


def _image_url(source: dict, param: str) -> str:
    kind = source.get("type")
    if kind == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if kind == "url":
        return source.get("url")
    raise bad_request(f"{param}.type: image source type {kind!r} is not supported for this model", f"{param}.type")


def _tool_result_text(content: object) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(block.get("text") or "" for block in content or () if block.get("type") == "text")


def _openai_tool_choice(choice: dict | None) -> tuple[object, bool | None]:
    if choice is None:
        return None, None
    parallel = False if choice.get("disable_parallel_tool_use") else None
    kind = choice.get("type")
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}, parallel
    raise bad_request("tool_choice.type must be auto, any, tool or none", "tool_choice.type")


def _reasoning_effort(body: dict) -> str | None:
    """The OpenAI ``reasoning_effort`` an Anthropic ``thinking`` asks for (None: leave it out)."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "adaptive":
        effort = (body.get("output_config") or {}).get("effort")
        return REASONING_EFFORT.get(effort, "medium")
    if kind == "enabled":
        budget = thinking.get("budget_tokens") or 0
        return next(effort for floor, effort in BUDGET_EFFORT if budget >= floor)
    return None


def _openai_tools(tools: list[dict], choice: object) -> list[dict]:
    """Custom tools as functions; Anthropic's server tools, which no OpenAI-wire upstream runs, are left out."""
    out = []
    for tool in tools:
        if tool.get("type") not in (None, "custom"):
            if isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name") == tool.get("name"):
                raise bad_request(f"tool_choice.name: the server tool {tool.get('name')!r} is not available "
                                  "for this model", "tool_choice.name")
            continue
        out.append({
            "type": "function",
            "function": {
                "name": tool.get("name"),
                "description": tool.get("description") or "",
                "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
            },
        })
    return out


def messages_to_chat_request(body: dict, model: Model, provider_name: str) -> dict:
    """An Anthropic Messages request as an OpenAI chat request for ``model``.

    OpenAI's own models take ``max_completion_tokens``; the other
    OpenAI-compatible providers still read ``max_tokens``. A system message
    inside ``messages`` stays a system message at its place: moving it to the
    top would change the prompt prefix the upstream caches on every turn.
    Anthropic-only fields (``cache_control``, ``context_management``,
    ``output_config``, ``thinking`` blocks in the history, server tools, and
    any field the gateway does not know) are left out.
    """
    messages: list[dict] = []
    system = _system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for index, message in enumerate(body["messages"]):
        role = message["role"]
        content = message["content"]
        if role == "system":
            text = _system_text(content)
            if text:
                messages.append({"role": "system", "content": text})
            continue
        if isinstance(content, str):
            messages.append({"role": role, "content": content})
            continue
        if role == "assistant":
            reply = assistant_message(content)
            if reply["content"] == "" and not reply.get("tool_calls") and not any(
                block.get("type") in ("text", "tool_use") for block in content
            ):
                continue  # only thinking blocks: nothing the other API can carry
            messages.append(reply)
            continue
        parts: list[dict] = []
        for block_index, block in enumerate(content):
            kind = block.get("type")
            where = f"messages.{index}.content.{block_index}"
            if kind == "tool_result":
                # OpenAI wants each tool result as its own message right after
                # the assistant turn that called it, before any new user text.
                messages.append({
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id"),
                    "content": _tool_result_text(block.get("content")),
                })
            elif kind == "text":
                parts.append({"type": "text", "text": block.get("text") or ""})
            elif kind == "image":
                source = block.get("source") or {}
                parts.append({"type": "image_url", "image_url": {"url": _image_url(source, f"{where}.source")}})
            elif kind in ("thinking", "redacted_thinking"):
                continue
            else:
                raise bad_request(f"{where}.type: content block type {kind!r} is not supported for this model",
                                  f"{where}.type")
        if parts:
            if all(part["type"] == "text" for part in parts):
                messages.append({"role": "user", "content": "\n".join(p["text"] for p in parts)})
            else:
                messages.append({"role": "user", "content": parts})
    out: dict = {"model": model.upstream, "messages": messages}
    max_tokens = body.get("max_tokens") or model.max_output_tokens
    out["max_completion_tokens" if provider_name == "openai" else "max_tokens"] = max_tokens
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    tools = _openai_tools(body.get("tools") or [], body.get("tool_choice"))
    if tools:
        out["tools"] = tools
    choice, parallel = _openai_tool_choice(body.get("tool_choice"))
    # A tool_choice without tools is refused by OpenAI-wire APIs (all of them may be server tools).
    if choice is not None and tools:
        out["tool_choice"] = choice
    if parallel is not None and tools:
        out["parallel_tool_calls"] = parallel
    effort = _reasoning_effort(body)
    if effort is not None and provider_name in REASONING_EFFORT_PROVIDERS:
        out["reasoning_effort"] = effort
    # metadata.user_id is Anthropic's to see: Claude Code fills it with a device id that
    # another provider has no use for, so it is not passed on as ``user``.
    return out


def system_messages_as_user_turns(body: dict) -> dict:
    """A Messages body whose in-conversation system messages are user turns at the same place.

    Not every Claude model takes ``role: system`` inside ``messages``; a user turn
    holding the same text wrapped in ``<system-reminder>`` (as Claude Code itself
    does for such models) is accepted by all of them, and it stays where it was so
    the cached prefix does not change.
    """
    if not any(message.get("role") == "system" for message in body["messages"]):
        return body
    messages = []
    for message in body["messages"]:
        if message.get("role") != "system":
            messages.append(message)
            continue
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        messages.append({"role": "user", "content": [
            dict(block, text=f"<system-reminder>\n{block.get('text') or ''}\n</system-reminder>")
            for block in blocks
        ]})
    return dict(body, messages=messages)


# --------------------------------------------------------------------------
# Text completions → chat
# --------------------------------------------------------------------------


def completion_to_chat_request(body: dict, provider_name: str) -> dict:
    """A text completion request as a chat request: the prompt becomes one user message."""
    prompt = body["prompt"]
    if isinstance(prompt, list):
        prompt = prompt[0]
    max_tokens = body.get("max_tokens") or COMPLETION_DEFAULT_MAX_TOKENS
    out: dict = {
        "model": body["model"],
        "messages": [{"role": "user", "content": prompt}],
        "max_completion_tokens" if provider_name == "openai" else "max_tokens": max_tokens,
    }
    for name in ("temperature", "top_p", "stop", "n", "stream", "stream_options", "user",
                 "presence_penalty", "frequency_penalty", "seed"):
        if body.get(name) is not None:
            out[name] = body[name]
    return out
