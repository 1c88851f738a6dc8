"""The provider and model catalogue, loaded from the providers file (TOML).

Prices are integers in P per 1M tokens, which is the same number as micro-P per
token; a model without a price is listed but cannot be called. A model may also
price prompt-cache reads and writes, and have long-context tiers that price the whole
request once its prompt passes a size (accounting/pricing.py applies them).

A model is served over one or more channels: its own provider (the primary) and the
``fallbacks`` after it, each a provider with its own upstream model name, a
``priority`` (lower is tried first; equal priorities share traffic by ``weight``) and,
optionally, a ``cost``: what the operator pays on that channel, in the same fields as
the catalogue prices. Customers always pay the catalogue price, whichever channel served.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .config import ConfigError

WIRE_APIS = ("openai", "anthropic")
# Answers made up in-process (proxy/providers/simulated.py): needs no base_url or key.
SIMULATED_API = "simulated"
KINDS = ("chat", "embedding")
GROUPS = ("Chinese Models", "International Models")


@dataclass(frozen=True)
class Provider:
    """An upstream provider: where it lives, how it speaks, where its key comes from."""

    name: str
    display_name: str
    base_url: str
    api_key_env: str
    api: str
    # An OpenAI-wire provider whose API has /responses: Responses API requests pass through.
    responses: bool = False


@dataclass(frozen=True)
class PriceTier:
    """Prices for a request whose prompt (cache included) has more than ``above_input_tokens`` tokens.

    A cache price left out (None) is the model's base cache price scaled by this
    tier's input price over the base input price.
    """

    above_input_tokens: int
    input_price: int
    output_price: int
    cache_read_price: int | None = None
    cache_write_price: int | None = None
    cache_write_1h_price: int | None = None


CACHE_PRICES = ("cache_read_price", "cache_write_price", "cache_write_1h_price")
COST_FIELDS = ("input_price", "output_price", *CACHE_PRICES)
CHANNEL_FIELDS = frozenset({"provider", "upstream", "priority", "weight", "cost"})
MAX_WEIGHT = 1_000_000


@dataclass(frozen=True)
class Cost:
    """What the operator pays a channel, P per 1M tokens (micro-P per token), like the catalogue prices.

    A cache price left out is the input price.
    """

    input_price: int
    output_price: int
    cache_read_price: int | None = None
    cache_write_price: int | None = None
    cache_write_1h_price: int | None = None


@dataclass(frozen=True)
class Channel:
    """One way to serve a model: a provider, the model's name there, its order and share, its cost."""

    provider: str
    upstream: str
    priority: int = 0
    weight: int = 1
    cost: Cost | None = None

    @cached_property
    def id(self) -> str:
        """The channel's name in the request log, the breaker table and the console."""
        return f"{self.provider}:{self.upstream}"


@dataclass(frozen=True)
class Model:
    """A public model id and what serving it costs."""

    id: str
    provider: str
    upstream: str
    kind: str
    group: str
    input_price: int | None
    output_price: int | None
    max_output_tokens: int
    context_window: int
    # Operators may switch a model off without removing it (accounting/catalog_overrides.py).
    enabled: bool = True
    # The larger window a request opens with Anthropic's long-context beta, where the model has one.
    long_context_window: int | None = None
    # Prompt-cache prices; None falls back to input_price (accounting/pricing.py).
    cache_read_price: int | None = None
    cache_write_price: int | None = None  # the default (5-minute) lifetime
    cache_write_1h_price: int | None = None
    # Long-context tiers, sorted by above_input_tokens.
    tiers: tuple[PriceTier, ...] = ()
    # Other ids clients send for this same upstream model (dated and dashed forms).
    aliases: tuple[str, ...] = ()
    # What the operator pays the primary channel; the fallbacks carry their own.
    cost: Cost | None = None
    fallbacks: tuple[Channel, ...] = ()

    @property
    def priced(self) -> bool:
        return self.input_price is not None and self.output_price is not None

    @cached_property
    def channels(self) -> tuple[Channel, ...]:
        """The primary channel and the fallbacks, in the providers file's order."""
        return (Channel(self.provider, self.upstream, 0, 1, self.cost), *self.fallbacks)


@dataclass(frozen=True)
class Catalog:
    """Providers and models by id, in file order; ``aliases`` maps each alias to its model's id."""

    providers: dict[str, Provider]
    models: dict[str, Model]
    aliases: dict[str, str] = field(default_factory=dict)

    def provider_of(self, model: Model) -> Provider:
        return self.providers[model.provider]

    def resolve(self, model_id: str) -> Model | None:
        """The model a client's id names: its own id or one of its aliases."""
        model = self.models.get(model_id)
        if model is None and model_id in self.aliases:
            model = self.models.get(self.aliases[model_id])
        return model


