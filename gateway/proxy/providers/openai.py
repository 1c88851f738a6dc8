"""The OpenAI-compatible wire API (OpenAI, DeepSeek, Qwen, Kimi, GLM, MiniMax, Gemini).

Requests go to ``base_url`` + ``/chat/completions``, ``/embeddings`` or (for providers
flagged ``responses = true``) ``/responses`` with
``Authorization: Bearer <provider key>``; streams are OpenAI SSE chunks ending
with ``data: [DONE]``.
"""

from __future__ import annotations

from ...catalog import Provider

CHAT_PATH = "/chat/completions"
EMBEDDINGS_PATH = "/embeddings"
RESPONSES_PATH = "/responses"
DONE = b"[DONE]"


def chat_url(provider: Provider) -> str:
    """Where chat completions go."""
    return provider.base_url + CHAT_PATH


def responses_url(provider: Provider) -> str:
    """Where Responses API requests go (providers flagged ``responses = true``)."""
    return provider.base_url + RESPONSES_PATH


def embeddings_url(provider: Provider) -> str:
    """Where embeddings go."""
    return provider.base_url + EMBEDDINGS_PATH


def headers(api_key: str, stream: bool) -> dict[str, str]:
    """Request headers carrying the provider key."""
    return {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }
