"""Anthropic's Messages wire API.

Requests go to ``base_url`` + ``/v1/messages`` with ``x-api-key`` and a fixed
``anthropic-version``; streams are named SSE events (message_start,
content_block_*, message_delta, message_stop, ping, error).
"""

from __future__ import annotations

from ...catalog import Provider

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
API_VERSION = "2023-06-01"


def messages_url(provider: Provider) -> str:
    """Where Messages requests go."""
    return provider.base_url + MESSAGES_PATH


def count_tokens_url(provider: Provider) -> str:
    """Where token counts of a Messages body are asked for (same headers as messages)."""
    return provider.base_url + COUNT_TOKENS_PATH


def headers(api_key: str, stream: bool, beta: str | None = None) -> dict[str, str]:
    """Request headers carrying the provider key; ``beta`` passes a client's anthropic-beta on."""
    result = {
        "x-api-key": api_key,
        "anthropic-version": API_VERSION,
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }
    if beta:
        result["anthropic-beta"] = beta
    return result