def _price(where: str, entry: dict, name: str) -> int | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"PROVIDERS_FILE: {where}.{name} must be a non-negative integer (P per 1M tokens)")
    return value


def _tokens(where: str, entry: dict, name: str) -> int | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"PROVIDERS_FILE: {where}.{name} must be a positive whole number of tokens")
    return value


def _tiers(where: str, entry: dict, priced: bool) -> tuple[PriceTier, ...]:
    raw = entry.get("tiers")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError(f"PROVIDERS_FILE: {where}.tiers must be a list of [[models.tiers]] tables")
    if raw and not priced:
        raise ConfigError(f"PROVIDERS_FILE: {where}.tiers need the model's own input_price and output_price")
    tiers = []
    for index, tier in enumerate(raw):
        at = f"{where}.tiers[{index}]"
        above = _tokens(at, tier, "above_input_tokens")
        if above is None:
            raise ConfigError(f"PROVIDERS_FILE: {at}.above_input_tokens is missing")
        prices = {name: _price(at, tier, name) for name in ("input_price", "output_price", *CACHE_PRICES)}
        for required in ("input_price", "output_price"):
            if prices[required] is None:
                raise ConfigError(f"PROVIDERS_FILE: {at}.{required} is missing")
        tiers.append(PriceTier(above_input_tokens=above, **prices))
    tiers.sort(key=lambda t: t.above_input_tokens)
    for lower, upper in zip(tiers, tiers[1:]):
        if lower.above_input_tokens == upper.above_input_tokens:
            raise ConfigError(f"PROVIDERS_FILE: {where}.tiers has above_input_tokens = {upper.above_input_tokens} twice")
    return tuple(tiers)


def parse_catalog(data: dict) -> Catalog:
    """Validate a parsed providers file and build the catalogue."""
    providers: dict[str, Provider] = {}
    for name, entry in (data.get("providers") or {}).items():
        where = f"providers.{name}"
        simulated = entry.get("api") == SIMULATED_API
        for required in ("api",) if simulated else ("base_url", "api_key_env", "api"):
            if not isinstance(entry.get(required), str) or not entry[required]:
                raise ConfigError(f"PROVIDERS_FILE: {where}.{required} is missing")
        if entry["api"] not in (*WIRE_APIS, SIMULATED_API):
            raise ConfigError(f"PROVIDERS_FILE: {where}.api must be one of {', '.join((*WIRE_APIS, SIMULATED_API))}")
        responses = entry.get("responses", False)
        if not isinstance(responses, bool):
            raise ConfigError(f"PROVIDERS_FILE: {where}.responses must be true or false")
        if responses and entry["api"] != "openai":
            raise ConfigError(f"PROVIDERS_FILE: {where}.responses is only for providers whose api is openai")
        providers[name] = Provider(
            name=name,
            display_name=entry.get("display_name", name.title()),
            base_url=str(entry.get("base_url") or "").rstrip("/"),
            api_key_env=str(entry.get("api_key_env") or ""),
            api=entry["api"],
            responses=responses,
        )
    models: dict[str, Model] = {}
    for index, entry in enumerate(data.get("models") or []):
        where = f"models[{index}]"
        for required in ("id", "provider", "upstream"):
            if not isinstance(entry.get(required), str) or not entry[required]:
                raise ConfigError(f"PROVIDERS_FILE: {where}.{required} is missing")
        if entry["provider"] not in providers:
            raise ConfigError(f"PROVIDERS_FILE: {where}.provider {entry['provider']!r} is not defined")
        if entry["id"] in models:
            raise ConfigError(f"PROVIDERS_FILE: model id {entry['id']!r} appears twice")
        kind = entry.get("kind", "chat")
        if kind not in KINDS:
            raise ConfigError(f"PROVIDERS_FILE: {where}.kind must be one of {', '.join(KINDS)}")
        group = entry.get("group", "International Models")
        if group not in GROUPS:
            raise ConfigError(f"PROVIDERS_FILE: {where}.group must be one of {', '.join(GROUPS)}")
        input_price = _price(where, entry, "input_price")
        output_price = _price(where, entry, "output_price")
        models[entry["id"]] = Model(
            id=entry["id"],
            provider=entry["provider"],
            upstream=entry["upstream"],
            kind=kind,
            group=group,
            input_price=input_price,
            output_price=output_price,
            max_output_tokens=int(entry.get("max_output_tokens", 8192)),
            context_window=int(entry.get("context_window", 128000)),
            long_context_window=_tokens(where, entry, "long_context_window"),
            **{name: _price(where, entry, name) for name in CACHE_PRICES},
            tiers=_tiers(where, entry, input_price is not None and output_price is not None),
            aliases=_aliases(where, entry),
            cost=_cost(f"{where}.cost", entry.get("cost")),
            fallbacks=_fallbacks(where, entry, providers),
        )
    if not models:
        raise ConfigError("PROVIDERS_FILE: defines no models")
    return Catalog(providers=providers, models=models, aliases=_alias_map(models))


