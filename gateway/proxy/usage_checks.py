"""Upstream usage is counted, never trusted.

An upstream's token counts decide what a customer pays, so each one is checked against
what the gateway itself knows before it is charged: a part below zero is zero, output
beyond the bound the gateway sent upstream is that bound, reasoning is never more than
the output it is part of, and a prompt beyond the context window the request had is cut
to that window — fresh input first, then 1-hour and 5-minute cache writes, then cache
reads, so what is cut is the dearest input and the customer is never charged for tokens
the window could not hold. A prompt far above the gateway's own estimate is believed
(images, tools and provider-side prompts make estimates loose) but flagged for an
operator to review. Every such row carries its flags into the request log.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..accounting.pricing import TokenUsage

# A prompt this many times the estimate (plus a margin for small prompts) is worth a look.
FAR_ABOVE_ESTIMATE = 4
ESTIMATE_MARGIN = 2048
# Each part's flag when the upstream reported it below zero.
_NEGATIVE_FLAGS = {
    "input_tokens": "negative_input",
    "cache_read_tokens": "negative_cache_read",
    "cache_write_tokens": "negative_cache_write",
    "cache_write_1h_tokens": "negative_cache_write_1h",
    "output_tokens": "negative_output",
    "reasoning_tokens": "negative_reasoning",
}
# The order a prompt beyond the window is cut in.
_CUT_ORDER = ("input_tokens", "cache_write_1h_tokens", "cache_write_tokens", "cache_read_tokens")


@dataclass(frozen=True, slots=True)
class CheckedUsage:
    """Token counts fit to be charged, and why they differ from what was reported."""

    usage: TokenUsage
    flags: tuple[str, ...] = ()

    @property
    def input_tokens(self) -> int:
        """Every input token charged (the whole prompt, cache parts included)."""
        return self.usage.prompt_tokens

    @property
    def output_tokens(self) -> int:
        """Every output token charged."""
        return self.usage.output_tokens


def check_usage(
    usage: TokenUsage, *, output_bound: int, context_window: int, estimated_input: int
) -> CheckedUsage:
    """The reported usage clamped to what the request could have used, with flags."""
    flags = []
    parts = {name: getattr(usage, name) for name in _NEGATIVE_FLAGS}
    for name, flag in _NEGATIVE_FLAGS.items():
        if parts[name] < 0:
            flags.append(flag)
            parts[name] = 0
    if parts["output_tokens"] > output_bound:
        flags.append("output_above_bound")
        parts["output_tokens"] = output_bound
    if parts["reasoning_tokens"] > parts["output_tokens"]:
        flags.append("reasoning_above_output")
        parts["reasoning_tokens"] = parts["output_tokens"]
    excess = sum(parts[name] for name in _CUT_ORDER) - context_window
    if excess > 0:
        flags.append("input_above_window")
        for name in _CUT_ORDER:
            cut = min(excess, parts[name])
            parts[name] -= cut
            excess -= cut
    checked = replace(usage, **parts)
    if checked.prompt_tokens > FAR_ABOVE_ESTIMATE * estimated_input + ESTIMATE_MARGIN:
        flags.append("input_far_above_estimate")
    return CheckedUsage(checked, tuple(flags))
