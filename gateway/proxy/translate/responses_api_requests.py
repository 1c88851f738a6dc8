"""Responses API requests for each kind of upstream.

An OpenAI-wire provider flagged ``responses = true`` gets the body as it is (pass-through);
every other provider gets it as a chat completions request (OpenAI wire) or a Messages
request (Anthropic wire). The caller has checked the body (``responses_api_checks``);
what can still be wrong here is content the other API cannot express, which is a 400
naming the field.

Tools the provider runs itself and bills apart from tokens (``web_search``,
``file_search``, ``code_interpreter``, ``image_generation``: per call, container or image)
cost what the gateway cannot meter, so no upstream is sent them. Translated upstreams have
function tools only, so every other tool type (custom, namespace, built-in) is left out
there. What is left out is named in the ``x-samalink-omitted-tools`` answer header; a
``tool_choice`` that forces a left-out tool is a 400.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from ...catalog import Model
from ...errors import bad_request
from .responses_api_answers import CLAUDE_SIGNATURE_PREFIX

# Answer header naming the tools a request carried that its upstream was not sent.
OMITTED_TOOLS_HEADER = "x-samalink-omitted-tools"
# Chat APIs that take ``reasoning_effort`` (OpenAI's GPT-5 family); others refuse or ignore it.
REASONING_EFFORT_PROVIDERS = ("openai",)
# A Responses reasoning effort as an Anthropic thinking budget (Anthropic's minimum is 1,024).
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000}
# Tool types the provider runs and bills apart from tokens (matched as prefixes: web_search_preview…).
PROVIDER_BILLED_TOOLS = ("web_search", "file_search", "code_interpreter", "image_generation")
# Anthropic accepts temperatures in [0, 1]; OpenAI in [0, 2].
ANTHROPIC_MAX_TEMPERATURE = 1.0


@dataclass(frozen=True, slots=True)
class Tools:
    """The client's tools split into what the upstream is sent and the names left out."""

    kept: list[dict]
    omitted: list[str]


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """What a Responses answer needs from its request: the client's body (echoed) and its tools."""

    body: dict
    tools: Tools

    def answer_headers(self) -> dict[str, str]:
        """``x-samalink-omitted-tools`` naming the tools the upstream was not sent, when there are any."""
        return {OMITTED_TOOLS_HEADER: ", ".join(self.tools.omitted)} if self.tools.omitted else {}


def _tool_name(tool: dict) -> str:
    return str(tool.get("name") or tool.get("type"))


def split_tools(body: dict, passthrough: bool) -> Tools:
    """The tools the upstream is sent; 400 when ``tool_choice`` forces one that is left out."""
    kept, omitted = [], []
    for tool in body.get("tools") or ():
        kind = tool["type"]
        if kind == "function" or (passthrough and not kind.startswith(PROVIDER_BILLED_TOOLS)):
            kept.append(tool)
        else:
            omitted.append(_tool_name(tool))
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice["type"] not in ("allowed_tools", "auto", "none", "required"):
        kind = choice["type"]
        if kind in ("function", "custom"):
            if not any(tool["type"] == kind and tool.get("name") == choice["name"] for tool in kept):
                available = "is not available for this model" if choice["name"] in omitted else "is not in tools"
                raise bad_request(f"tool_choice: the tool {choice['name']!r} {available}", "tool_choice")
        elif not any(tool["type"] == kind for tool in kept):
            raise bad_request(f"tool_choice: the built-in tool {kind!r} is not available through the gateway",
                              "tool_choice")
    return Tools(kept, omitted)


def passthrough_request(body: dict, model: Model, tools: Tools) -> dict:
    """The body for a provider that has the Responses API itself.

    Nothing is stored at the provider: the gateway offers no way to read a stored
    response back, so storing one would only keep the customer's data for nothing.
    Hence reasoning items go on only with OpenAI's own encrypted content: without it
    (DeepSeek's reasoning) or with a Claude signature, OpenAI would refuse the request.
    """
    out = dict(body, model=model.upstream, store=False)
    if isinstance(body["input"], list):
        out["input"] = [item for item in body["input"] if not _foreign_reasoning(item)]
    if "tools" in body:
        out["tools"] = tools.kept
        if not tools.kept:
            out.pop("tools")
            out.pop("tool_choice", None)
    return out


