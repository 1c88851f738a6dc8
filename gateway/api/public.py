"""The public ``/v1`` API: authenticate, reserve, forward, meter, settle.

Every request follows the same path: the key is looked up in memory, the body
is read (bounded) and checked, the model and its provider are resolved, an
estimate of the cost is reserved, the request is forwarded (translated when
the client's format and the provider's wire API differ) and, in ``finally``,
the request is settled with the batch writer, which also frees the
reservation. Nothing on this path touches the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
import uuid
from datetime import datetime, timezone

import aiohttp
import orjson
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from ..accounting.leases import (
    InsufficientBalance, KeyBudgetExceeded, LimitReached, MemberBudgetExceeded, Reservation, Reserver,
)
from ..accounting import events
from ..accounting.metering import BatchWriter, RequestRecord
from ..accounting.provider_keys import ProviderKeys
from ..accounting.pricing import (
    TokenUsage,
    affordable_output_tokens,
    price_tier,
    saved_micro_p,
    upstream_cost_micro_p,
    wants_1h_cache,
    worst_case_micro_p,
)
from .. import metrics
from ..accounting.ratelimits import RateLimiter
from ..appkeys import BREAKERS, CATALOG, HTTP, KEYS, LIMITER, PROVIDER_KEYS, RESERVER, SETTINGS, WRITER
from ..auth import KeyCache, KeyInfo
from ..catalog import Catalog, Model, Provider
from ..config import Settings
from ..errors import ApiError, anthropic_error_body, bad_request, openai_error_body
from ..proxy import tokens
from ..proxy.breaker import Breakers
from ..proxy.call import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    LONG_CONTEXT_BETA,
    MESSAGES,
    RESPONSES,
    Call,
    Plan,
    plan_request,
)
from ..proxy.failover import Route, routes_for, serve_over_channels
from ..proxy.forward import forward_stream, forward_whole
from ..proxy.providers import anthropic as anthropic_wire
from ..proxy.providers import read_json, send, simulated
from ..proxy.upstream_errors import malformed_error
from ..proxy.translate import responses_api_checks, validate
from . import guards, key_checks

log = logging.getLogger("samalink.gateway.public_api")

MODELS = "/v1/models"
COUNT_TOKENS = "/v1/messages/count_tokens"
POST_PATHS = (CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, COUNT_TOKENS, RESPONSES)
# Messages fields Anthropic's count_tokens refuses; they do not change the prompt's size.
NOT_COUNTED = ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata",
               "service_tier")
# When the catalogue models were first offered; /v1/models needs a "created" time.
CATALOG_CREATED = 1767225600
# Bodies above this size are translated and tokenized in a worker thread.
LARGE_BODY_BYTES = 128 * 1024
USED_UP_CHECK_SECONDS = 60.0
# How long a request waits for the batch writer to catch up before it is turned away.
BACKLOG_WAIT_SECONDS = 10.0
# What a client is told to wait when the balance could not be read or leased.
DATABASE_RETRY_SECONDS = 5
MAX_LOGGED_MODEL = 100

_CHECKS = {
    CHAT: validate.check_chat,
    COMPLETIONS: validate.check_completion,
    EMBEDDINGS: validate.check_embedding,
    MESSAGES: validate.check_messages,
    RESPONSES: responses_api_checks.check_responses,
}


class _Runtime:
    """The app's shared resources, read once from its typed keys."""

    settings: Settings
    catalog: Catalog
    http: aiohttp.ClientSession
    keys: KeyCache
    reserver: Reserver
    limiter: RateLimiter
    writer: BatchWriter
    breakers: Breakers
    provider_keys: ProviderKeys
    whole_timeout: aiohttp.ClientTimeout
    stream_timeout: aiohttp.ClientTimeout
    models_body: bytes
    models_listed: tuple[str, ...]

    def __init__(self) -> None:
        self.loaded = False

    def load(self, app: web.Application) -> None:
        """Take the resources the app's lifespan opened."""
        self.settings = app[SETTINGS]
        self.catalog = app[CATALOG]
        self.http = app[HTTP]
        self.keys = app[KEYS]
        self.reserver = app[RESERVER]
        self.limiter = app[LIMITER]
        self.writer = app[WRITER]
        self.breakers = app[BREAKERS]
        self.provider_keys = app[PROVIDER_KEYS]
        connect = self.settings.upstream_connect_timeout
        self.whole_timeout = aiohttp.ClientTimeout(total=self.settings.upstream_timeout, sock_connect=connect)
        # A stream may run long; what must not happen is a long silence.
        self.stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect, sock_read=self.settings.upstream_timeout
        )
        self.models_listed = ()
        # When each refused budget was last checked for being used up: (scope, id) -> monotonic time.
        self.used_up_checks: dict[tuple[str, str], float] = {}
        self.loaded = True

    def models_json(self) -> bytes:
        """The /v1/models body, rebuilt only when an operator switched a model on or off."""
        listed = tuple(model.id for model in self.catalog.models.values() if model.enabled)
        if listed != self.models_listed:
            self.models_body = orjson.dumps(models_list(self.catalog))
            self.models_listed = listed
        return self.models_body


