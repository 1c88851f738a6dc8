"""How an upstream failed, as the error its client is answered with.

Every way an upstream can fail (timeout, refused connection, error status, an answer
that is not what it should be) maps onto an ``ApiError`` with the status the client
should see and the error class the request log records. Upstream messages are passed
on only after ``sanitise`` has removed anything that looks like a key.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

import aiohttp
import orjson

from ..errors import ANTHROPIC_ERROR_TYPES, OPENAI_ERROR_TYPES, ApiError
from ..logs import redact_keys

log = logging.getLogger("samalink.gateway.upstream")

# An upstream error body is read only this far; its message only this long.
MAX_ERROR_BODY = 64 * 1024
MAX_ERROR_MESSAGE = 500


def sanitise(message: str, secret: str | None) -> str:
    """``message`` without the provider key or anything key-shaped, cut to a readable length."""
    if secret:
        message = message.replace(secret, "[redacted]")
    message = redact_keys(message)
    message = " ".join(message.split())
    if len(message) > MAX_ERROR_MESSAGE:
        message = message[:MAX_ERROR_MESSAGE] + "…"
    return message


def upstream_message(body: bytes) -> str:
    """The human-readable message in an upstream error body (OpenAI or Anthropic shape)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:MAX_ERROR_MESSAGE].decode("utf-8", "replace").strip() or "no details"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if data.get("message"):
            return str(data["message"])
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return upstream_message(orjson.dumps(data[0]))
    return "no details"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the client is answered for an upstream's error status, and whose fault it is.

    ``channel_failure`` is true when the provider (or the gateway's account with it)
    failed rather than the request: another channel may serve the same request.
    ``passes_on`` is true when the provider's own type and message reach the client.
    ``operator`` is true when the operator's key or configuration is at fault.
    """

    status: int
    channel_failure: bool
    passes_on: bool = False
    operator: bool = False


# The request itself is wrong (too long, malformed for this model): the client's to fix.
CLIENT_STATUSES = frozenset({400, 413, 422})
# The provider refused the gateway, not the customer: a wrong key, account or model name.
OPERATOR_STATUSES = frozenset({401, 402, 403, 404})
OVERLOADED = 529


def classify(status: int, anthropic_client: bool) -> Verdict:
    """The one rule for an upstream's non-2xx ``status``, for a client of either format.

    400, 413 and 422 reach the client as they are. 429 and every 5xx are the channel's
    failures and, with no other channel left, reach the client unchanged; 529
    (Anthropic's "overloaded") only where the client speaks Anthropic's format, since
    OpenAI clients do not know it: they get 503 with the type ``overloaded_error``.
    401-404 mean the operator's key or configuration is wrong: 502. Any other status
    (redirects, other 4xx) is the channel's failure, answered 502.
    """
    if status in CLIENT_STATUSES:
        return Verdict(status, channel_failure=False, passes_on=True)
    if status == OVERLOADED:
        return Verdict(OVERLOADED if anthropic_client else 503, channel_failure=True, passes_on=True)
    if status == 429 or 500 <= status <= 599:
        return Verdict(status, channel_failure=True, passes_on=True)
    if status in OPERATOR_STATUSES:
        return Verdict(502, channel_failure=True, operator=True)
    return Verdict(502, channel_failure=True)


class UpstreamStatusError(ApiError):
    """An upstream's error status, as the client is answered; ``verdict`` says whose fault it was."""

    def __init__(self, status: int, message: str, verdict: Verdict, **fields) -> None:
        super().__init__(verdict.status, message, **fields)
        self.upstream_status = status
        self.verdict = verdict


def upstream_error_fields(body: bytes) -> tuple[str | None, str | None, str | None]:
    """The error ``type``, ``code`` and ``param`` of an upstream error body, where it has them."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None, None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, None, None

    def short(name: str) -> str | None:
        value = error.get(name)
        return value if isinstance(value, str) and _WORD.fullmatch(value) else None

    return short("type"), short("code"), short("param")


_WORD = re.compile(r"[A-Za-z0-9_.\[\]-]{1,100}")
_OPERATOR_MESSAGES = {
    401: "provider {name} refused the gateway's credentials; the operator has been told",
    402: "provider {name} refused the gateway's account (billing); the operator has been told",
    403: "provider {name} refused the gateway's credentials; the operator has been told",
    404: "provider {name} does not know what the gateway asked for; the operator has been told",
}


def status_error(provider_name: str, status: int, body: bytes, secret: str | None, *,
                 anthropic_client: bool = False, upstream_anthropic: bool = False,
                 retry_after: str | None = None) -> UpstreamStatusError:
    """The client-facing error for an upstream's non-2xx answer, by the rule of ``classify``.

    The provider's type is kept when the client speaks the provider's format, and
    otherwise replaced by the type the status has in the client's format; the
    provider's message is always sanitised.
    """
    verdict = classify(status, anthropic_client)
    message = sanitise(upstream_message(body), secret)
    error_class = f"upstream_http_{status}"
    if verdict.operator:
        log.warning("provider %s answered %d: %s (check its key and the providers file)",
                    provider_name, status, message)
        return UpstreamStatusError(status, _OPERATOR_MESSAGES[status].format(name=provider_name), verdict,
                                   code="upstream_refused_gateway", error_class=error_class)
    if not verdict.passes_on:
        return UpstreamStatusError(status, f"provider {provider_name} answered {status}: {message}", verdict,
                                   code="upstream_error", error_class=error_class)
    kind, code, param = upstream_error_fields(body)
    same_format = anthropic_client == upstream_anthropic
    known = ANTHROPIC_ERROR_TYPES if anthropic_client else OPENAI_ERROR_TYPES
    if not same_format or kind not in known:
        # Translated: the type the status has in the client's format.
        kind = None
    if status == OVERLOADED:
        kind = "overloaded_error"
    if status == 429:
        message = f"provider {provider_name} is rate limiting requests: {message}"
        code = code or "upstream_rate_limited"
    elif status >= 500:
        message = f"provider {provider_name} answered {status}: {message}"
        code = code or ("upstream_overloaded" if status == OVERLOADED else "upstream_error")
    headers = {"retry-after": retry_after} if retry_after and _RETRY_AFTER.fullmatch(retry_after) else None
    return UpstreamStatusError(
        status, message, verdict, code=code,
        param=param if same_format else None, type=None if anthropic_client else kind,
        anthropic_type=kind if anthropic_client else None, error_class=error_class, headers=headers,
    )


# A delay in seconds or an HTTP date: nothing else is passed on.
_RETRY_AFTER = re.compile(r"[0-9]{1,9}|[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9:]{8} GMT")


def timeout_error(provider_name: str) -> ApiError:
    """The client-facing error for an upstream that did not answer in time."""
    return ApiError(
        504, f"provider {provider_name} did not answer in time", code="upstream_timeout",
        error_class="upstream_timeout",
    )


def connection_error(provider_name: str) -> ApiError:
    """The client-facing error for an upstream that could not be reached or hung up."""
    return ApiError(
        502, f"could not reach provider {provider_name}", code="upstream_unreachable",
        error_class="upstream_connection_error",
    )


def broken_stream_error(provider_name: str) -> ApiError:
    """The client-facing error for an upstream stream that broke off or was unreadable."""
    return ApiError(
        502, f"provider {provider_name} broke off its answer", code="upstream_broken_stream",
        error_class="upstream_broken_stream",
    )


def malformed_error(provider_name: str) -> ApiError:
    """The client-facing error for an upstream answer that is not the JSON it should be."""
    return ApiError(
        502, f"provider {provider_name} sent an unreadable answer", code="upstream_malformed_response",
        error_class="upstream_malformed_response",
    )


# What the transport and the answer's reading fail with: the channel's failures, like a 5xx.
CHANNEL_ERROR_CLASSES = frozenset({
    "upstream_timeout", "upstream_connection_error", "upstream_broken_stream", "upstream_malformed_response",
    "upstream_stream_error",
})


def is_channel_failure(error: ApiError) -> bool:
    """Whether ``error`` is the channel's failure (another channel may serve the request) or the request's.

    An error status follows ``classify``; a timeout, a refused or dropped connection, an
    unreadable answer and an error event inside a stream are the channel's; anything the
    gateway itself refused (a bad request, a limit) is not.
    """
    if isinstance(error, UpstreamStatusError):
        return error.verdict.channel_failure
    return error.error_class in CHANNEL_ERROR_CLASSES


def map_client_error(provider_name: str, exc: BaseException) -> ApiError:
    """The ApiError for an exception raised while talking to an upstream."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return timeout_error(provider_name)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return broken_stream_error(provider_name)
    return connection_error(provider_name)
