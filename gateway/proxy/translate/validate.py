"""Checks on client request bodies, before anything is reserved or forwarded.

Each check raises a 400 ``ApiError`` whose ``param`` names the offending
field and whose message starts with it (Anthropic's error body has no
``param``), so a client sees exactly what to fix. Every field the gateway
reads, translates or forwards is checked against the type its API documents:
the translators and the token estimates rely on these checks and never see a
number where a string belongs. Fields the gateway knows nothing about are the
upstream's to judge: a Messages body goes to Anthropic with every field it holds
(Anthropic adds fields often, and Claude Code sends them at once), while a
translated request carries only what the other API has, so an unknown field is
left out there rather than refused.

Field paths follow each API's own spelling: ``messages[1].content[0].text``
for OpenAI, ``messages.1.content.0.text`` for Anthropic.
"""

from __future__ import annotations

from ...errors import ApiError, bad_request

CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")
# Anthropic now takes system messages anywhere in the conversation (Claude Code sends them).
ANTHROPIC_ROLES = ("user", "assistant", "system")
# Anthropic's smallest thinking budget.
MIN_THINKING_BUDGET = 1024
THINKING_TYPES = ("enabled", "disabled", "adaptive")
CACHE_TTLS = ("5m", "1h")
# A generous ceiling: no model produces more, and it bounds the reservation.
MAX_OUTPUT_TOKENS = 1_000_000
# OpenAI takes at most four stop sequences; Anthropic documents no count.
MAX_OPENAI_STOPS = 4
MAX_CHOICES = 128
# OpenAI's limit on inputs per embeddings request; token ids fit in 32 bits.
MAX_EMBEDDING_INPUTS = 2048
MAX_TOKEN_ID = 2**31 - 1
# A seed is a signed 64-bit integer upstream.
SEED_RANGE = (-(2**63), 2**63 - 1)

def _openai_path(parent: str, key: str | int) -> str:
    return f"{parent}[{key}]" if isinstance(key, int) else f"{parent}.{key}"


def fail(param: str, what: str) -> ApiError:
    """The 400 for a bad field, naming it."""
    return bad_request(f"{param}: {what}", param)


def is_int(value: object) -> bool:
    """An integer, and not a boolean (which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An integer or a float, and not a boolean."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------
# Scalars (each takes the whole body and a top-level field name; absent or
# null means "not given")
# --------------------------------------------------------------------------


def _int_in(body: dict, name: str, low: int, high: int) -> None:
    value = body.get(name)
    if value is not None and not (is_int(value) and low <= value <= high):
        raise fail(name, f"must be an integer between {low} and {high}")


def _positive_int(body: dict, name: str) -> None:
    _int_in(body, name, 1, MAX_OUTPUT_TOKENS)


def number_in(body: dict, name: str, low: float, high: float) -> None:
    """A number within [low, high], when given."""
    value = body.get(name)
    if value is not None and not (is_number(value) and low <= value <= high):
        raise fail(name, f"must be a number between {low:g} and {high:g}")


def _boolean(body: dict, name: str) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise fail(name, "must be true or false")


def _string(body: dict, name: str) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise fail(name, "must be a string")


def _object(body: dict, name: str) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise fail(name, "must be an object")


def _string_list(value: object, param: str, limit: int | None) -> None:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise fail(param, "must be a list of strings")
    if limit is not None and len(value) > limit:
        raise fail(param, f"may hold at most {limit} sequences")


def _required_string(block: dict, name: str, param: str) -> str:
    value = block.get(name)
    if not isinstance(value, str):
        raise fail(param, "is required and must be a string")
    return value


def _optional_string(block: dict, name: str, param: str) -> None:
    if block.get(name) is not None and not isinstance(block[name], str):
        raise fail(param, "must be a string")


def check_model(body: dict) -> str:
    """The requested model id (a non-empty string)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model is required and must be a string", "model")
    return model


# --------------------------------------------------------------------------
# OpenAI chat, completions, embeddings
# --------------------------------------------------------------------------


def _typed_parts(content: list, param: str) -> list[tuple[str, dict, str]]:
    """(type, part, path) of each content part; 400 for a part that is not an object with a type."""
    parts = []
    for index, part in enumerate(content):
        where = _openai_path(param, index)
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise fail(where, "each content part must be an object with a type")
        parts.append((part["type"], part, where))
    return parts


def _openai_text_parts(content: object, param: str, allowed: tuple[str, ...] = ("text",)) -> None:
    """Content that may be a string or a list of text parts (system, developer, tool, assistant)."""
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise fail(param, "must be a string or a list of content parts")
    for kind, part, where in _typed_parts(content, param):
        if kind not in allowed:
            raise fail(where, f"content part type must be {' or '.join(allowed)} here")
        _required_string(part, kind, f"{where}.{kind}")