def _cost(where: str, raw: object) -> Cost | None:
    """A ``cost = { input_price = …, output_price = … }`` table, or None where there is none."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"PROVIDERS_FILE: {where} must be a table of prices (input_price, output_price, …)")
    unknown = sorted(set(raw) - set(COST_FIELDS))
    if unknown:
        raise ConfigError(f"PROVIDERS_FILE: {where}.{unknown[0]} is not a price (use {', '.join(COST_FIELDS)})")
    prices = {name: _price(where, raw, name) for name in COST_FIELDS}
    for required in ("input_price", "output_price"):
        if prices[required] is None:
            raise ConfigError(f"PROVIDERS_FILE: {where}.{required} is missing")
    return Cost(**prices)


def _whole(where: str, entry: dict, name: str, default: int, low: int, high: int) -> int:
    value = entry.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"PROVIDERS_FILE: {where}.{name} must be a whole number from {low} to {high}")
    return value


def _fallbacks(where: str, entry: dict, providers: dict[str, Provider]) -> tuple[Channel, ...]:
    """The model's ``fallbacks``: each a provider that is defined, and no channel twice.

    A fallback without a ``priority`` comes after everything listed before it (its
    place in the list, counting the primary as 0).
    """
    raw = entry.get("fallbacks", [])
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ConfigError(f"PROVIDERS_FILE: {where}.fallbacks must be a list of {{ provider = …, upstream = … }} tables")
    seen = {(entry["provider"], entry["upstream"])}
    channels = []
    for index, item in enumerate(raw):
        at = f"{where}.fallbacks[{index}]"
        unknown = sorted(set(item) - CHANNEL_FIELDS)
        if unknown:
            raise ConfigError(f"PROVIDERS_FILE: {at}.{unknown[0]} is not a channel field "
                              f"(use {', '.join(sorted(CHANNEL_FIELDS))})")
        for required in ("provider", "upstream"):
            if not isinstance(item.get(required), str) or not item[required].strip():
                raise ConfigError(f"PROVIDERS_FILE: {at}.{required} is missing")
        if item["provider"] not in providers:
            raise ConfigError(f"PROVIDERS_FILE: {at}.provider {item['provider']!r} is not defined")
        pair = (item["provider"], item["upstream"])
        if pair in seen:
            raise ConfigError(f"PROVIDERS_FILE: {at} repeats the channel {item['provider']}:{item['upstream']}")
        seen.add(pair)
        channels.append(Channel(
            provider=item["provider"],
            upstream=item["upstream"],
            priority=_whole(at, item, "priority", index + 1, 0, 1000),
            weight=_whole(at, item, "weight", 1, 1, MAX_WEIGHT),
            cost=_cost(f"{at}.cost", item.get("cost")),
        ))
    return tuple(channels)


def _aliases(where: str, entry: dict) -> tuple[str, ...]:
    raw = entry.get("aliases", [])
    if not isinstance(raw, list) or not all(isinstance(a, str) and a.strip() == a and a for a in raw):
        raise ConfigError(f"PROVIDERS_FILE: {where}.aliases must be a list of model ids")
    return tuple(raw)


def _alias_map(models: dict[str, Model]) -> dict[str, str]:
    """Every alias → its model's id; an alias is unique and never another model's id."""
    aliases: dict[str, str] = {}
    for model in models.values():
        for alias in model.aliases:
            if alias in models:
                raise ConfigError(f"PROVIDERS_FILE: alias {alias!r} of {model.id!r} is a model id")
            if alias in aliases:
                raise ConfigError(f"PROVIDERS_FILE: alias {alias!r} is given to {aliases[alias]!r} and {model.id!r}")
            aliases[alias] = model.id
    return aliases


def load_catalog(path: Path) -> Catalog:
    """Read and validate the providers file at ``path``."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"PROVIDERS_FILE: {path} is not valid TOML ({exc})") from None
    return parse_catalog(data)
