"""What tokens cost: the parts of a request's usage and their prices, in integer micro-P.

Prices are P per 1M tokens, so a price is also micro-P per token.

The whole request is priced at one tier: the last of the model's long-context tiers
whose ``above_input_tokens`` its prompt (cache reads and writes included) exceeds, or
the base prices. A cache price the catalogue leaves out is the input price at base
prices; inside a tier it is the model's base cache price scaled by the tier's input
price over the base input price, rounded down (in the customer's favour).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import Cost, Model, PriceTier

# How deep ``wants_1h_cache`` looks into a request body; real bodies nest a few levels.
MAX_BODY_DEPTH = 64
# An output price of zero (embeddings) leaves no bound on output tokens.
UNBOUNDED_OUTPUT = 2**62


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


@dataclass(frozen=True, slots=True)
class Prices:
    """The effective prices (P per 1M tokens) one request is charged at."""

    tier: int | None  # the applied tier's above_input_tokens; None at base prices
    input: int
    output: int
    cache_read: int
    cache_write: int
    cache_write_1h: int


def _require_price(model: Model) -> tuple[int, int]:
    if model.input_price is None or model.output_price is None:
        raise ValueError(f"model {model.id} has no price")
    return model.input_price, model.output_price


def _tier_for(model: Model, prompt_tokens: int) -> PriceTier | None:
    chosen = None
    for tier in model.tiers:  # sorted by above_input_tokens
        if prompt_tokens > tier.above_input_tokens:
            chosen = tier
    return chosen


def _base_cache_price(model: Model, name: str) -> int:
    value = getattr(model, name)
    return model.input_price if value is None else value


def _tier_cache_price(model: Model, tier: PriceTier, name: str) -> int:
    value = getattr(tier, name)
    if value is not None:
        return value
    base_input = model.input_price
    if not base_input:
        return tier.input_price  # nothing to scale by: the tier's input price, like the base fallback
    return _base_cache_price(model, name) * tier.input_price // base_input


def prices_at(model: Model, prompt_tokens: int) -> Prices:
    """The prices a request of ``prompt_tokens`` prompt tokens pays, tier and fallbacks applied.

    Raises ``ValueError`` for a model without a price.
    """
    input_price, output_price = _require_price(model)
    tier = _tier_for(model, int(prompt_tokens))
    if tier is None:
        return Prices(None, input_price, output_price, _base_cache_price(model, "cache_read_price"),
                      _base_cache_price(model, "cache_write_price"), _base_cache_price(model, "cache_write_1h_price"))
    return Prices(tier.above_input_tokens, tier.input_price, tier.output_price,
                  _tier_cache_price(model, tier, "cache_read_price"), _tier_cache_price(model, tier, "cache_write_price"),
                  _tier_cache_price(model, tier, "cache_write_1h_price"))


def price_tier(model: Model, prompt_tokens: int) -> int | None:
    """The ``above_input_tokens`` of the tier a prompt of ``prompt_tokens`` is priced at; None at base prices."""
    tier = _tier_for(model, int(prompt_tokens))
    return None if tier is None else tier.above_input_tokens


def _input_cost(prices: Prices, usage: TokenUsage) -> int:
    return (int(usage.input_tokens) * prices.input + int(usage.cache_read_tokens) * prices.cache_read
            + int(usage.cache_write_tokens) * prices.cache_write
            + int(usage.cache_write_1h_tokens) * prices.cache_write_1h)


def cost_micro_p(model: Model, usage: TokenUsage) -> int:
    """The cost in micro-P: each part of ``usage`` at its price, at the tier of the whole prompt.

    Raises ``ValueError`` for a model without a price (it must be refused earlier).
    """
    prices = prices_at(model, usage.prompt_tokens)
    return _input_cost(prices, usage) + int(usage.output_tokens) * prices.output


def upstream_cost_micro_p(cost: Cost | None, usage: TokenUsage) -> int | None:
    """What a channel charges the operator for ``usage`` at its ``cost`` prices; None where it has none.

    A cache price the channel leaves out is its input price. Channels have no tiers.
    """
    if cost is None:
        return None

    def price(value: int | None) -> int:
        return cost.input_price if value is None else value

    prices = Prices(None, cost.input_price, cost.output_price, price(cost.cache_read_price),
                    price(cost.cache_write_price), price(cost.cache_write_1h_price))
    return _input_cost(prices, usage) + int(usage.output_tokens) * prices.output


def saved_micro_p(model: Model, usage: TokenUsage) -> int:
    """What prompt caching saved on this request, in micro-P (negative when write premiums outweigh reads).

    The whole prompt at the (tier's) plain input price, minus its parts at their prices.
    """
    prices = prices_at(model, usage.prompt_tokens)
    return int(usage.prompt_tokens) * prices.input - _input_cost(prices, usage)


def worst_case_micro_p(model: Model, prompt_tokens: int, output_tokens: int, cache_write_1h: bool = False) -> int:
    """The most a request of ``prompt_tokens`` and at most ``output_tokens`` can cost, in micro-P.

    Every prompt token at the highest price a prompt token can have at the prompt's tier
    (input, cache read, the default cache write, and the 1-hour write when
    ``cache_write_1h``), plus every output token.
    """
    prices = prices_at(model, prompt_tokens)
    return int(prompt_tokens) * _highest_prompt_price(prices, cache_write_1h) + int(output_tokens) * prices.output


def _highest_prompt_price(prices: Prices, cache_write_1h: bool) -> int:
    candidates = [prices.input, prices.cache_read, prices.cache_write]
    if cache_write_1h:
        candidates.append(prices.cache_write_1h)
    return max(candidates)


def affordable_output_tokens(model: Model, prompt_tokens: int, amount_micro_p: int, cache_write_1h: bool = False) -> int:
    """The most output tokens ``amount_micro_p`` pays for on top of the worst-case prompt."""
    prices = prices_at(model, prompt_tokens)
    left = amount_micro_p - worst_case_micro_p(model, prompt_tokens, 0, cache_write_1h)
    if prices.output == 0:
        return UNBOUNDED_OUTPUT if left >= 0 else 0
    return max(0, left // prices.output)


def wants_1h_cache(body: object) -> bool:
    """True when a request body marks something for the 1-hour cache: ``"cache_control": {"ttl": "1h"}``.

    Walks the body's dicts and lists (no deeper than ``MAX_BODY_DEPTH``) without recursion.
    """
    stack: list[tuple[object, int]] = [(body, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_BODY_DEPTH:
            continue
        if isinstance(node, dict):
            control = node.get("cache_control")
            if isinstance(control, dict) and control.get("ttl") == "1h":
                return True
            stack.extend((value, depth + 1) for value in node.values() if isinstance(value, (dict, list)))
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node if isinstance(value, (dict, list)))
    return False
