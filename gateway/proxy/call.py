"""One request on its way through the gateway: the endpoints, what is known about the
call so far (``Call``), and how it goes upstream (``Plan``, from ``plan_request``).

``plan_request`` turns a checked client body into the upstream request in the
provider's wire format and sizes the reservation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from ..accounting.leases import Reservation
from ..catalog import Model, Provider
from ..errors import ApiError, bad_request
from . import tokens
from .providers import anthropic as anthropic_wire
from .providers import openai as openai_wire
from .translate import requests as treq

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
MESSAGES = "/v1/messages"
# Logged for a stream whose client hung up before the end (nginx's convention).
CLIENT_CLOSED = 499


@dataclass(slots=True)
class Call:
    """What is known about one request so far; settled in ``finally``."""

    request_id: str
    endpoint: str
    started: float
    created_at: datetime
    account_id: str | None = None
    key_id: str = ""
    model_id: str = ""
    model: Model | None = None
    provider: str = ""
    stream: bool = False
    reservation: Reservation | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False
    billable: bool = False
    status: int = 200
    error_class: str | None = None
    ttft: float | None = None

    def fail(self, error: ApiError) -> None:
        """Record the error the client is answered with; a failed request costs nothing."""
        self.status = error.status
        self.error_class = error.error_class
        self.billable = False


@dataclass(slots=True)
class Plan:
    """How one request goes upstream and comes back."""

    url: str
    headers: dict[str, str]
    payload: bytes
    stream: bool
    upstream_api: str
    estimated_input: int
    max_output: int
    client_wants_usage: bool


def plan_request(endpoint: str, body: dict, model: Model, provider: Provider, secret: str, beta: str | None) -> Plan:
    """Translate the client body for the provider's wire API and size the reservation."""
    stream = bool(body.get("stream")) and endpoint != EMBEDDINGS
    options = body.get("stream_options") or {}
    client_wants_usage = options.get("include_usage") is True
    if endpoint == EMBEDDINGS:
        upstream = dict(body, model=model.upstream)
        return Plan(openai_wire.embeddings_url(provider), openai_wire.headers(secret, False),
                    orjson.dumps(upstream), False, "openai",
                    tokens.estimate_embedding_input(body["input"]), 0, False)
    if endpoint == MESSAGES:
        estimated = tokens.estimate_messages_prompt(body)
        max_output = body.get("max_tokens") or model.max_output_tokens
        if provider.api == "anthropic":
            upstream = dict(body, model=model.upstream, max_tokens=max_output)
            return Plan(anthropic_wire.messages_url(provider), anthropic_wire.headers(secret, stream, beta),
                        orjson.dumps(upstream), stream, "anthropic", estimated, max_output, False)
        upstream = treq.messages_to_chat_request(body, model, provider.name)
        return Plan(openai_wire.chat_url(provider), openai_wire.headers(secret, stream),
                    orjson.dumps(upstream), stream, "openai", estimated, max_output, False)
    chat_body = body if endpoint == CHAT else treq.completion_to_chat_request(body, provider.name)
    estimated = tokens.estimate_chat_prompt(chat_body)
    max_output = (
        chat_body.get("max_completion_tokens") or chat_body.get("max_tokens") or model.max_output_tokens
    ) * (chat_body.get("n") or 1)
    if provider.api == "anthropic":
        if (chat_body.get("n") or 1) > 1:
            raise bad_request(f"n > 1 is not supported for '{model.id}'.", "n")
        upstream = treq.chat_to_messages_request(chat_body, model)
        return Plan(anthropic_wire.messages_url(provider), anthropic_wire.headers(secret, stream),
                    orjson.dumps(upstream), stream, "anthropic", estimated, max_output, client_wants_usage)
    upstream = dict(chat_body, model=model.upstream)
    if stream:
        # Always ask for usage: it is what the request is billed by.
        upstream["stream_options"] = dict(options, include_usage=True)
    else:
        upstream.pop("stream_options", None)
    return Plan(openai_wire.chat_url(provider), openai_wire.headers(secret, stream),
                orjson.dumps(upstream), stream, "openai", estimated, max_output, client_wants_usage)