RUNTIME = web.AppKey("public_api_runtime", _Runtime)


def models_list(catalog: Catalog, allowed: frozenset[str] = frozenset()) -> dict:
    """The catalogue in OpenAI's list format (unpriced models included, disabled ones not),
    only the ``allowed`` models when a key has an allow-list."""
    return {
        "object": "list",
        "data": [
            {
                "id": model.id,
                "object": "model",
                "created": CATALOG_CREATED,
                "owned_by": catalog.providers[model.provider].display_name,
            }
            for model in catalog.models.values()
            if model.enabled and (not allowed or model.id in allowed)
        ],
    }


def _runtime(request: web.Request) -> _Runtime:
    runtime = request.app[RUNTIME]
    if not runtime.loaded:
        runtime.load(request.app)
    return runtime


def _error_response(error: ApiError, anthropic: bool, request_id: str) -> web.Response:
    body = anthropic_error_body(error) if anthropic else openai_error_body(error)
    return web.Response(
        body=body, status=error.status, content_type="application/json",
        headers={**error.headers, "x-request-id": request_id},
    )


# --------------------------------------------------------------------------
# Authentication and body
# --------------------------------------------------------------------------

_REFUSALS = {
    "revoked": ApiError(401, "This API key has been revoked. Create a new key in the portal.",
                        code="api_key_revoked", type="authentication_error"),
    "expired": ApiError(401, "This API key has expired. Create a new key or extend its expiry in the portal.",
                        code="api_key_expired", type="authentication_error"),
    "suspended": ApiError(403, "This account is suspended. Contact help@samalink.ai.",
                          code="account_suspended", type="permission_error"),
    "spend_limit": ApiError(402, "This API key has reached its spending limit. Raise or remove the limit in the portal.",
                            code="key_spend_limit_reached", type="insufficient_balance"),
}


async def _authenticate(runtime: _Runtime, request: web.Request) -> KeyInfo:
    """The KeyInfo of the presented key, or an ApiError saying why not.

    Keys are read from headers only; a key in the query string is refused
    without being looked at, so it never reaches any log through this code.
    """
    header = request.headers.get("Authorization")
    if header:
        scheme, _, presented = header.partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            raise ApiError(401, "The Authorization header must be 'Bearer <your SAMALink key>'.",
                           code="invalid_authorization_header", type="authentication_error")
    else:
        presented = (request.headers.get("x-api-key") or "").strip()
    if not presented:
        if any(name in request.query for name in ("key", "api_key", "apikey", "token")):
            raise ApiError(401, "API keys are not accepted in the URL; send 'Authorization: Bearer <key>'.",
                           code="missing_api_key", type="authentication_error")
        raise ApiError(401, "No API key: send 'Authorization: Bearer <key>' or an 'x-api-key' header.",
                       code="missing_api_key", type="authentication_error")
    info = await runtime.keys.lookup(presented)
    if info is None:
        raise ApiError(401, "Invalid API key.", code="invalid_api_key", type="authentication_error")
    return info


