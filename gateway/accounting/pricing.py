"""What tokens cost: the parts of a request's usage and their prices, in integer micro-P.

Prices are P per 1M tokens, so a price is also micro-P per token.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import Model


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """One request's tokens, split the way providers bill them."""

    input_tokens: int = 0  # fresh input: neither read from nor written to a prompt cache
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # written to the cache with the default (5-minute) lifetime
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0  # every output token, reasoning included
    reasoning_tokens: int = 0  # the part of output_tokens spent reasoning

    @property
    def prompt_tokens(self) -> int:
        """Every input token, cached or not."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens + self.cache_write_1h_tokens


def cost_micro_p(model: Model, input_tokens: int, output_tokens: int) -> int:
    """The cost in micro-P: prices are P per 1M tokens, i.e. micro-P per token.

    Raises ``ValueError`` for a model without a price (it must be refused earlier).
    """
    if model.input_price is None or model.output_price is None:
        raise ValueError(f"model {model.id} has no price")
    return int(input_tokens) * model.input_price + int(output_tokens) * model.output_price


def affordable_output_tokens(model: Model, input_tokens: int, amount_micro_p: int) -> int:
    """The most output tokens ``amount_micro_p`` pays for after ``input_tokens`` of input."""
    if model.input_price is None or model.output_price is None:
        raise ValueError(f"model {model.id} has no price")
    left = amount_micro_p - int(input_tokens) * model.input_price
    if model.output_price == 0:
        return 2**62 if left >= 0 else 0
    return max(0, left // model.output_price)
