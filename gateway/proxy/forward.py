"""Forwarding one request upstream and its answer back, whole or streamed.

``forward_whole`` and ``forward_stream`` send a planned request (see ``call``) and
fill in the ``Call`` with what metering needs. When the client's format matches the
provider's, answers pass through byte for byte; otherwise they are translated, event
by event for streams.
"""

from __future__ import annotations

import asyncio
import time
import weakref

import aiohttp
import orjson
from aiohttp import web

from ..accounting.pricing import TokenUsage, cost_micro_p
from ..catalog import Provider
from ..errors import ApiError
from . import tokens
from .call import CHAT, CLIENT_CLOSED, COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES, RESPONSES_WIRE, Call, Plan
from .providers import read_json, send, simulated
from .sse import SSESplitter, is_content_event
from .translate import responses as tresp
from .translate import responses_api_answers as tanswers
from .translate import responses_api_stream as tresponses_stream
from .translate import usage as tusage
from .translate.relays import (
    ChatPassthrough,
    ChatToCompletionRelay,
    ChatToMessagesRelay,
    MessagesPassthrough,
    MessagesToChatRelay,
    Relay,
    model_renames,
    rename_model,
)
from .translate.streams import Charge
from .upstream_errors import malformed_error, map_client_error
from .usage_checks import check_usage


def responses_client_body(call: Call, plan: Plan, data: dict) -> bytes:
    """A Responses API client's answer: the provider's own (pass-through, with ``cost``) or translated."""
    model = call.model
    usage = tusage.responses_usage(call.usage, call.cost_micro_p)
    request = plan.responses
    if plan.upstream_api == RESPONSES_WIRE:
        if isinstance(data.get("usage"), dict):
            data["usage"]["cost"] = tusage.cost_p(call.cost_micro_p)
        else:
            data["usage"] = usage
        return rename_model(orjson.dumps(data), model_renames(model.upstream, model.id))
    if plan.upstream_api == "anthropic":
        return orjson.dumps(tanswers.messages_to_response(data, model.id, request.body, usage, request.tools.kept))
    return orjson.dumps(tanswers.chat_to_response(data, model.id, request.body, usage, request.tools.kept))