def _openai_user_content(content: object, param: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise fail(param, "must be a string or a list of content parts")
    for kind, part, where in _typed_parts(content, param):
        if kind == "text":
            _required_string(part, "text", f"{where}.text")
        elif kind == "image_url":
            image = part.get("image_url")
            if not isinstance(image, dict):
                raise fail(f"{where}.image_url", "must be an object with a url")
            _required_string(image, "url", f"{where}.image_url.url")
            _optional_string(image, "detail", f"{where}.image_url.detail")
        elif kind in ("input_audio", "file") and not isinstance(part.get(kind), dict):
            raise fail(f"{where}.{kind}", "must be an object")


def _openai_tool_calls(calls: object, param: str) -> None:
    if not isinstance(calls, list):
        raise fail(param, "must be a list of function calls")
    for index, call in enumerate(calls):
        where = _openai_path(param, index)
        if not isinstance(call, dict):
            raise fail(where, "each tool call must be an object")
        _optional_string(call, "id", f"{where}.id")
        if call.get("type") not in (None, "function"):
            raise fail(f"{where}.type", "must be function")
        function = call.get("function")
        if not isinstance(function, dict):
            raise fail(f"{where}.function", "must be an object with a name and arguments")
        _required_string(function, "name", f"{where}.function.name")
        _optional_string(function, "arguments", f"{where}.function.arguments")


def _openai_message(message: object, param: str) -> None:
    if not isinstance(message, dict):
        raise fail(param, "each message must be an object")
    role = message.get("role")
    if role not in CHAT_ROLES:
        raise fail(f"{param}.role", f"must be one of {', '.join(CHAT_ROLES)}")
    _optional_string(message, "name", f"{param}.name")
    content = message.get("content")
    where = f"{param}.content"
    if role == "assistant":
        calls = message.get("tool_calls")
        if calls is not None:
            _openai_tool_calls(calls, f"{param}.tool_calls")
        if content is None:
            if not calls:
                raise fail(where, "an assistant message needs content or tool_calls")
        else:
            _openai_text_parts(content, where, ("text", "refusal"))
        _optional_string(message, "refusal", f"{param}.refusal")
        return
    if message.get("tool_calls") is not None:
        raise fail(f"{param}.tool_calls", "only assistant messages carry tool_calls")
    if content is None:
        raise fail(where, "is required")
    if role == "user":
        _openai_user_content(content, where)
    else:
        _openai_text_parts(content, where)
    if role == "tool":
        _required_string(message, "tool_call_id", f"{param}.tool_call_id")


def _openai_tools(body: dict) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise fail("tools", "must be a list")
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise fail(where, "each tool needs type \"function\" and a function.name")
        if tool.get("type") not in (None, "function"):
            raise fail(f"{where}.type", "must be function")
        _optional_string(function, "description", f"{where}.function.description")
        if function.get("parameters") is not None and not isinstance(function["parameters"], dict):
            raise fail(f"{where}.function.parameters", "must be a JSON schema object")
        if function.get("strict") is not None and not isinstance(function["strict"], bool):
            raise fail(f"{where}.function.strict", "must be true or false")


def _openai_tool_choice(body: dict) -> None:
    choice = body.get("tool_choice")
    if choice is None or choice in ("auto", "none", "required"):
        return
    if isinstance(choice, dict) and choice.get("type") in (None, "function"):
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str) and function["name"]:
            return
    raise fail("tool_choice", "must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": ...}}")


def _stream_options(body: dict) -> None:
    options = body.get("stream_options")
    if options is None:
        return
    if not isinstance(options, dict):
        raise fail("stream_options", "must be an object")
    if options.get("include_usage") is not None and not isinstance(options["include_usage"], bool):
        raise fail("stream_options.include_usage", "must be true or false")


def _openai_stop(body: dict) -> None:
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise fail("stop", "must be a string or a list of strings")
    if len(stop) > MAX_OPENAI_STOPS:
        raise fail("stop", f"may hold at most {MAX_OPENAI_STOPS} sequences")


def _common_openai(body: dict) -> None:
    """The sampling and output fields chat and text completions share."""
    _positive_int(body, "max_tokens")
    _positive_int(body, "max_completion_tokens")
    number_in(body, "temperature", 0, 2)
    number_in(body, "top_p", 0, 1)
    number_in(body, "presence_penalty", -2, 2)
    number_in(body, "frequency_penalty", -2, 2)
    _int_in(body, "n", 1, MAX_CHOICES)
    _int_in(body, "seed", *SEED_RANGE)
    _boolean(body, "stream")
    _stream_options(body)
    _openai_stop(body)
    _string(body, "user")
    _object(body, "logit_bias")