def _check_key(runtime: _Runtime, request: web.Request, key: KeyInfo, now: datetime) -> None:
    """Refuse a key called from outside its IP allow-list, or one that may not be used now
    (see ``KeyInfo.refusal``); run once the request is known to be the key's, so it is logged."""
    key_checks.check_client_ip(key, request, runtime.settings.trust_proxy)
    refusal = key.refusal(now)
    if refusal == "budget":
        raise key_checks.budget_error(key)
    if refusal is not None:
        raise _REFUSALS[refusal]
    member = runtime.keys.member_budget(key)
    if member is not None and member.exhausted(now):
        raise key_checks.member_budget_error(member)


async def _read_body(request: web.Request, limit: int) -> tuple[dict, int]:
    """The request body as a JSON object and its size; 413 past ``limit`` bytes, 400 when unreadable."""
    too_large = ApiError(413, f"The request body is larger than the {limit}-byte limit.",
                         code="request_too_large")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    parts = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large
        parts.append(chunk)
    raw = b"".join(parts)
    if not raw:
        raise bad_request("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in str(exc) or "utf-8" in str(exc):
            raise bad_request("The request body is not valid UTF-8.", code="invalid_encoding") from None
        raise bad_request(f"The request body is not valid JSON (at character {exc.pos}).", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    return body, len(raw)


# Claude Code's way of asking for a model's long context window: "claude-sonnet-4-5[1m]".
LONG_CONTEXT_SUFFIX = "[1m]"
# Anthropic's beta flag that opens the 1M-token window (it contains call.LONG_CONTEXT_BETA).
LONG_CONTEXT_FLAG = "context-1m-2025-08-07"


def _resolve_model(catalog: Catalog, model_id: str, endpoint: str) -> tuple[Model, Provider, bool]:
    """The model and provider a client's id names (an alias included), and whether it asks for the long window."""
    base = model_id.removesuffix(LONG_CONTEXT_SUFFIX)
    long_context = base != model_id
    model = catalog.resolve(base)
    if model is None:
        raise ApiError(404, f"The model '{model_id[:MAX_LOGGED_MODEL]}' does not exist. GET /v1/models lists them.",
                       code="model_not_found", param="model")
    if not model.enabled:
        raise ApiError(404, f"The model '{model.id}' is currently disabled; choose another model.",
                       code="model_disabled", param="model")
    if not model.priced:
        raise ApiError(400, f"The model '{model.id}' has no price yet and cannot be called until it is priced.",
                       code="model_not_priced", param="model")
    wants_embedding = endpoint == EMBEDDINGS
    if wants_embedding and model.kind != "embedding":
        raise bad_request(f"The model '{model.id}' is a chat model; use /v1/chat/completions.", "model", "wrong_model_kind")
    if not wants_embedding and model.kind != "chat":
        raise bad_request(f"The model '{model.id}' is an embedding model; use /v1/embeddings.", "model", "wrong_model_kind")
    provider = catalog.provider_of(model)
    if provider.api == simulated.API:
        provider = simulated.wire_provider(provider, messages=endpoint == MESSAGES)
    if wants_embedding and provider.api != "openai":
        raise bad_request(f"The model '{model.id}' does not offer embeddings.", "model", "wrong_model_kind")
    return model, provider, long_context


def _anthropic_beta(beta: str | None, model: Model, provider: Provider, long_context: bool) -> str | None:
    """The anthropic-beta to forward: the client's, plus the long-window flag its model id asked for."""
    if not (long_context and model.long_context_window and provider.api == "anthropic"):
        return beta
    if beta and LONG_CONTEXT_BETA in beta:
        return beta
    return f"{beta},{LONG_CONTEXT_FLAG}" if beta else LONG_CONTEXT_FLAG


def _configured_key(settings: Settings, provider: Provider, console: ProviderKeys | None = None) -> str | None:
    """The provider's key: the environment's, or else one entered in the operator console."""
    if simulated.is_simulated(provider.base_url):
        return simulated.NO_KEY
    return (settings.upstream_keys.get(provider.api_key_env) or os.environ.get(provider.api_key_env)
            or (console.get(provider.name) if console is not None else None) or None)


def _not_configured(provider: Provider) -> ApiError:
    return ApiError(503, f"provider {provider.name} is not configured: set {provider.api_key_env}",
                    code="provider_not_configured")


def _provider_key(settings: Settings, provider: Provider, console: ProviderKeys | None = None) -> str:
    secret = _configured_key(settings, provider, console)
    if not secret:
        raise _not_configured(provider)
    return secret



# --------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------


async def _reserve(runtime: _Runtime, key: KeyInfo, model: Model, plan: Plan) -> Reservation:
    """Set aside the request's worst case under every limit, lowering its output bound to fit.

    The allowance is the smallest of what the balance, the key's spending limit, the
    key's budget for this period and its team member's budget for this period have left.
    When the worst case (the prompt plus the whole output bound) does not fit, the
    output bound sent upstream is lowered to what fits, but not below
    ``min_output_tokens`` (or the client's own smaller bound); below that, the request is
    refused with the code of the limit that ran out, before anything is sent upstream.
    The prompt is sized at its tier and at the dearest of the input and cache-write
    prices (the 1-hour write only when the body asks for it), since any of it may be
    written to the provider's cache.
    """
    # The byte check keeps the walk off bodies that cannot ask for a 1-hour cache.
    one_hour = b'"1h"' in plan.payload and wants_1h_cache(plan.body)
    want = worst_case_micro_p(model, plan.estimated_input, plan.max_output, one_hour)
    least_output = min(plan.max_output, runtime.settings.min_output_tokens * plan.choices)
    at_least = worst_case_micro_p(model, plan.estimated_input, least_output, one_hour)
    limited_key = key.key_id if key.spend_limit_micro_p is not None else None
    budget_key = key.key_id if key.has_budget else None
    member = runtime.keys.member_budget(key) if key.member_id is not None else None
    try:
        reservation = await runtime.reserver.reserve_up_to(
            key.account_id, want, at_least, limited_key, budget_key,
            member_budget_id=member.budget_id if member is not None else None)
    except KeyBudgetExceeded:
        await _check_used_up(runtime, "key", key.key_id, at_least)
        raise key_checks.budget_error(key) from None
    except MemberBudgetExceeded:
        await _check_used_up(runtime, "member", member.budget_id, at_least)
        raise key_checks.member_budget_error(member) from None
    except LimitReached as exc:
        bound_field = "max_output_tokens" if plan.responses is not None else "max_tokens"
        raise _limit_error(exc, at_least, least_output, runtime.settings, bound_field) from None
    if reservation.amount_micro_p < want:
        plan.lower_output_bound(
            affordable_output_tokens(model, plan.estimated_input, reservation.amount_micro_p, one_hour))
    return reservation


async def _check_used_up(runtime: _Runtime, scope: str, subject_id: str, needed_micro_p: int) -> None:
    """A budget refused a call: record its 100 % event when it is used up (``events.budget_used_up``).

    This process's settled calls are written first, so the check sees their spend. At
    most once a minute per budget and process, so a client retrying a refused call does
    not turn each retry into a flush and a write; the mail is then at most that much late.
    """
    now = time.monotonic()
    checks = runtime.used_up_checks
    if now - checks.get((scope, subject_id), -USED_UP_CHECK_SECONDS) < USED_UP_CHECK_SECONDS:
        return
    if len(checks) >= 10_000:
        checks.clear()
    checks[(scope, subject_id)] = now
    try:
        await runtime.writer.flush()
        await runtime.reserver.db.transaction(events.budget_used_up, scope, subject_id, needed_micro_p)
    except SQLAlchemyError as exc:
        # The 402 matters more than its mail.
        log.warning("could not check whether a %s budget is used up: %s", scope, type(exc).__name__)


def _what_the_account_can_do(settings: Settings, bound_field: str) -> str:
    """The way to more balance that this server offers: card top-ups only where they are on."""
    if settings.top_ups:
        return f"Top up your SAMA-P balance in the portal (Billing), or send a shorter prompt or a smaller {bound_field}."
    if settings.demo:
        return (f"This demo server takes no payments: send a shorter prompt or a smaller {bound_field}, "
                "or ask an operator to adjust your demo balance.")
    return ("Card top-ups are not available on this server: ask its operator to credit your account, "
            f"or send a shorter prompt or a smaller {bound_field}.")


def _limit_error(exc: LimitReached, needed: int, output_tokens: int, settings: Settings,
                 bound_field: str = "max_tokens") -> ApiError:
    needs = f"{needed / 1_000_000:,.3f} P (its prompt plus {output_tokens:,} tokens of output)"
    if isinstance(exc, InsufficientBalance):
        return ApiError(
            402,
            f"Insufficient balance: this request needs at least {needs}. "
            f"{_what_the_account_can_do(settings, bound_field)}",
            code="insufficient_balance",
        )
    return ApiError(
        402,
        f"This API key's spending limit has too little left for this request, which needs at least {needs}. "
        "Raise or remove the limit in the portal.",
        code="key_spend_limit_reached", type="insufficient_balance",
    )


def _settle(runtime: _Runtime, call: Call) -> None:
    """Hand the request to the batch writer (which frees the reservation).

    A billable call is charged exactly the cost its answer told the client
    (``call.cost_micro_p``, priced from the checked usage); a failed one nothing.
    """
    usage = call.usage if call.billable else TokenUsage()
    cost = call.cost_micro_p if call.billable else 0
    tier = None
    saved = 0
    if call.billable and call.model is not None:
        tier = price_tier(call.model, usage.prompt_tokens)
        saved = saved_micro_p(call.model, usage)
    record = RequestRecord(
        request_id=call.request_id,
        account_id=call.account_id,
        key_id=call.key_id,
        model=call.model_id[:MAX_LOGGED_MODEL],
        provider=call.provider,
        endpoint=call.endpoint,
        stream=call.stream,
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        price_tier=tier,
        saved_micro_p=saved,
        cost_micro_p=cost,
        latency_ms=int((time.perf_counter() - call.started) * 1000),
        ttft_ms=None if call.ttft is None else int((call.ttft - call.started) * 1000),
        status=call.status,
        error_class=call.error_class,
        estimated=call.estimated and call.billable,
        created_at=call.created_at,
        flags=",".join(call.flags) if call.billable else "",
        channel=call.channel,
        upstream_cost_micro_p=upstream_cost_micro_p(call.channel_cost, usage) if call.billable else None,
        attempts=tuple(call.attempts),
    )
    runtime.writer.settle(record, call.reservation)
    key_checks.settle_admission(runtime.limiter, call.admission, usage.prompt_tokens + usage.output_tokens)
    if call.reservation is not None:
        metrics.RESERVED.dec(call.reservation.amount_micro_p)


def _planner(endpoint: str, body: dict, size: int, request: web.Request, long_context: bool):
    """How a route's upstream request is built from the client's body."""
    client_beta = request.headers.get("anthropic-beta")

    async def plan_for(route: Route) -> Plan:
        beta = _anthropic_beta(client_beta, route.model, route.provider, long_context)
        if size > LARGE_BODY_BYTES:
            # Tokenizing megabytes takes a good fraction of a second: keep it off the event loop.
            return await asyncio.get_running_loop().run_in_executor(
                None, plan_request, endpoint, body, route.model, route.provider, route.secret, beta)
        return plan_request(endpoint, body, route.model, route.provider, route.secret, beta)

    return plan_for


async def _reserve_for_call(runtime: _Runtime, key: KeyInfo, model: Model, plan: Plan, call: Call) -> None:
    """Once per request, for the first channel's plan: the rate limits, then the money.

    First, while the settled requests not yet written exceed the writer's bound, the
    request waits for room (``BatchWriter.room``) and is turned away after
    ``BACKLOG_WAIT_SECONDS``: a saturated process slows its intake instead of piling up
    records in memory. A database out of reach answers 503 ``database_unavailable``.
    """
    if not await runtime.writer.room(BACKLOG_WAIT_SECONDS):
        raise ApiError(503, "the gateway is overloaded: retry in a few seconds", code="overloaded",
                       anthropic_type="overloaded_error", headers={"retry-after": str(int(BACKLOG_WAIT_SECONDS))})
    try:
        call.admission = await key_checks.admit(runtime.limiter, key, plan.estimated_input + plan.max_output)
        call.reservation = await _reserve(runtime, key, model, plan)
    except SQLAlchemyError as exc:
        # The per-minute counts and the balance live in the database, and no request is
        # served without both. Its being out of reach is neither the customer's fault nor
        # lasting: 503 with retry-after is what agents and SDKs retry; a 500 reads as a bug.
        log.warning("could not admit a request of account %s: %s", key.account_id, type(exc).__name__)
        raise ApiError(503, "The gateway cannot reach its database to cover this request; retry in a few seconds.",
                       code="database_unavailable", headers={"retry-after": str(DATABASE_RETRY_SECONDS)}) from None
    metrics.RESERVED.inc(call.reservation.amount_micro_p)


async def _forward(runtime: _Runtime, request: web.Request, call: Call, route: Route,
                   plan: Plan) -> web.StreamResponse:
    if plan.stream:
        return await forward_stream(runtime.http, runtime.stream_timeout, runtime.settings.drain_timeout,
                                    request, call, plan, route.provider, route.secret)
    return await forward_whole(runtime.http, runtime.whole_timeout, call, plan, route.provider, route.secret)


async def _serve(request: web.Request, endpoint: str) -> web.StreamResponse:
    """One POST to the public API, from key to settlement."""
    runtime = _runtime(request)
    now = datetime.now(timezone.utc)
    call = Call(uuid.uuid4().hex, endpoint, time.perf_counter(), now)
    anthropic_shape = endpoint == MESSAGES
    try:
        key = await _authenticate(runtime, request)
        call.account_id = key.account_id
        call.key_id = key.key_id
        _check_key(runtime, request, key, now)
        body, size = await _read_body(request, runtime.settings.max_body_bytes)
        call.model_id = validate.check_model(body)
        call.stream = bool(body.get("stream")) and endpoint != EMBEDDINGS
        model, provider, long_context = _resolve_model(runtime.catalog, call.model_id, endpoint)
        # Logged and answered under the canonical id, whichever alias the client sent.
        call.model_id = model.id
        call.model = model
        call.provider = provider.name
        key_checks.check_model_allowed(key, model)
        _CHECKS[endpoint](body)
        routes = routes_for(runtime.catalog, model, endpoint,
                            lambda p: _configured_key(runtime.settings, p, runtime.provider_keys))
        if not routes:
            raise _not_configured(provider)
        return await serve_over_channels(call, routes, runtime.breakers,
                                         _planner(endpoint, body, size, request, long_context),
                                         lambda plan: _reserve_for_call(runtime, key, model, plan, call),
                                         lambda route, plan: _forward(runtime, request, call, route, plan))
    except ApiError as error:
        call.fail(error)
        return _error_response(error, anthropic_shape, call.request_id)
    except Exception as exc:  # noqa: BLE001 - no input may produce a traceback for the client
        error = _unexpected(exc, endpoint)
        call.fail(error)
        return _error_response(error, anthropic_shape, call.request_id)
    finally:
        if call.account_id is not None:
            _settle(runtime, call)


def _unexpected(exc: Exception, endpoint: str) -> ApiError:
    """The 500 for a failure no input should cause, logged by type and place only.

    The exception's message is not logged: it may quote the request.
    """
    log.error("unexpected %s on %s: %s", type(exc).__name__, endpoint,
              "".join(traceback.format_tb(exc.__traceback__)).strip())
    return ApiError(500, "The gateway could not process this request.", code="internal_error",
                    type="api_error", error_class="internal_error")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions (OpenAI format; any chat model)."""
    return await _serve(request, CHAT)


async def completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/completions (text completions, served through chat)."""
    return await _serve(request, COMPLETIONS)


async def embeddings(request: web.Request) -> web.StreamResponse:
    """POST /v1/embeddings."""
    return await _serve(request, EMBEDDINGS)


async def messages(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages (Anthropic format; any chat model)."""
    return await _serve(request, MESSAGES)


async def responses(request: web.Request) -> web.StreamResponse:
    """POST /v1/responses (OpenAI's Responses API; any chat model, passed through or translated)."""
    return await _serve(request, RESPONSES)


async def count_tokens(request: web.Request) -> web.Response:
    """POST /v1/messages/count_tokens: a Messages body's input tokens, free of charge.

    Claude models are counted by Anthropic (same headers as messages); the others with
    the gateway's tokenizer. Authenticated and checked as /v1/messages; logged at no cost.
    """
    runtime = _runtime(request)
    now = datetime.now(timezone.utc)
    call = Call(uuid.uuid4().hex, COUNT_TOKENS, time.perf_counter(), now)
    try:
        key = await _authenticate(runtime, request)
        call.account_id = key.account_id
        call.key_id = key.key_id
        _check_key(runtime, request, key, now)
        body, size = await _read_body(request, runtime.settings.max_body_bytes)
        call.model_id = validate.check_model(body)
        model, provider, long_context = _resolve_model(runtime.catalog, call.model_id, MESSAGES)
        call.model_id = model.id
        call.model = model
        call.provider = provider.name
        key_checks.check_model_allowed(key, model)
        validate.check_messages(body)
        if provider.api == "anthropic":
            beta = _anthropic_beta(request.headers.get("anthropic-beta"), model, provider, long_context)
            counted = await _count_upstream(runtime, body, model, provider, beta)
        elif size > LARGE_BODY_BYTES:
            counted = await asyncio.get_running_loop().run_in_executor(None, tokens.estimate_messages_prompt, body)
        else:
            counted = tokens.estimate_messages_prompt(body)
        call.billable = True
        headers = {"x-request-id": call.request_id}
        if simulated.is_simulated(provider.base_url):
            headers[simulated.HEADER] = "true"
        return web.Response(body=orjson.dumps({"input_tokens": counted}), content_type="application/json",
                            headers=headers)
    except ApiError as error:
        call.fail(error)
        return _error_response(error, True, call.request_id)
    except Exception as exc:  # noqa: BLE001 - no input may produce a traceback for the client
        error = _unexpected(exc, COUNT_TOKENS)
        call.fail(error)
        return _error_response(error, True, call.request_id)
    finally:
        if call.account_id is not None:
            # Nothing is charged: the usage stays zero, so the cost is zero.
            _settle(runtime, call)


async def _count_upstream(runtime: _Runtime, body: dict, model: Model, provider: Provider, beta: str | None) -> int:
    """Anthropic's count of ``body``'s input tokens; its errors follow the upstream error rule."""
    secret = _provider_key(runtime.settings, provider, runtime.provider_keys)
    upstream = {name: value for name, value in body.items() if name not in NOT_COUNTED}
    upstream["model"] = model.upstream
    response = await send(runtime.http, provider.name, anthropic_wire.count_tokens_url(provider),
                          anthropic_wire.headers(secret, False, beta), orjson.dumps(upstream),
                          runtime.whole_timeout, secret, anthropic_client=True, upstream_anthropic=True)
    _, data = await read_json(response, provider.name)
    counted = data.get("input_tokens")
    if isinstance(counted, bool) or not isinstance(counted, int) or counted < 0:
        raise malformed_error(provider.name)
    return counted


async def list_models(request: web.Request) -> web.Response:
    """GET /v1/models: the catalogue in OpenAI's list format, for any valid key."""
    runtime = _runtime(request)
    request_id = uuid.uuid4().hex
    anthropic_shape = "x-api-key" in request.headers and "Authorization" not in request.headers
    try:
        now = datetime.now(timezone.utc)
        key = await _authenticate(runtime, request)
        key_checks.check_client_ip(key, request, runtime.settings.trust_proxy)
        refusal = key.refusal(now)
        if refusal in ("revoked", "expired", "suspended"):
            raise _REFUSALS[refusal]
    except ApiError as error:
        return _error_response(error, anthropic_shape, request_id)
    body = runtime.models_json()
    if key.allowed_models:
        body = orjson.dumps(models_list(runtime.catalog, key.allowed_models))
    return web.Response(body=body, content_type="application/json", headers={"x-request-id": request_id})


async def get_model(request: web.Request) -> web.Response:
    """GET /v1/models/{id}: one catalogue entry."""
    response = await list_models(request)
    if response.status != 200:
        return response
    runtime = _runtime(request)
    model = runtime.catalog.resolve(request.match_info["model_id"].removesuffix(LONG_CONTEXT_SUFFIX))
    if model is None or not model.enabled:
        error = ApiError(404, "The model does not exist. GET /v1/models lists them.", code="model_not_found",
                         param="model")
        return _error_response(error, False, response.headers["x-request-id"])
    key = await _authenticate(runtime, request)
    if not key_checks.model_allowed(key, model):
        error = ApiError(403, "This API key may not call this model. GET /v1/models lists the models it may call.",
                         code="model_not_allowed", param="model", type="permission_error")
        return _error_response(error, False, response.headers["x-request-id"])
    entry = {"id": model.id, "object": "model", "created": CATALOG_CREATED,
             "owned_by": runtime.catalog.providers[model.provider].display_name}
    return web.Response(body=orjson.dumps(entry), content_type="application/json")


async def unknown_endpoint(request: web.Request) -> web.Response:
    """Any other /v1 path or method: a JSON error instead of a bare HTML page."""
    path = request.path.rstrip("/")
    anthropic_shape = path in (MESSAGES, COUNT_TOKENS)
    if path in POST_PATHS:
        error = ApiError(405, f"{request.method} is not allowed on {path}; use POST.",
                         code="method_not_allowed", type="invalid_request_error")
    elif path == MODELS:
        error = ApiError(405, f"{request.method} is not allowed on {path}; use GET.",
                         code="method_not_allowed", type="invalid_request_error")
    else:
        error = ApiError(404, f"Unknown endpoint {request.method} {request.path[:200]}.",
                         code="unknown_endpoint", type="invalid_request_error")
    return _error_response(error, anthropic_shape, uuid.uuid4().hex)


async def _warm(app: web.Application) -> None:
    runtime = app[RUNTIME]
    if not runtime.loaded:
        try:
            runtime.load(app)
        except KeyError:
            pass  # resources opened by a later startup hook: loaded on the first request
    # The tokenizer takes a moment to load; do it before the first request needs it.
    await asyncio.get_running_loop().run_in_executor(None, tokens.encoding)


def setup_routes(app: web.Application) -> None:
    """Register the /v1 routes (and what they keep on the app)."""
    app[RUNTIME] = _Runtime()
    guards.setup(app)
    app.on_startup.append(_warm)
    app.router.add_post(CHAT, chat_completions)
    app.router.add_post(COMPLETIONS, completions)
    app.router.add_post(EMBEDDINGS, embeddings)
    app.router.add_post(MESSAGES, messages)
    app.router.add_post(COUNT_TOKENS, count_tokens)
    app.router.add_post(RESPONSES, responses)
    app.router.add_get(MODELS, list_models)
    app.router.add_get(MODELS + "/{model_id}", get_model)
    app.router.add_route("*", "/v1/{tail:.*}", unknown_endpoint)
