"""The operator console's channel routes, under ``/internal/admin``.

Channels per model with their live health (breaker state, last error, success rate and
p50/p95 latency over the last hour), switching a channel off and on for every process,
a one-token test request over a channel, provider keys entered in the console
(encrypted, masked, rotated without restart), and the margin per day, model and channel.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta

import aiohttp
from aiohttp import web

from ..accounting import channel_health, margin
from ..accounting.provider_keys import MAX_KEY_LENGTH, MIN_KEY_LENGTH, KeyEntryOff
from ..appkeys import BREAKERS, CATALOG, HTTP, PROVIDER_KEYS, SETTINGS
from ..catalog import Catalog, Channel, Model
from ..errors import ApiError
from ..proxy.call import CHAT, EMBEDDINGS, plan_request
from ..proxy.failover import routes_for
from ..proxy.providers import read_json, send
from .http import HttpError, database, json_body, json_response, query_date_range, query_tz

HEALTH_WINDOW = timedelta(hours=1)
TEST_TIMEOUT_SECONDS = 30
TEST_BODY = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
TEST_EMBEDDING = {"input": "ping"}


def _cost_dict(channel: Channel) -> dict | None:
    cost = channel.cost
    if cost is None:
        return None
    return {"input_price": cost.input_price, "output_price": cost.output_price,
            "cache_read_price": cost.cache_read_price, "cache_write_price": cost.cache_write_price,
            "cache_write_1h_price": cost.cache_write_1h_price}


def _env_key(request: web.Request, env_name: str) -> str | None:
    return request.config_dict[SETTINGS].upstream_keys.get(env_name) or os.environ.get(env_name) or None


async def list_channels(request: web.Request) -> web.Response:
    """Every model's channels in the providers file's order, each with its live health."""
    catalog: Catalog = request.config_dict[CATALOG]
    breakers = request.config_dict[BREAKERS]
    ids = sorted({channel.id for model in catalog.models.values() for channel in model.channels})
    stats = await database(request).read(channel_health.attempt_stats, ids, HEALTH_WINDOW)
    models = []
    for model in catalog.models.values():
        channels = []
        for channel in model.channels:
            seen = stats[channel.id]
            last_error, last_error_at = breakers.last_error(channel.id)
            channels.append({
                "id": channel.id, "provider": channel.provider, "upstream": channel.upstream,
                "priority": channel.priority, "weight": channel.weight, "cost": _cost_dict(channel),
                "state": breakers.state(channel.id), "last_error": last_error, "last_error_at": last_error_at,
                "attempts": seen.attempts, "success_rate": seen.success_rate,
                "p50_latency_ms": seen.p50_ms, "p95_latency_ms": seen.p95_ms,
            })
        models.append({"id": model.id, "enabled": model.enabled, "channels": channels})
    return json_response({"window_seconds": int(HEALTH_WINDOW.total_seconds()), "models": models})


def _known_channel(catalog: Catalog, channel_id: object) -> tuple[Model, Channel]:
    if not isinstance(channel_id, str):
        raise HttpError(422, "channel must be a channel id (provider:upstream model).", "invalid_field")
    for model in catalog.models.values():
        for channel in model.channels:
            if channel.id == channel_id:
                return model, channel
    raise HttpError(404, "No channel with this id in the catalogue.", "channel_not_found", "not_found_error")


async def switch_channel(request: web.Request) -> web.Response:
    """Switch a channel off (never tried) or on (its breaker closed) in every gateway process."""
    data = await json_body(request, {"channel", "enabled"})
    _, channel = _known_channel(request.config_dict[CATALOG], data.get("channel"))
    enabled = data.get("enabled")
    if not isinstance(enabled, bool):
        raise HttpError(422, "enabled must be true or false.", "invalid_field")
    row = await database(request).transaction(channel_health.set_disabled, channel.id, not enabled)
    breakers = request.config_dict[BREAKERS]
    breakers.set_disabled(row)
    return json_response({"channel": channel.id, "state": breakers.state(channel.id)})


async def test_channel(request: web.Request) -> web.Response:
    """Send a one-token request over one channel; its answer is told to the channel's breaker.

    Nothing is charged to anyone; the channel's provider key never appears in the answer.
    """
    data = await json_body(request, {"channel"})
    catalog = request.config_dict[CATALOG]
    model, channel = _known_channel(catalog, data.get("channel"))
    keys = request.config_dict[PROVIDER_KEYS]
    endpoint, body = (EMBEDDINGS, TEST_EMBEDDING) if model.kind == "embedding" else (CHAT, TEST_BODY)
    routes = [route for route in routes_for(
        catalog, model, endpoint, lambda p: _env_key(request, p.api_key_env) or keys.get(p.name))
        if route.channel.id == channel.id]
    if not routes:
        return json_response({"channel": channel.id, "ok": False, "status": None, "latency_ms": None,
                              "message": f"provider {channel.provider} has no key: set it in the environment or here"})
    route = routes[0]
    breakers = request.config_dict[BREAKERS]
    started = time.perf_counter()
    try:
        plan = plan_request(endpoint, dict(body, model=model.id), route.model, route.provider, route.secret, None)
        timeout = aiohttp.ClientTimeout(total=TEST_TIMEOUT_SECONDS)
        response = await send(request.config_dict[HTTP], route.provider.name, plan.url, plan.headers, plan.payload,
                              timeout, route.secret, upstream_anthropic=plan.upstream_api == "anthropic")
        await read_json(response, route.provider.name)
    except ApiError as error:
        breakers.failed(channel.id, error.error_class)
        return json_response({"channel": channel.id, "ok": False, "status": error.status,
                              "latency_ms": int((time.perf_counter() - started) * 1000), "message": error.message})
    except asyncio.TimeoutError:
        breakers.failed(channel.id, "upstream_timeout")
        return json_response({"channel": channel.id, "ok": False, "status": 504, "latency_ms": None,
                              "message": "no answer in time"})
    breakers.succeeded(channel.id)
    return json_response({"channel": channel.id, "ok": True, "status": 200,
                          "latency_ms": int((time.perf_counter() - started) * 1000), "message": "answered"})


async def list_provider_keys(request: web.Request) -> web.Response:
    """Every provider's key source (environment, console, none) and the console key masked."""
    catalog: Catalog = request.config_dict[CATALOG]
    keys = request.config_dict[PROVIDER_KEYS]
    providers = []
    for provider in catalog.providers.values():
        hint = keys.hint(provider.name)
        source = "environment" if _env_key(request, provider.api_key_env) else "console" if hint else "none"
        providers.append({"provider": provider.name, "display_name": provider.display_name,
                          "api_key_env": provider.api_key_env, "source": source,
                          "console_key": hint[0] if hint else None, "console_key_set_at": hint[1] if hint else None})
    return json_response({"key_entry": keys.entry_on, "providers": providers})


