"""How an upstream failed, as the error its client is answered with.

Every way an upstream can fail (timeout, refused connection, error status, an answer
that is not what it should be) maps onto an ``ApiError`` with the status the client
should see and the error class the request log records. Upstream messages are passed
on only after ``sanitise`` has removed anything that looks like a key.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
import orjson

from ..errors import ApiError

# Anything key-shaped: SAMALink keys, "sk-..." style provider keys, bearer tokens.
_KEY_PATTERN = re.compile(
    r"(sama_[A-Za-z0-9-]{4,}|sk-[A-Za-z0-9_-]{6,}|Bearer\s+\S+|key-[A-Za-z0-9]{8,}|AIza[0-9A-Za-z_-]{10,})"
)
# An upstream error body is read only this far; its message only this long.
MAX_ERROR_BODY = 64 * 1024
MAX_ERROR_MESSAGE = 500


def sanitise(message: str, secret: str | None) -> str:
    """``message`` without the provider key or anything key-shaped, cut to a readable length."""
    if secret:
        message = message.replace(secret, "[redacted]")
    message = _KEY_PATTERN.sub("[redacted]", message)
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


def status_error(provider_name: str, status: int, body: bytes, secret: str | None) -> ApiError:
    """The client-facing error for an upstream's non-2xx answer (429 stays 429, the rest 502)."""
    message = sanitise(upstream_message(body), secret)
    error_class = f"upstream_http_{status}"
    if status == 429:
        return ApiError(
            429, f"provider {provider_name} is rate limiting requests: {message}",
            code="upstream_rate_limited", error_class=error_class,
        )
    return ApiError(
        502, f"provider {provider_name} answered {status}: {message}",
        code="upstream_error", error_class=error_class,
    )


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


def map_client_error(provider_name: str, exc: BaseException) -> ApiError:
    """The ApiError for an exception raised while talking to an upstream."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return timeout_error(provider_name)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return broken_stream_error(provider_name)
    return connection_error(provider_name)