def check_chat(body: dict) -> None:
    """An OpenAI chat completions body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise fail("messages", "must be a non-empty list")
    for index, message in enumerate(messages):
        _openai_message(message, f"messages[{index}]")
    _common_openai(body)
    _openai_tools(body)
    _openai_tool_choice(body)
    _boolean(body, "parallel_tool_calls")
    _boolean(body, "logprobs")
    _int_in(body, "top_logprobs", 0, 20)
    _string(body, "reasoning_effort")
    _string(body, "service_tier")
    _boolean(body, "store")
    _object(body, "metadata")
    response_format = body.get("response_format")
    if response_format is not None and not (
        isinstance(response_format, dict) and isinstance(response_format.get("type"), str)
    ):
        raise fail("response_format", "must be an object with a type")


def check_completion(body: dict) -> None:
    """An OpenAI text completions body (one prompt per request)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise fail("prompt", "must be a string (or a list holding one string)")
    elif not isinstance(prompt, str):
        raise fail("prompt", "is required and must be a string")
    for unsupported in ("suffix", "logprobs"):
        if body.get(unsupported) is not None:
            raise fail(unsupported, "is not supported")
    _boolean(body, "echo")
    if body.get("echo"):
        raise fail("echo", "is not supported")
    _int_in(body, "best_of", 1, 1)
    _common_openai(body)


def _embedding_input_ok(value: object) -> bool:
    def token_ids(items: list) -> bool:
        return bool(items) and all(is_int(t) and 0 <= t <= MAX_TOKEN_ID for t in items)

    if isinstance(value, str):
        return value != ""
    if not isinstance(value, list) or not value or len(value) > MAX_EMBEDDING_INPUTS:
        return False
    return (
        all(isinstance(v, str) and v for v in value)
        or token_ids(value)
        or all(isinstance(v, list) and token_ids(v) for v in value)
    )


def check_embedding(body: dict) -> None:
    """An OpenAI embeddings body."""
    if not _embedding_input_ok(body.get("input")):
        raise fail("input", "must be a non-empty string, a list of strings or token arrays "
                             f"(at most {MAX_EMBEDDING_INPUTS})")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise fail("encoding_format", "must be float or base64")
    _positive_int(body, "dimensions")
    _string(body, "user")
    # Not embeddings fields, but the gateway reads them before it knows the endpoint.
    _boolean(body, "stream")
    _stream_options(body)


# --------------------------------------------------------------------------
# Anthropic Messages
# --------------------------------------------------------------------------

# source.type → the string fields that source needs.
_IMAGE_SOURCES = {"base64": ("media_type", "data"), "url": ("url",), "file": ("file_id",)}


def _anthropic_source(block: dict, param: str, sources: dict[str, tuple[str, ...]] | None) -> None:
    source = block.get("source")
    where = f"{param}.source"
    if not isinstance(source, dict) or not isinstance(source.get("type"), str):
        raise fail(where, "must be an object with a type")
    if sources is None:
        return
    fields = sources.get(source["type"])
    if fields is None:
        raise fail(f"{where}.type", f"must be one of {', '.join(sources)}")
    for name in fields:
        _required_string(source, name, f"{where}.{name}")


def _tool_result_content(content: object, param: str) -> None:
    """A tool_result's content: a string or a list of text and image blocks."""
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise fail(param, "must be a string or a list of text or image blocks")
    for index, block in enumerate(content):
        where = f"{param}.{index}"
        if not isinstance(block, dict) or block.get("type") not in ("text", "image"):
            raise fail(where, "must be a text or image block")
        _anthropic_block(block, where)


def _cache_control(holder: dict, param: str) -> None:
    """A prompt-cache breakpoint: ``{"type": "ephemeral", "ttl": "5m" | "1h"}`` (ttl optional)."""
    control = holder.get("cache_control")
    if control is None:
        return
    where = f"{param}.cache_control"
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise fail(where, "must be an object whose type is ephemeral")
    if control.get("ttl") is not None and control["ttl"] not in CACHE_TTLS:
        raise fail(f"{where}.ttl", f"must be one of {', '.join(CACHE_TTLS)}")