def client_body(call: Call, upstream_api: str, data: dict) -> bytes:
    """The client's answer from the upstream's, with the charged usage and its cost.

    When formats match, the provider's own usage fields stay as they are and ``cost``
    joins them; otherwise the checked usage is written in the client's format.
    """
    model = call.model
    cost = tusage.cost_p(call.cost_micro_p)
    if (call.endpoint in (CHAT, EMBEDDINGS) and upstream_api == "openai") or (
        call.endpoint == MESSAGES and upstream_api == "anthropic"
    ):
        if isinstance(data.get("usage"), dict):
            data["usage"]["cost"] = cost
        elif call.endpoint == MESSAGES:
            data["usage"] = tusage.anthropic_usage(call.usage, call.cost_micro_p)
        elif call.endpoint == EMBEDDINGS:
            prompt = call.usage.prompt_tokens
            data["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt, "cost": cost}
        else:
            data["usage"] = tusage.openai_usage(call.usage, call.cost_micro_p)
        return rename_model(orjson.dumps(data), model_renames(model.upstream, model.id))
    if call.endpoint == MESSAGES:
        return orjson.dumps(tresp.chat_to_messages_response(
            data, model.id, tusage.anthropic_usage(call.usage, call.cost_micro_p)))
    if upstream_api == "openai":
        chat = data
        if isinstance(chat.get("usage"), dict):
            chat["usage"]["cost"] = cost
        else:
            chat["usage"] = tusage.openai_usage(call.usage, call.cost_micro_p)
    else:
        chat = tresp.messages_to_chat_response(data, model.id, tusage.openai_usage(call.usage, call.cost_micro_p))
    if call.endpoint == COMPLETIONS:
        return orjson.dumps(tresp.chat_to_completion_response(chat, model.id))
    return orjson.dumps(chat)


def answer_text(upstream_api: str, data: dict) -> str:
    """Generated text of a whole answer, for upstreams that report no usage."""
    if upstream_api == "anthropic":
        return "".join(
            block.get("text") or orjson.dumps(block.get("input") or {}).decode()
            for block in data.get("content") or () if isinstance(block, dict)
        )
    pieces = []
    for choice in data.get("choices") or ():
        message = (choice.get("message") or {}) if isinstance(choice, dict) else {}
        pieces.append(message.get("content") or "")
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            pieces.append((function.get("name") or "") + (function.get("arguments") or ""))
    return "".join(pieces)


def meter_whole(call: Call, plan: Plan, data: dict) -> bytes:
    """Charge a whole upstream answer (its usage, or an estimate) and build the client's body."""
    if plan.upstream_api == RESPONSES_WIRE:
        reported = tusage.from_responses(data.get("usage"))
        if not isinstance(data.get("output"), list):
            raise ValueError("no output")
    elif plan.upstream_api == "anthropic":
        reported = tusage.from_anthropic(data.get("usage"))
        if call.endpoint != EMBEDDINGS and not isinstance(data.get("content"), list):
            raise ValueError("no content")
    else:
        reported = tusage.from_openai(data.get("usage"))
        if call.endpoint != EMBEDDINGS and not isinstance(data.get("choices"), list):
            raise ValueError("no choices")
    if reported is None:
        if call.endpoint == EMBEDDINGS:
            output = 0
        elif plan.upstream_api == RESPONSES_WIRE:
            output = tokens.count_text(tanswers.passthrough_text(data))
        else:
            output = tokens.count_text(answer_text(plan.upstream_api, data))
        count_usage(call, plan, TokenUsage(input_tokens=plan.estimated_input, output_tokens=output), estimated=True)
    else:
        count_usage(call, plan, reported, estimated=False)
    if call.endpoint == RESPONSES:
        return responses_client_body(call, plan, data)
    return client_body(call, plan.upstream_api, data)


async def forward_whole(session: aiohttp.ClientSession, timeout: aiohttp.ClientTimeout, call: Call,
                        plan: Plan, provider: Provider, secret: str) -> web.Response:
    """Forward a non-streamed request and answer with the (translated) upstream answer."""
    response = await send(session, provider.name, plan.url, plan.headers, plan.payload, timeout, secret,
                          **error_formats(call, plan))
    _, data = await read_json(response, provider.name)
    try:
        body = meter_whole(call, plan, data)
    except (AttributeError, TypeError, KeyError, ValueError):
        # Valid JSON of the wrong shape (a list where an object belongs, say).
        raise malformed_error(provider.name) from None
    call.billable = True
    return web.Response(body=body, content_type="application/json", headers=answer_headers(call, plan))


def error_formats(call: Call, plan: Plan) -> dict[str, bool]:
    """Which formats an upstream error is read in and answered in (see ``upstream_errors.status_error``)."""
    return {"anthropic_client": call.endpoint == MESSAGES, "upstream_anthropic": plan.upstream_api == "anthropic"}


def answer_headers(call: Call, plan: Plan) -> dict[str, str]:
    """Headers of a served answer: its request id and, for generated text, the output bound used."""
    headers = {"x-request-id": call.request_id}
    if simulated.is_simulated(plan.url):
        headers[simulated.HEADER] = "true"
    if plan.max_output:
        headers["x-samalink-max-tokens"] = str(plan.output_bound)
    if plan.responses is not None:
        headers.update(plan.responses.answer_headers())
    return headers


def relay_for(call: Call, plan: Plan, provider: Provider) -> Relay:
    """The stream relay for this (client format, upstream wire API) pair."""
    if call.endpoint == RESPONSES:
        return responses_relay(call, plan, provider)
    if plan.upstream_api == "openai":
        if call.endpoint == CHAT:
            return ChatPassthrough(provider.name, plan.client_wants_usage,
                                   model_renames(call.model.upstream, call.model.id), call.model_id)
        if call.endpoint == COMPLETIONS:
            return ChatToCompletionRelay(provider.name, call.model_id, plan.client_wants_usage)
        return ChatToMessagesRelay(provider.name, call.model_id, plan.estimated_input)
    if call.endpoint == MESSAGES:
        return MessagesPassthrough(provider.name, model_renames(call.model.upstream, call.model.id))
    return MessagesToChatRelay(provider.name, call.model_id, plan.client_wants_usage,
                               completion=call.endpoint == COMPLETIONS)


def responses_relay(call: Call, plan: Plan, provider: Provider) -> Relay:
    """The stream relay of a Responses API client: pass-through, or translated from chat or Messages."""
    if plan.upstream_api == RESPONSES_WIRE:
        return tresponses_stream.ResponsesPassthrough(provider.name, model_renames(call.model.upstream, call.model.id))
    request = plan.responses
    events = tresponses_stream.ResponseEvents(call.model_id, request.body, request.tools.kept,
                                              tanswers.wants_encrypted_reasoning(request.body))
    if plan.upstream_api == "anthropic":
        return tresponses_stream.MessagesToResponsesRelay(provider.name, events)
    return tresponses_stream.ChatToResponsesRelay(provider.name, events)


def stream_charge(call: Call, plan: Plan, relay: Relay) -> Charge:
    """The relay's ``Charge``: its usage (or, when the upstream sent none, an estimate), checked and priced.

    It holds the relay weakly: the relay holds its charge, and a reference cycle would keep
    every finished stream's relay, call and plan until the collector's next full pass.
    """
    estimated_usage = weakref.WeakMethod(relay.estimated_usage)

    def charge(usage: TokenUsage | None) -> tuple[TokenUsage, int]:
        if usage is None:
            count_usage(call, plan, estimated_usage()(plan.estimated_input), estimated=True)
        else:
            count_usage(call, plan, usage, estimated=False)
        return call.usage, call.cost_micro_p

    return charge


def meter_stream(call: Call, plan: Plan, relay: Relay) -> None:
    """Charge a finished stream: the upstream's usage, or an estimate."""
    if call.billable:
        relay.charge(relay.usage.reported_usage)


def count_usage(call: Call, plan: Plan, usage: TokenUsage, *, estimated: bool) -> None:
    """Record the usage the call is charged for, checked against what the request allowed, and its cost."""
    checked = check_usage(usage, output_bound=plan.max_output, context_window=plan.context_window,
                          estimated_input=plan.estimated_input)
    call.usage, call.flags, call.estimated = checked.usage, checked.flags, estimated
    call.cost_micro_p = cost_micro_p(call.model, checked.usage)


async def _until_content(chunks, splitter: SSESplitter, relay: Relay, provider_name: str) -> tuple[bytes, bool]:
    """Read the upstream stream up to its first content event.

    Returns what the client gets up to and with that event, and whether the stream already
    ended. Any failure so far raises the ``ApiError`` of ``upstream_errors``: nothing
    has reached the client, so the request may go to another channel.
    """
    held = []
    try:
        async for chunk in chunks:
            events = splitter.feed(chunk)
            held.extend(relay.event(raw) for raw in events)
            if any(is_content_event(raw) for raw in events):
                return b"".join(held), False
    except (AttributeError, TypeError, KeyError, ValueError):
        raise malformed_error(provider_name) from None
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise map_client_error(provider_name, exc) from None
    return b"".join(held), True


async def forward_stream(session: aiohttp.ClientSession, timeout: aiohttp.ClientTimeout, drain_timeout: float,
                         request: web.Request, call: Call, plan: Plan, provider: Provider,
                         secret: str) -> web.StreamResponse:
    """Relay an SSE stream event by event; keep reading after a disconnect until usage arrives.

    The client's response starts only at the upstream's first content event: a failure
    before it raises ``ApiError`` with nothing sent, so another channel may serve.
    """
    upstream = await send(session, provider.name, plan.url, plan.headers, plan.payload, timeout, secret,
                          **error_formats(call, plan))
    relay = relay_for(call, plan, provider)
    relay.charge = stream_charge(call, plan, relay)
    splitter = SSESplitter()
    chunks = upstream.content.iter_any()
    try:
        first, ended = await _until_content(chunks, splitter, relay, provider.name)
    except BaseException:
        upstream.release()
        raise
    out = web.StreamResponse(status=200, headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        **answer_headers(call, plan),
    })
    client_gone = False
    loop = asyncio.get_running_loop()

    async def deliver(data: bytes) -> None:
        nonlocal client_gone
        if not data or client_gone:
            return
        try:
            await out.write(data)
        except (ConnectionError, aiohttp.ClientConnectionResetError, RuntimeError):
            client_gone = True

    try:
        try:
            await out.prepare(request)
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            client_gone = True
        async with asyncio.timeout(None) as drain:
            if first:
                call.ttft = time.perf_counter()
            await deliver(first)
            finished = ended
            if not ended:
                async for chunk in chunks:
                    # Everything that arrived together leaves together: one write per read.
                    block, parts = splitter.feed_block(chunk)
                    await deliver(relay.block(block, parts))
                    if client_gone:
                        if relay.usage.reported:
                            break
                        if drain.when() is None:
                            drain.reschedule(loop.time() + drain_timeout)
                else:
                    finished = True
            if finished:
                leftover = splitter.rest()
                if leftover:
                    await deliver(relay.event(leftover + b"\n\n"))
                await deliver(relay.finish())
        call.billable = True
    except ApiError as error:
        call.fail(error)
        await deliver(relay.error_event(error))
    except (AttributeError, TypeError, KeyError, ValueError):
        # An event that is JSON but not of the shape its type promises.
        error = malformed_error(provider.name)
        call.fail(error)
        await deliver(relay.error_event(error))
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        if client_gone and drain.expired():
            # The client left and the upstream took too long to finish: bill what was seen.
            call.billable = True
        else:
            error = map_client_error(provider.name, exc)
            call.fail(error)
            await deliver(relay.error_event(error))
    except asyncio.CancelledError:
        # The server is shutting down mid-stream: what was generated is still billed.
        call.billable = True
        call.status = CLIENT_CLOSED
        call.error_class = "gateway_shutdown"
        meter_stream(call, plan, relay)
        raise
    finally:
        upstream.release()
    meter_stream(call, plan, relay)
    if client_gone:
        call.status = CLIENT_CLOSED
        call.error_class = call.error_class or "client_disconnected"
    else:
        try:
            await out.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError, RuntimeError):
            pass
    return out