def _known_provider(request: web.Request) -> str:
    name = request.match_info["provider"]
    if name not in request.config_dict[CATALOG].providers:
        raise HttpError(404, "No provider with this name in the catalogue.", "provider_not_found", "not_found_error")
    return name


async def put_provider_key(request: web.Request) -> web.Response:
    """Store a provider key entered in the console (encrypted); in force everywhere within a poll."""
    name = _known_provider(request)
    data = await json_body(request, {"key"})
    secret = data.get("key")
    if not isinstance(secret, str) or not MIN_KEY_LENGTH <= len(secret.strip()) <= MAX_KEY_LENGTH \
            or any(c.isspace() or not c.isprintable() for c in secret.strip()):
        raise HttpError(422, f"key must be {MIN_KEY_LENGTH} to {MAX_KEY_LENGTH} printable characters without spaces.",
                        "invalid_field")
    try:
        hint, set_at = await request.config_dict[PROVIDER_KEYS].set(name, secret.strip())
    except KeyEntryOff:
        raise HttpError(409, "Console key entry is switched off: give every gateway process the same SECRETS_KEY.",
                        "key_entry_off") from None
    return json_response({"provider": name, "console_key": hint, "console_key_set_at": set_at})


async def delete_provider_key(request: web.Request) -> web.Response:
    """Forget a provider's console key (the environment's, if any, stays in force)."""
    name = _known_provider(request)
    if not await request.config_dict[PROVIDER_KEYS].remove(name):
        raise HttpError(404, "This provider has no key entered in the console.", "key_not_found", "not_found_error")
    return web.Response(status=204)


async def margin_report(request: web.Request) -> web.Response:
    """Revenue, upstream cost and margin per local day, model and channel (``.csv`` for a file)."""
    start, end = query_date_range(request)
    tz = query_tz(request)
    rows = await database(request).read(margin.margin_rows, start, end, tz)
    if request.path.endswith(".csv"):
        return web.Response(text=margin.margin_csv(rows), content_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="margin-{start.isoformat()}-{end.isoformat()}.csv"'})
    return json_response({"start": start.isoformat(), "end": end.isoformat(), "tz": tz.key, "rows": rows})


def add_routes(app: web.Application) -> None:
    """Register the channel routes on the admin sub-application."""
    app.router.add_get("/channels", list_channels)
    app.router.add_post("/channels/switch", switch_channel)
    app.router.add_post("/channels/test", test_channel)
    app.router.add_get("/provider-keys", list_provider_keys)
    app.router.add_put("/provider-keys/{provider}", put_provider_key)
    app.router.add_delete("/provider-keys/{provider}", delete_provider_key)
    app.router.add_get("/margin", margin_report)
    app.router.add_get("/margin.csv", margin_report)