def _anthropic_block(block: dict, param: str) -> None:
    """One content block of a type the gateway reads; other types are the upstream's to judge."""
    kind = block["type"]
    _cache_control(block, param)
    if kind == "text":
        _required_string(block, "text", f"{param}.text")
    elif kind == "image":
        _anthropic_source(block, param, _IMAGE_SOURCES)
    elif kind == "document":
        _anthropic_source(block, param, None)
    elif kind == "tool_use":
        _required_string(block, "id", f"{param}.id")
        _required_string(block, "name", f"{param}.name")
        if not isinstance(block.get("input"), dict):
            raise fail(f"{param}.input", "is required and must be an object")
    elif kind == "tool_result":
        _required_string(block, "tool_use_id", f"{param}.tool_use_id")
        _tool_result_content(block.get("content"), f"{param}.content")
        if block.get("is_error") is not None and not isinstance(block["is_error"], bool):
            raise fail(f"{param}.is_error", "must be true or false")
    elif kind == "thinking":
        _required_string(block, "thinking", f"{param}.thinking")
        _optional_string(block, "signature", f"{param}.signature")
    elif kind == "redacted_thinking":
        _required_string(block, "data", f"{param}.data")


def _anthropic_content(content: object, param: str, text_only: bool = False) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise fail(param, "must be a string or a list of content blocks")
    for index, block in enumerate(content):
        where = f"{param}.{index}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise fail(where, "each content block must be an object with a type")
        if text_only and block["type"] != "text":
            raise fail(f"{where}.type", "must be text")
        _anthropic_block(block, where)


def _anthropic_tools(body: dict) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise fail("tools", "must be a list")
    for index, tool in enumerate(tools):
        where = f"tools.{index}"
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise fail(where, "each tool needs a name")
        _optional_string(tool, "type", f"{where}.type")
        _optional_string(tool, "description", f"{where}.description")
        _cache_control(tool, where)
        # A custom tool (no type, or "custom") is described by its schema; Anthropic's
        # server tools (web_search_…, bash_…) carry a versioned type and their own fields.
        if is_custom_tool(tool):
            if not isinstance(tool.get("input_schema"), dict):
                raise fail(f"{where}.input_schema", "is required and must be a JSON schema object")
        elif tool.get("input_schema") is not None and not isinstance(tool["input_schema"], dict):
            raise fail(f"{where}.input_schema", "must be a JSON schema object")


def is_custom_tool(tool: dict) -> bool:
    """True for a tool the client runs itself (no type, or type custom)."""
    return tool.get("type") in (None, "custom")


def _anthropic_tool_choice(body: dict) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise fail("tool_choice", "must be an object whose type is auto, any, tool or none")
    if choice["type"] == "tool":
        _required_string(choice, "name", "tool_choice.name")
    if choice.get("disable_parallel_tool_use") is not None and not isinstance(
        choice["disable_parallel_tool_use"], bool
    ):
        raise fail("tool_choice.disable_parallel_tool_use", "must be true or false")


def check_messages(body: dict) -> None:
    """An Anthropic Messages body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise fail("messages", "must be a non-empty list")
    for index, message in enumerate(messages):
        param = f"messages.{index}"
        if not isinstance(message, dict):
            raise fail(param, "each message must be an object")
        role = message.get("role")
        if role not in ANTHROPIC_ROLES:
            raise fail(f"{param}.role", "must be user, assistant or system")
        if "content" not in message:
            raise fail(f"{param}.content", "field required")
        _anthropic_content(message["content"], f"{param}.content", text_only=role == "system")
    if body.get("system") is not None:
        _anthropic_content(body["system"], "system", text_only=True)
    _positive_int(body, "max_tokens")
    number_in(body, "temperature", 0, 1)
    number_in(body, "top_p", 0, 1)
    _int_in(body, "top_k", 0, MAX_OUTPUT_TOKENS)
    _boolean(body, "stream")
    if body.get("stop_sequences") is not None:
        _string_list(body["stop_sequences"], "stop_sequences", None)
    _anthropic_tools(body)
    _anthropic_tool_choice(body)
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise fail("metadata", "must be an object")
        _optional_string(metadata, "user_id", "metadata.user_id")
    _thinking(body)
    output_config = body.get("output_config")
    if output_config is not None:
        if not isinstance(output_config, dict):
            raise fail("output_config", "must be an object")
        _optional_string(output_config, "effort", "output_config.effort")
    _object(body, "context_management")
    _string(body, "service_tier")


def _thinking(body: dict) -> None:
    """``thinking``: enabled with a budget of at least 1,024 tokens, disabled, or adaptive."""
    thinking = body.get("thinking")
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
        raise fail("thinking", f"must be an object whose type is {', '.join(THINKING_TYPES)}")
    budget = thinking.get("budget_tokens")
    if thinking["type"] == "enabled" or budget is not None:
        if not (is_int(budget) and MIN_THINKING_BUDGET <= budget <= MAX_OUTPUT_TOKENS):
            raise fail("thinking.budget_tokens",
                        f"must be an integer between {MIN_THINKING_BUDGET} and {MAX_OUTPUT_TOKENS}")
    _optional_string(thinking, "display", "thinking.display")
