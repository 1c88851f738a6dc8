"""Checks on ``POST /v1/responses`` bodies (the OpenAI Responses API), before anything is reserved.

Like ``validate`` for the other endpoints: every field the gateway reads, translates or
forwards is checked against the type OpenAI documents, and a bad one is a 400 whose
``param`` names it (``input[2].content[0].text``). Fields that need responses stored by
the gateway (``previous_response_id``, ``conversation``, ``background``) are refused by
name: the gateway keeps no responses. Fields the gateway does not read are left to the
upstream (pass-through) or left out (translation).
"""

from __future__ import annotations

from ...errors import bad_request
from .validate import MAX_OUTPUT_TOKENS, SEED_RANGE, fail, is_int, number_in

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
REASONING_SUMMARIES = ("auto", "concise", "detailed")
TOOL_CHOICE_MODES = ("auto", "none", "required")
# Item types the gateway translates; other types go to pass-through upstreams only.
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning", "custom_tool_call",
              "custom_tool_call_output")
# What each content part type must carry (one of the names, as a string).
_PART_FIELDS = {
    "input_text": ("text",),
    "output_text": ("text",),
    "refusal": ("refusal",),
    "input_image": ("image_url", "file_id"),
    "input_file": ("file_data", "file_id", "file_url"),
}
# Fields that only make sense when the gateway stores responses, which it does not.
_STATEFUL = {
    "previous_response_id": "previous_response_id is not supported: the gateway does not store responses. "
                            "Send the whole conversation in input (with store: false).",
    "conversation": "conversation is not supported: the gateway does not store conversations. "
                    "Send the whole conversation in input.",
}


def _typed(holder: dict, name: str, kind: type, what: str, param: str | None = None) -> None:
    value = holder.get(name)
    if value is not None and not isinstance(value, kind):
        raise fail(param or name, what)


def _int_in(holder: dict, name: str, low: int, high: int, param: str | None = None) -> None:
    value = holder.get(name)
    if value is not None and not (is_int(value) and low <= value <= high):
        raise fail(param or name, f"must be an integer between {low} and {high}")


def _required_string(holder: dict, name: str, param: str) -> None:
    if not isinstance(holder.get(name), str):
        raise fail(param, "is required and must be a string")


def _content_parts(content: object, param: str) -> None:
    """A message's content: a string or a list of typed parts."""
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise fail(param, "must be a string or a list of content parts")
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise fail(where, "each content part must be an object with a type")
        fields = _PART_FIELDS.get(part["type"])
        if fields is None:
            raise fail(f"{where}.type", f"must be one of {', '.join(_PART_FIELDS)}")
        for name in fields:
            _typed(part, name, str, "must be a string", f"{where}.{name}")
        if not any(isinstance(part.get(name), str) for name in fields):
            if len(fields) == 1:
                raise fail(f"{where}.{fields[0]}", "is required and must be a string")
            raise fail(where, f"a {part['type']} part needs {' or '.join(fields)}")
        _typed(part, "detail", str, "must be a string", f"{where}.detail")


def _output_value(value: object, param: str) -> None:
    """A tool output: a string or a list of content parts."""
    if value is None or isinstance(value, str):
        return
    _content_parts(value, param)


def _item(item: object, param: str) -> None:
    if not isinstance(item, dict):
        raise fail(param, "each input item must be an object")
    kind = item.get("type")
    if kind is None and "role" in item:
        kind = "message"
    if not isinstance(kind, str):
        raise fail(f"{param}.type", "is required and must be a string")
    _typed(item, "id", str, "must be a string", f"{param}.id")
    if kind == "message":
        if item.get("role") not in MESSAGE_ROLES:
            raise fail(f"{param}.role", f"must be one of {', '.join(MESSAGE_ROLES)}")
        if "content" not in item:
            raise fail(f"{param}.content", "is required")
        _content_parts(item["content"], f"{param}.content")
    elif kind in ("function_call", "custom_tool_call"):
        _required_string(item, "call_id", f"{param}.call_id")
        _required_string(item, "name", f"{param}.name")
        _required_string(item, "arguments" if kind == "function_call" else "input",
                         f"{param}.{'arguments' if kind == 'function_call' else 'input'}")
    elif kind in ("function_call_output", "custom_tool_call_output"):
        _required_string(item, "call_id", f"{param}.call_id")
        if "output" not in item:
            raise fail(f"{param}.output", "is required")
        _output_value(item["output"], f"{param}.output")
    elif kind == "reasoning":
        summary = item.get("summary")
        if summary is not None:
            if not isinstance(summary, list):
                raise fail(f"{param}.summary", "must be a list of summary_text parts")
            for index, part in enumerate(summary):
                if not isinstance(part, dict) or not isinstance(part.get("text"), str):
                    raise fail(f"{param}.summary[{index}]", "must be an object with a text")
        _typed(item, "encrypted_content", str, "must be a string", f"{param}.encrypted_content")
    elif kind == "item_reference":
        raise fail(param, "item_reference is not supported: the gateway does not store responses")