def _foreign_reasoning(item: dict) -> bool:
    if item.get("type") != "reasoning":
        return False
    encrypted = item.get("encrypted_content")
    return not encrypted or encrypted.startswith(CLAUDE_SIGNATURE_PREFIX)


# --------------------------------------------------------------------------
# Input items as a conversation (shared by both translations)
# --------------------------------------------------------------------------


def _text_parts(content: object, param: str) -> str:
    """Plain text of content that may only hold text (instructions, system messages, tool output)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for index, part in enumerate(content):
        if part["type"] in ("input_text", "output_text"):
            texts.append(part["text"])
        elif part["type"] == "refusal":
            texts.append(part["refusal"])
        elif part["type"] != "input_image":
            raise bad_request(f"{param}[{index}].type: {part['type']} is not supported here for this model",
                              f"{param}[{index}].type")
    return "\n".join(texts)


def _user_parts(content: object, param: str) -> list[tuple[str, str]]:
    """("text", text) and ("image", url) pieces of a user message."""
    if isinstance(content, str):
        return [("text", content)]
    pieces = []
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        kind = part["type"]
        if kind in ("input_text", "output_text"):
            pieces.append(("text", part["text"]))
        elif kind == "refusal":
            pieces.append(("text", part["refusal"]))
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise bad_request(f"{where}.image_url: this model takes images by URL or data: URL, not file_id",
                                  f"{where}.image_url")
            pieces.append(("image", url))
        else:
            raise bad_request(f"{where}.type: {kind} is not supported for this model", f"{where}.type")
    return pieces


@dataclass(slots=True)
class Turn:
    """One message of the conversation, in terms both translations understand."""

    role: str  # system, user, assistant or tool
    pieces: list[tuple[str, str]]  # ("text", ...) or ("image", url)
    calls: list[dict]  # assistant: {"id", "name", "arguments"}
    call_id: str = ""  # tool: the call it answers
    reasoning: list[tuple[str, str]] | None = None  # assistant: (summary text, encrypted content)


def conversation(body: dict) -> list[Turn]:
    """``instructions`` and ``input`` as turns; reasoning items ride on the assistant turn they precede."""
    turns: list[Turn] = []
    if body.get("instructions"):
        turns.append(Turn("system", [("text", body["instructions"])], []))
    items = body["input"]
    if isinstance(items, str):
        return [*turns, Turn("user", [("text", items)], [])]
    reasoning: list[tuple[str, str]] = []

    def assistant() -> Turn:
        nonlocal reasoning
        last = turns[-1] if turns else None
        if last is None or last.role != "assistant" or reasoning:
            last = Turn("assistant", [], [], reasoning=reasoning or None)
            turns.append(last)
            reasoning = []
        return last

    for index, item in enumerate(items):
        param = f"input[{index}]"
        kind = item.get("type") or "message"
        if kind == "message":
            role = item["role"]
            if role in ("system", "developer"):
                turns.append(Turn("system", [("text", _text_parts(item["content"], f"{param}.content"))], []))
            elif role == "user":
                turns.append(Turn("user", _user_parts(item["content"], f"{param}.content"), []))
            else:
                turn = assistant()
                if turn.calls:
                    # Text after a tool call starts a new message, as it would have been said later.
                    turn = Turn("assistant", [], [])
                    turns.append(turn)
                turn.pieces.append(("text", _text_parts(item["content"], f"{param}.content")))
        elif kind in ("function_call", "custom_tool_call"):
            arguments = item["arguments"] if kind == "function_call" else orjson.dumps({"input": item["input"]}).decode()
            assistant().calls.append({"id": item["call_id"], "name": item["name"], "arguments": arguments,
                                      "param": f"{param}.arguments"})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            turns.append(Turn("tool", [("text", _text_parts(item["output"], f"{param}.output"))], [],
                              call_id=item["call_id"]))
        elif kind == "reasoning":
            text = "\n".join(part["text"] for part in item.get("summary") or ())
            reasoning.append((text, item.get("encrypted_content") or ""))
        elif kind.endswith("_call") or kind.endswith("_call_output"):
            continue  # a built-in tool's call: the tool is left out, so is its trace
        else:
            raise bad_request(f"{param}.type: input items of type {kind} are not supported for this model",
                              f"{param}.type")
    return turns


# --------------------------------------------------------------------------
# → OpenAI chat completions
# --------------------------------------------------------------------------


def _chat_content(pieces: list[tuple[str, str]]) -> str | list[dict]:
    if all(kind == "text" for kind, _ in pieces):
        return "\n".join(text for _, text in pieces)
    return [{"type": "text", "text": value} if kind == "text" else {"type": "image_url", "image_url": {"url": value}}
            for kind, value in pieces]


def chat_messages(turns: list[Turn]) -> list[dict]:
    """Turns as chat messages; reasoning has no place in a chat request and is left out."""
    messages = []
    for turn in turns:
        if turn.role == "tool":
            messages.append({"role": "tool", "tool_call_id": turn.call_id, "content": _chat_content(turn.pieces)})
        elif turn.role == "assistant":
            text = "\n".join(value for _, value in turn.pieces)
            message: dict = {"role": "assistant", "content": text if text or not turn.calls else None}
            if turn.calls:
                message["tool_calls"] = [{"id": call["id"], "type": "function",
                                          "function": {"name": call["name"], "arguments": call["arguments"]}}
                                         for call in turn.calls]
            messages.append(message)
        else:
            messages.append({"role": turn.role, "content": _chat_content(turn.pieces)})
    return messages


def _chat_tool_choice(choice: object) -> object:
    if isinstance(choice, dict):
        if choice["type"] == "function":
            return {"type": "function", "function": {"name": choice["name"]}}
        return choice.get("mode") if choice["type"] == "allowed_tools" else None
    return choice


def _response_format(text: object) -> dict | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if fmt["type"] == "json_schema":
        schema = {name: fmt[name] for name in ("name", "schema", "strict", "description") if name in fmt}
        return {"type": "json_schema", "json_schema": schema}
    return None


def responses_to_chat_request(body: dict, model: Model, provider_name: str, tools: Tools) -> dict:
    """A Responses request as a chat completions request for ``model``."""
    out: dict = {"model": model.upstream, "messages": chat_messages(conversation(body))}
    bound = body.get("max_output_tokens") or model.max_output_tokens
    out["max_completion_tokens" if provider_name == "openai" else "max_tokens"] = bound
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    if tools.kept:
        out["tools"] = [{"type": "function", "function": {
            "name": tool["name"], "description": tool.get("description") or "",
            "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
            **({"strict": tool["strict"]} if tool.get("strict") is not None else {}),
        }} for tool in tools.kept]
        choice = _chat_tool_choice(body.get("tool_choice"))
        if choice is not None:
            out["tool_choice"] = choice
        if body.get("parallel_tool_calls") is not None:
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort and provider_name in REASONING_EFFORT_PROVIDERS:
        out["reasoning_effort"] = effort
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        out["response_format"] = response_format
    return out


# --------------------------------------------------------------------------
# → Anthropic Messages
# --------------------------------------------------------------------------


def _image_source(url: str, param: str) -> dict:
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type.startswith("image/"):
            raise bad_request(f"{param}: image data URLs must look like data:image/png;base64,<data>", param)
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise bad_request(f"{param}: image_url must be an http(s) URL or a data: URL", param)


def _blocks(pieces: list[tuple[str, str]]) -> list[dict]:
    return [{"type": "text", "text": value} if kind == "text"
            else {"type": "image", "source": _image_source(value, "input")}
            for kind, value in pieces if kind != "text" or value]


def _tool_input(arguments: str, param: str) -> dict:
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise bad_request(f"{param}: tool call arguments must be a JSON object string", param) from None
    if not isinstance(value, dict):
        raise bad_request(f"{param}: tool call arguments must be a JSON object string", param)
    return value


def _add(messages: list[dict], role: str, blocks: list[dict]) -> None:
    """Add a turn, merged with the previous one of the same role (Anthropic wants them alternating)."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _thinking_blocks(turn: Turn) -> list[dict]:
    """Reasoning items that carry a thinking signature (from an earlier Claude answer) as thinking blocks.

    Other reasoning (another provider's encrypted content, or none) has nothing Claude
    would accept, and is left out.
    """
    return [{"type": "thinking", "thinking": text, "signature": signature.removeprefix(CLAUDE_SIGNATURE_PREFIX)}
            for text, signature in turn.reasoning or () if signature.startswith(CLAUDE_SIGNATURE_PREFIX)]


