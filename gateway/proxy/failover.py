"""One request over a model's channels: tried in the breakers' order until one answers.

A channel's failure (by ``upstream_errors.is_channel_failure``: a timeout, a refused
connection, 429, 5xx, 529, the provider refusing the operator's key or model name, an
error event before any content) sends the request on to the next channel, as long as
nothing has reached the client: the client's response is committed only when the
upstream's first content event arrives (``forward.forward_stream``) or, for a whole
answer, once it has been read. A client's error (400, 413, 422) is answered at once,
and a stream that has sent bytes is never tried again. The reservation is made once,
for the first channel's plan, and every later plan keeps within its output bound: the
customer is charged once, at the catalogue price, by whichever channel served.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Awaitable, Callable

from aiohttp import web

from ..accounting.metering import Attempt
from ..catalog import Catalog, Channel, Model, Provider
from ..errors import ApiError
from .breaker import Breakers
from .call import EMBEDDINGS, MESSAGES, Call, Plan
from .providers import simulated
from .upstream_errors import CHANNEL_ERROR_CLASSES, is_channel_failure


@dataclass(frozen=True)
class Route:
    """A channel ready to be tried: its provider, the catalogue model, the key."""

    channel: Channel
    provider: Provider
    catalogue_model: Model
    secret: str

    @cached_property
    def model(self) -> Model:
        """The model as this channel's provider names it (same prices), built only when tried."""
        model, channel = self.catalogue_model, self.channel
        if channel.provider == model.provider and channel.upstream == model.upstream:
            return model
        return dataclasses.replace(model, provider=channel.provider, upstream=channel.upstream)


def routes_for(catalog: Catalog, model: Model, endpoint: str,
               secret_of: Callable[[Provider], str | None]) -> list[Route]:
    """The model's channels that can serve ``endpoint``: a configured key, a fitting wire API."""
    routes = []
    for channel in model.channels:
        provider = catalog.providers[channel.provider]
        if provider.api == simulated.API:
            provider = simulated.wire_provider(provider, messages=endpoint == MESSAGES)
        if endpoint == EMBEDDINGS and provider.api != "openai":
            continue
        secret = secret_of(provider)
        if not secret:
            continue
        routes.append(Route(channel, provider, model, secret))
    return routes


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


async def serve_over_channels(
    call: Call,
    routes: list[Route],
    breakers: Breakers,
    plan_for: Callable[[Route], Awaitable[Plan]],
    reserve: Callable[[Plan], Awaitable[None]],
    forward: Callable[[Route, Plan], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """The answer of the first channel that serves; the last channel's error when none does.

    ``plan_for`` builds a route's upstream request, ``reserve`` sets the request's money
    aside (called once), ``forward`` sends a plan and answers the client or raises the
    ``ApiError`` of a failure before anything reached the client. Each try is appended
    to ``call.attempts`` and told to ``breakers``.
    """
    by_id = {route.channel.id: route for route in routes}
    ordered = breakers.order([route.channel for route in routes])
    if not ordered:
        raise ApiError(503, f"the model '{call.model_id}' has no channel switched on; the operator has been told",
                       code="no_channel_available")
    state = _Tries()
    for channel in ordered:
        # Asked one at a time: a half-open channel admits its probe only when it is really tried.
        if breakers.admit(channel.id):
            response = await _try(call, by_id[channel.id], breakers, plan_for, reserve, forward, state)
            if response is not None:
                return response
    if not state.tried and breakers.admit(ordered[0].id, last_resort=True):
        # Every channel is cooling down: one try beats refusing the request outright.
        response = await _try(call, by_id[ordered[0].id], breakers, plan_for, reserve, forward, state)
        if response is not None:
            return response
    if state.last_error is None:
        raise ApiError(503, f"every channel of the model '{call.model_id}' is failing; try again shortly",
                       code="no_channel_available")
    raise state.last_error


@dataclass
class _Tries:
    """What the tries of one request have left behind."""

    tried: int = 0
    output_bound: int | None = None  # the reserved plan's; None until reserved
    last_error: ApiError | None = None


async def _try(call: Call, route: Route, breakers: Breakers, plan_for: Callable[[Route], Awaitable[Plan]],
               reserve: Callable[[Plan], Awaitable[None]],
               forward: Callable[[Route, Plan], Awaitable[web.StreamResponse]],
               state: _Tries) -> web.StreamResponse | None:
    """One channel's try: its answer, or None after a channel failure (remembered in ``state``)."""
    channel = route.channel
    call.start_attempt(channel.id, channel.cost)
    call.model, call.provider = route.model, route.provider.name
    try:
        plan = await plan_for(route)
    except ApiError:
        breakers.abandoned(channel.id)
        if state.output_bound is None:
            raise
        return None  # this channel's wire API cannot carry the request; the next may
    except BaseException:
        breakers.abandoned(channel.id)
        raise
    try:
        if state.output_bound is None:
            await reserve(plan)
            state.output_bound = plan.max_output
        else:
            plan.lower_output_bound(state.output_bound)
    except BaseException:
        breakers.abandoned(channel.id)
        raise
    state.tried += 1
    started = time.perf_counter()
    try:
        response = await forward(route, plan)
    except ApiError as error:
        call.attempts.append(Attempt(channel.id, error.status, _elapsed_ms(started), error.error_class))
        if not is_channel_failure(error):
            breakers.succeeded(channel.id)  # the channel answered; the request was wrong
            raise
        breakers.failed(channel.id, error.error_class)
        state.last_error = error
        return None
    except BaseException:
        # Cancelled (the gateway is shutting down): the try is logged as it ended.
        call.attempts.append(Attempt(channel.id, call.status, _elapsed_ms(started), call.error_class))
        breakers.abandoned(channel.id)
        raise
    call.attempts.append(Attempt(channel.id, call.status, _elapsed_ms(started), call.error_class))
    if call.error_class in CHANNEL_ERROR_CLASSES:
        breakers.failed(channel.id, call.error_class)  # broke off after the client had bytes
    else:
        breakers.succeeded(channel.id)
    return response
