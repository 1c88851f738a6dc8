"""Upstream wire clients: what is common to every provider.

``send`` posts a JSON body over the app's shared aiohttp session and turns any
failure into the client-facing ``ApiError`` of ``upstream_errors``; ``read_json``
reads a whole answer. ``anthropic`` and ``openai`` hold each wire API's URLs and
headers; ``simulated`` answers ``simulated://`` URLs in-process.
"""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from ..upstream_errors import MAX_ERROR_BODY, malformed_error, map_client_error, status_error
from . import simulated


async def send(
    session: aiohttp.ClientSession,
    provider_name: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    timeout: aiohttp.ClientTimeout,
    secret: str,
    *,
    anthropic_client: bool = False,
    upstream_anthropic: bool = False,
) -> aiohttp.ClientResponse:
    """POST ``body`` and return the open 2xx response; any failure raises ``ApiError``.

    An error status is answered by ``status_error``'s rule, in the client's format
    (``anthropic_client``) from the upstream's (``upstream_anthropic``). The caller
    reads (or streams) the response and must release it. A ``simulated://`` URL is
    answered in-process by the simulated provider.
    """
    if simulated.is_simulated(url):
        return simulated.answer(url, body)  # type: ignore[return-value]
    try:
        response = await session.post(url, data=body, headers=headers, timeout=timeout)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise map_client_error(provider_name, exc) from None
    if response.status >= 300:
        try:
            error_body = await response.content.read(MAX_ERROR_BODY)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            error_body = b""
        finally:
            response.release()
        raise status_error(provider_name, response.status, error_body, secret,
                           anthropic_client=anthropic_client, upstream_anthropic=upstream_anthropic,
                           retry_after=response.headers.get("retry-after"))
    return response


async def read_json(response: aiohttp.ClientResponse | simulated.SimulatedResponse, provider_name: str) -> tuple[bytes, dict]:
    """The whole body of a non-streamed answer, raw and parsed."""
    try:
        raw = await response.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise map_client_error(provider_name, exc) from None
    finally:
        response.release()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise malformed_error(provider_name) from None
    if not isinstance(data, dict):
        raise malformed_error(provider_name)
    return raw, data
