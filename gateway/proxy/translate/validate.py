"""Checks on client request bodies, before anything is reserved or forwarded.

Each check raises a 400 ``ApiError`` whose ``param`` names the offending
field, so a client sees exactly what to fix. Only what the gateway relies on
is checked; the rest is the upstream's to judge.
"""

from __future__ import annotations

from ...errors import bad_request

CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")
ANTHROPIC_ROLES = ("user", "assistant")
# A generous ceiling: no model produces more, and it bounds the reservation.
MAX_OUTPUT_TOKENS = 1_000_000


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_model(body: dict) -> str:
    """The requested model id (a non-empty string)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model is required and must be a string", "model")
    return model


def _check_positive_int(body: dict, name: str) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OUTPUT_TOKENS:
        raise bad_request(f"{name} must be an integer between 1 and {MAX_OUTPUT_TOKENS}", name)


def _check_range(body: dict, name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if not _is_number(value) or not low <= value <= high:
        raise bad_request(f"{name} must be a number between {low:g} and {high:g}", name)


def _check_bool(body: dict, name: str) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false", name)


def _check_stop(body: dict, name: str, limit: int | None) -> None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise bad_request(f"{name} must be a string or a list of strings", name)
    if limit is not None and len(value) > limit:
        raise bad_request(f"{name} may hold at most {limit} sequences", name)


def _check_openai_content(content: object, param: str, role: str) -> None:
    if content is None:
        if role in ("assistant",):
            return
        raise bad_request(f"{param} is required", param)
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise bad_request(f"{param} must be a string or a list of content parts", param)
    for index, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise bad_request("each content part must be an object with a type", f"{param}[{index}]")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise bad_request("a text part needs a text string", f"{param}[{index}].text")


def _check_openai_tools(body: dict) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise bad_request("tools must be a list", "tools")
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise bad_request("each tool needs type \"function\" and a function.name", f"tools[{index}]")
        if function.get("parameters") is not None and not isinstance(function["parameters"], dict):
            raise bad_request("function.parameters must be a JSON schema object", f"tools[{index}].function.parameters")


def _check_stream_options(body: dict) -> None:
    options = body.get("stream_options")
    if options is None:
        return
    if not isinstance(options, dict):
        raise bad_request("stream_options must be an object", "stream_options")
    if "include_usage" in options and not isinstance(options["include_usage"], bool):
        raise bad_request("stream_options.include_usage must be true or false", "stream_options.include_usage")


def check_chat(body: dict) -> None:
    """An OpenAI chat completions body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty list", "messages")
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request("each message must be an object", param)
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise bad_request(f"role must be one of {', '.join(CHAT_ROLES)}", f"{param}.role")
        if role == "assistant" and message.get("content") is None and not message.get("tool_calls"):
            raise bad_request("an assistant message needs content or tool_calls", f"{param}.content")
        _check_openai_content(message.get("content"), f"{param}.content", role)
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise bad_request("a tool message needs tool_call_id", f"{param}.tool_call_id")
        calls = message.get("tool_calls")
        if calls is not None and not (
            isinstance(calls, list) and all(isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls)
        ):
            raise bad_request("tool_calls must be a list of function calls", f"{param}.tool_calls")
    _check_common_openai(body)
    _check_openai_tools(body)


def _check_common_openai(body: dict) -> None:
    _check_positive_int(body, "max_tokens")
    _check_positive_int(body, "max_completion_tokens")
    _check_range(body, "temperature", 0, 2)
    _check_range(body, "top_p", 0, 1)
    _check_bool(body, "stream")
    _check_stream_options(body)
    _check_stop(body, "stop", 4)
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128):
        raise bad_request("n must be an integer between 1 and 128", "n")


def check_completion(body: dict) -> None:
    """An OpenAI text completions body (one prompt per request)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise bad_request("prompt must be a string (or a list holding one string)", "prompt")
    elif not isinstance(prompt, str):
        raise bad_request("prompt is required and must be a string", "prompt")
    for unsupported in ("suffix", "logprobs"):
        if body.get(unsupported) is not None:
            raise bad_request(f"{unsupported} is not supported", unsupported)
    if body.get("echo"):
        raise bad_request("echo is not supported", "echo")
    _check_common_openai(body)


def check_embedding(body: dict) -> None:
    """An OpenAI embeddings body."""
    value = body.get("input")
    ok = isinstance(value, str) and value != ""
    if isinstance(value, list) and value:
        ok = (
            all(isinstance(v, str) and v for v in value)
            or all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value)
        )
    if not ok:
        raise bad_request("input must be a non-empty string, list of strings or token arrays", "input")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise bad_request("encoding_format must be float or base64", "encoding_format")
    _check_positive_int(body, "dimensions")


def _check_anthropic_content(content: object, param: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise bad_request(f"{param} must be a string or a list of content blocks", param)
    for index, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise bad_request("each content block must be an object with a type", f"{param}[{index}]")
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            raise bad_request("a text block needs a text string", f"{param}[{index}].text")
        if block["type"] == "image" and not isinstance(block.get("source"), dict):
            raise bad_request("an image block needs a source object", f"{param}[{index}].source")
        if block["type"] == "tool_result" and not isinstance(block.get("tool_use_id"), str):
            raise bad_request("a tool_result block needs tool_use_id", f"{param}[{index}].tool_use_id")


def check_messages(body: dict) -> None:
    """An Anthropic Messages body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages: must be a non-empty list", "messages")
    for index, message in enumerate(messages):
        param = f"messages.{index}"
        if not isinstance(message, dict):
            raise bad_request(f"{param}: each message must be an object", param)
        if message.get("role") not in ANTHROPIC_ROLES:
            raise bad_request(f"{param}.role: must be user or assistant", f"{param}.role")
        if "content" not in message:
            raise bad_request(f"{param}.content: field required", f"{param}.content")
        _check_anthropic_content(message["content"], f"{param}.content")
    system = body.get("system")
    if system is not None:
        if not isinstance(system, (str, list)):
            raise bad_request("system: must be a string or a list of text blocks", "system")
        if isinstance(system, list):
            _check_anthropic_content(system, "system")
    _check_positive_int(body, "max_tokens")
    _check_range(body, "temperature", 0, 1)
    _check_range(body, "top_p", 0, 1)
    _check_bool(body, "stream")
    _check_stop(body, "stop_sequences", None)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise bad_request("tools: must be a list", "tools")
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise bad_request(f"tools.{index}: each tool needs a name", f"tools.{index}")
    choice = body.get("tool_choice")
    if choice is not None and not (isinstance(choice, dict) and isinstance(choice.get("type"), str)):
        raise bad_request("tool_choice: must be an object with a type", "tool_choice")
