"""A worked example of how a cached request is billed, taken from the live catalogue's prices.

Prices are whole P per 1M tokens, so tokens × price is the cost in micro-P exactly: the
example needs no rounding, and it is what the gateway charges for the same usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..money import MICRO_PER_P

PREFERRED_MODEL = "claude-sonnet-4.5"
# An agent's turn: a little fresh input, a long prompt read from the cache, a short answer.
EXAMPLE_TOKENS = {"input": 100, "cache_read": 10_000, "output": 50}


@dataclass(frozen=True)
class CacheExample:
    """One request's parts, each with its tokens, price and cost in micro-P."""

    model: str
    lines: list[tuple[str, int, int, int]]  # label, tokens, P per 1M, micro-P
    cost_micro_p: int
    uncached_micro_p: int

    @property
    def usage_cost(self) -> str:
        """The cost as ``usage.cost`` carries it: P with at most six decimals."""
        text = f"{Decimal(self.cost_micro_p) / MICRO_PER_P:.6f}".rstrip("0").rstrip(".")
        return text or "0"


def _cached_model(models: list[dict]) -> dict | None:
    candidates = [m for m in models if m.get("kind") == "chat" and m.get("priced")
                  and isinstance(m.get("cache_read_price"), int) and isinstance(m.get("input_price"), int)
                  and isinstance(m.get("output_price"), int) and m["cache_read_price"] < m["input_price"]]
    preferred = [m for m in candidates if m["id"] == PREFERRED_MODEL]
    return (preferred or candidates or [None])[0]


def cache_example(models: list[dict]) -> CacheExample | None:
    """The example for a chat model whose cache reads cost less than input, or None if none does."""
    model = _cached_model(models)
    if model is None:
        return None
    parts = [("Fresh input", EXAMPLE_TOKENS["input"], model["input_price"]),
             ("Cache read", EXAMPLE_TOKENS["cache_read"], model["cache_read_price"]),
             ("Output", EXAMPLE_TOKENS["output"], model["output_price"])]
    lines = [(label, tokens, price, tokens * price) for label, tokens, price in parts]
    uncached = (EXAMPLE_TOKENS["input"] + EXAMPLE_TOKENS["cache_read"]) * model["input_price"] \
        + EXAMPLE_TOKENS["output"] * model["output_price"]
    return CacheExample(model["id"], lines, sum(line[3] for line in lines), uncached)