def _anthropic_tool_choice(choice: object, parallel: object) -> dict | None:
    if isinstance(choice, dict):
        if choice["type"] == "function":
            result: dict | None = {"type": "tool", "name": choice["name"]}
        else:
            choice = choice.get("mode") if choice["type"] == "allowed_tools" else None
    if not isinstance(choice, dict):
        result = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}.get(choice)
    if parallel is False and (result is None or result["type"] != "none"):
        result = dict(result or {"type": "auto"}, disable_parallel_tool_use=True)
    return result


def responses_to_messages_request(body: dict, model: Model, tools: Tools) -> dict:
    """A Responses request as an Anthropic Messages request for ``model``.

    System and developer messages before the conversation become ``system``; later
    ones stay where they are as ``<system-reminder>`` user turns, so the cached prefix
    does not change from turn to turn. ``reasoning.effort`` turns thinking on with a
    budget for that effort (not when a tool is forced, which Anthropic refuses with
    thinking); reasoning items from an earlier Claude answer go back as thinking blocks.
    """
    system: list[str] = []
    messages: list[dict] = []
    effort = (body.get("reasoning") or {}).get("effort")
    choice = _anthropic_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls")) if tools.kept else None
    thinking = effort in THINKING_BUDGETS and (choice is None or choice["type"] in ("auto", "none"))
    for turn in conversation(body):
        text = "\n".join(value for kind, value in turn.pieces if kind == "text")
        if turn.role == "system":
            if not messages:
                system.append(text)
            else:
                _add(messages, "user", [{"type": "text", "text": f"<system-reminder>\n{text}\n</system-reminder>"}])
        elif turn.role == "user":
            _add(messages, "user", _blocks(turn.pieces))
        elif turn.role == "tool":
            _add(messages, "user", [{"type": "tool_result", "tool_use_id": turn.call_id, "content": text}])
        else:
            blocks = _thinking_blocks(turn) if thinking else []
            blocks.extend(_blocks(turn.pieces))
            blocks.extend({"type": "tool_use", "id": call["id"], "name": call["name"],
                           "input": _tool_input(call["arguments"], call["param"])} for call in turn.calls)
            _add(messages, "assistant", blocks)
    if not messages:
        raise bad_request("input: must hold at least one user or assistant message", "input")
    out: dict = {"model": model.upstream, "messages": messages,
                 "max_tokens": body.get("max_output_tokens") or model.max_output_tokens}
    if system:
        out["system"] = "\n\n".join(system)
    if thinking:
        # Anthropic takes no temperature or top_p below 0.95 beside thinking: they are left out.
        out["thinking"] = {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}
    else:
        if body.get("temperature") is not None:
            out["temperature"] = min(float(body["temperature"]), ANTHROPIC_MAX_TEMPERATURE)
        if body.get("top_p") is not None:
            out["top_p"] = body["top_p"]
    if body.get("stream"):
        out["stream"] = True
    if tools.kept:
        out["tools"] = [{"name": tool["name"], "description": tool.get("description") or "",
                         "input_schema": tool.get("parameters") or {"type": "object", "properties": {}}}
                        for tool in tools.kept]
        if choice is not None:
            out["tool_choice"] = choice
    return out