def _input(body: dict) -> None:
    value = body.get("input")
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not value:
        raise fail("input", "is required and must be a string or a non-empty list of input items")
    for index, item in enumerate(value):
        _item(item, f"input[{index}]")


def _tools(body: dict) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise fail("tools", "must be a list")
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise fail(where, "each tool must be an object with a type")
        if tool["type"] in ("function", "custom"):
            if not isinstance(tool.get("name"), str) or not tool["name"]:
                raise fail(f"{where}.name", "is required and must be a non-empty string")
            _typed(tool, "description", str, "must be a string", f"{where}.description")
        if tool["type"] == "function":
            _typed(tool, "parameters", dict, "must be a JSON schema object", f"{where}.parameters")
            _typed(tool, "strict", bool, "must be true or false", f"{where}.strict")


def _tool_choice(body: dict) -> None:
    choice = body.get("tool_choice")
    if choice is None or choice in TOOL_CHOICE_MODES:
        return
    if isinstance(choice, dict) and isinstance(choice.get("type"), str):
        if choice["type"] in ("function", "custom"):
            if not isinstance(choice.get("name"), str) or not choice["name"]:
                raise fail("tool_choice.name", "is required and must be a non-empty string")
        return
    raise fail("tool_choice", "must be auto, none, required or an object with a type "
                               "(such as {\"type\": \"function\", \"name\": ...})")


def _reasoning(body: dict) -> None:
    reasoning = body.get("reasoning")
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise fail("reasoning", "must be an object")
    effort = reasoning.get("effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise fail("reasoning.effort", f"must be one of {', '.join(REASONING_EFFORTS)}")
    for name in ("summary", "generate_summary"):
        value = reasoning.get(name)
        if value is not None and value not in REASONING_SUMMARIES:
            raise fail(f"reasoning.{name}", f"must be one of {', '.join(REASONING_SUMMARIES)}")


def _text(body: dict) -> None:
    text = body.get("text")
    if text is None:
        return
    if not isinstance(text, dict):
        raise fail("text", "must be an object")
    _typed(text, "verbosity", str, "must be a string", "text.verbosity")
    fmt = text.get("format")
    if fmt is not None and not (isinstance(fmt, dict) and isinstance(fmt.get("type"), str)):
        raise fail("text.format", "must be an object with a type")


def check_responses(body: dict) -> None:
    """A Responses API body: 400 naming the first field that is wrong."""
    for name, message in _STATEFUL.items():
        if body.get(name) is not None:
            raise bad_request(message, name, code="unsupported_parameter")
    if body.get("background") is True:
        raise bad_request("background: true is not supported: the gateway does not store responses.",
                          "background", code="unsupported_parameter")
    for name in ("max_tokens", "max_completion_tokens"):
        if name in body:
            raise fail(name, "is not a Responses API field; use max_output_tokens")
    _input(body)
    _typed(body, "instructions", str, "must be a string")
    _int_in(body, "max_output_tokens", 1, MAX_OUTPUT_TOKENS)
    _int_in(body, "max_tool_calls", 1, MAX_OUTPUT_TOKENS)
    _int_in(body, "top_logprobs", 0, 20)
    _int_in(body, "seed", *SEED_RANGE)
    number_in(body, "temperature", 0, 2)
    number_in(body, "top_p", 0, 1)
    for name in ("stream", "store", "parallel_tool_calls", "background"):
        _typed(body, name, bool, "must be true or false")
    for name in ("prompt_cache_key", "user", "safety_identifier", "service_tier", "truncation",
                 "prompt_cache_retention"):
        _typed(body, name, str, "must be a string")
    for name in ("metadata", "stream_options", "prompt"):
        _typed(body, name, dict, "must be an object")
    include = body.get("include")
    if include is not None and not (isinstance(include, list) and all(isinstance(i, str) for i in include)):
        raise fail("include", "must be a list of strings")
    _tools(body)
    _tool_choice(body)
    _reasoning(body)
    _text(body)
