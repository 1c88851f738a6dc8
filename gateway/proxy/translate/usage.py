"""Providers' usage objects read into ``TokenUsage``, and written back in the client's format.

Every provider reports its tokens its own way; these functions read them into the
parts providers bill separately (fresh input, cache reads, cache writes of 5 minutes
and 1 hour, output of which reasoning) and write those parts back in the shape the
client's SDK expects, with ``cost`` in P beside them.

A count must be a JSON integer (an integral float such as ``12.0`` is taken as that
integer); anything else — a string, a fraction, ``true`` — makes the whole answer
malformed (``ValueError``), because guessing what a provider meant could bill a
customer for tokens nobody reported. Negative counts are passed on for the usage
checks to clamp and flag.
"""

from __future__ import annotations

import orjson

from ...accounting.pricing import TokenUsage

MICRO_PER_P = 1_000_000


def count(value: object) -> int:
    """One token count from a usage object: None is 0; a non-integer number or non-number is refused."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError("a token count is a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError("a token count is not an integer")


def _details(usage: dict, name: str) -> dict:
    details = usage.get(name)
    if details is None:
        return {}
    if not isinstance(details, dict):
        raise ValueError(f"{name} is not an object")
    return details


def from_anthropic(usage: object) -> TokenUsage | None:
    """An Anthropic usage object: ``input_tokens`` excludes the cache; writes split by TTL when reported.

    Without the ``cache_creation`` split, the whole ``cache_creation_input_tokens`` is
    a 5-minute write (the default TTL).
    """
    if not isinstance(usage, dict):
        return None
    creation = count(usage.get("cache_creation_input_tokens"))
    split = _details(usage, "cache_creation")
    if "ephemeral_5m_input_tokens" in split or "ephemeral_1h_input_tokens" in split:
        write_5m = count(split.get("ephemeral_5m_input_tokens"))
        write_1h = count(split.get("ephemeral_1h_input_tokens"))
    else:
        write_5m, write_1h = creation, 0
    return TokenUsage(
        input_tokens=count(usage.get("input_tokens")),
        cache_read_tokens=count(usage.get("cache_read_input_tokens")),
        cache_write_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        output_tokens=count(usage.get("output_tokens")),
    )


def merge_anthropic(start: dict | None, delta: dict) -> dict:
    """A stream's usage: ``message_start``'s counts, updated by those ``message_delta`` repeats.

    ``message_delta``'s counts are cumulative, so where both report a field the later wins.
    """
    merged = dict(start or {})
    merged.update({name: value for name, value in delta.items() if value is not None})
    return merged


def from_openai(usage: object) -> TokenUsage | None:
    """An OpenAI-compatible usage object, whichever provider's fields it carries.

    ``prompt_tokens`` is the whole prompt; the cached part of it is
    ``prompt_tokens_details.cached_tokens`` (OpenAI, Qwen, GLM, MiniMax, Gemini, newer
    Kimi), a top-level ``cached_tokens`` (Kimi) or ``prompt_cache_hit_tokens`` (DeepSeek,
    whose ``prompt_cache_miss_tokens`` is the rest). Cache writes are
    ``prompt_tokens_details.cache_creation_input_tokens`` (Qwen's explicit cache) or
    ``prompt_tokens_details.cache_write_tokens`` (OpenAI). Cached parts never
    exceed the prompt the provider says it read. ``completion_tokens_details.reasoning_tokens``
    is part of ``completion_tokens`` — except where a provider left it out, which shows as
    ``total_tokens`` counting it on top; then it is added to the output.
    """
    if not isinstance(usage, dict):
        return None
    prompt_details = _details(usage, "prompt_tokens_details")
    completion_details = _details(usage, "completion_tokens_details")
    if usage.get("prompt_tokens") is None and usage.get("prompt_cache_miss_tokens") is not None:
        prompt = count(usage.get("prompt_cache_hit_tokens")) + count(usage.get("prompt_cache_miss_tokens"))
    else:
        prompt = count(usage.get("prompt_tokens"))
    if prompt_details.get("cached_tokens") is not None:
        cached = count(prompt_details["cached_tokens"])
    elif usage.get("cached_tokens") is not None:
        cached = count(usage["cached_tokens"])
    else:
        cached = count(usage.get("prompt_cache_hit_tokens"))
    written = count(prompt_details.get("cache_creation_input_tokens", prompt_details.get("cache_write_tokens")))
    room = max(prompt, 0)
    cached = min(cached, room)
    written = min(written, room - max(cached, 0))
    output = count(usage.get("completion_tokens"))
    reasoning = count(completion_details.get("reasoning_tokens"))
    total = usage.get("total_tokens")
    if reasoning > 0 and total is not None and count(total) == prompt + output + reasoning:
        output += reasoning
    return TokenUsage(
        input_tokens=prompt - max(cached, 0) - max(written, 0),
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=output,
        reasoning_tokens=reasoning,
    )


def cost_p(cost_micro_p: int) -> orjson.Fragment:
    """``cost_micro_p`` as an exact JSON number of P (at most six decimals, no float noise)."""
    whole, micro = divmod(int(cost_micro_p), MICRO_PER_P)
    text = str(whole) if micro == 0 else f"{whole}.{micro:06d}".rstrip("0")
    return orjson.Fragment(text.encode())


def openai_usage(usage: TokenUsage, cost_micro_p: int | None = None) -> dict:
    """``usage`` in OpenAI's chat format: ``prompt_tokens`` is every input token, cache reads in its details."""
    out: dict = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.prompt_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    }
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    if cost_micro_p is not None:
        out["cost"] = cost_p(cost_micro_p)
    return out


def anthropic_usage(usage: TokenUsage, cost_micro_p: int | None = None) -> dict:
    """``usage`` in Anthropic's format: ``input_tokens`` is the uncached input, the cache parts beside it."""
    out: dict = {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens + usage.cache_write_1h_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }
    if usage.cache_write_tokens or usage.cache_write_1h_tokens:
        out["cache_creation"] = {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
        }
    if cost_micro_p is not None:
        out["cost"] = cost_p(cost_micro_p)
    return out


def from_responses(usage: object) -> TokenUsage | None:
    """A Responses API usage object: ``input_tokens`` is the whole prompt, its cached part in the details.

    ``output_tokens`` includes ``output_tokens_details.reasoning_tokens``. As with chat
    usage, the cached part never exceeds the prompt the provider says it read.
    """
    if not isinstance(usage, dict):
        return None
    prompt = count(usage.get("input_tokens"))
    cached = min(count(_details(usage, "input_tokens_details").get("cached_tokens")), max(prompt, 0))
    return TokenUsage(
        input_tokens=prompt - max(cached, 0),
        cache_read_tokens=cached,
        output_tokens=count(usage.get("output_tokens")),
        reasoning_tokens=count(_details(usage, "output_tokens_details").get("reasoning_tokens")),
    )


def responses_usage(usage: TokenUsage, cost_micro_p: int | None = None) -> dict:
    """``usage`` in the Responses API's format: ``input_tokens`` is every input token, cache reads in its details."""
    out: dict = {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.output_tokens,
    }
    if cost_micro_p is not None:
        out["cost"] = cost_p(cost_micro_p)
    return out
