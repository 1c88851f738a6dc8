"""Upstream usage is counted, never trusted.

An upstream's token counts decide what a customer pays, so each one is checked against
what the gateway itself knows before it is charged: a count below zero is zero, output
beyond the bound the gateway sent upstream is that bound, input beyond the context
window the request had is that window. Input far above the gateway's own estimate is
believed (images, tools and provider-side prompts make estimates loose) but flagged for
an operator to review. Every such row carries its flags into the request log.
"""

from __future__ import annotations

from dataclasses import dataclass

# Input this many times the estimate (plus a margin for small prompts) is worth a look.
FAR_ABOVE_ESTIMATE = 4
ESTIMATE_MARGIN = 2048


@dataclass(frozen=True, slots=True)
class CheckedUsage:
    """Token counts fit to be charged, and why they differ from what was reported."""

    input_tokens: int
    output_tokens: int
    flags: tuple[str, ...] = ()


def check_usage(
    input_tokens: int, output_tokens: int, *, output_bound: int, context_window: int, estimated_input: int
) -> CheckedUsage:
    """The reported counts clamped to what the request could have used, with flags."""
    flags = []
    if input_tokens < 0:
        flags.append("negative_input")
        input_tokens = 0
    if output_tokens < 0:
        flags.append("negative_output")
        output_tokens = 0
    if output_tokens > output_bound:
        flags.append("output_above_bound")
        output_tokens = output_bound
    if input_tokens > context_window:
        flags.append("input_above_window")
        input_tokens = context_window
    if input_tokens > FAR_ABOVE_ESTIMATE * estimated_input + ESTIMATE_MARGIN:
        flags.append("input_far_above_estimate")
    return CheckedUsage(input_tokens, output_tokens, tuple(flags))
