"""One request on its way through the gateway: the endpoints, what is known about the
call so far (``Call``), and how it goes upstream (``Plan``, from ``plan_request``).

``plan_request`` turns a checked client body into the upstream request in the
provider's wire format and sizes the reservation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import orjson

from ..accounting.leases import Reservation
from ..accounting.metering import Attempt
from ..accounting.ratelimits import Admission
from ..accounting.pricing import TokenUsage
from ..catalog import Cost, Model, Provider
from ..errors import ApiError, bad_request
from . import tokens
from .providers import anthropic as anthropic_wire
from .providers import openai as openai_wire
from .translate import requests as treq
from .translate import responses_api_requests as tresponses

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
MESSAGES = "/v1/messages"
RESPONSES = "/v1/responses"
# The upstream_api of a Responses request passed through to a provider that has the API.
RESPONSES_WIRE = "responses"
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
    admission: Admission | None = None  # what the per-minute limits counted for it
    usage: TokenUsage = TokenUsage()  # the checked usage the call is charged for
    cost_micro_p: int = 0  # what that usage costs, as charged to the ledger and told to the client
    estimated: bool = False
    billable: bool = False
    status: int = 200
    error_class: str | None = None
    ttft: float | None = None
    flags: tuple[str, ...] = ()  # why the upstream's usage was not charged as reported
    channel: str = ""  # the channel serving (or last tried)
    channel_cost: Cost | None = None  # what that channel costs the operator
    attempts: list[Attempt] = field(default_factory=list)  # every channel tried, in order

    def start_attempt(self, channel: str, cost: Cost | None) -> None:
        """A new try on ``channel``: nothing of an earlier try is charged or kept."""
        self.channel, self.channel_cost = channel, cost
        self.usage, self.cost_micro_p, self.estimated, self.billable = TokenUsage(), 0, False, False
        self.flags, self.ttft, self.status, self.error_class = (), None, 200, None

    def fail(self, error: ApiError) -> None:
        """Record the error the client is answered with; a failed request costs nothing."""
        self.status = error.status
        self.error_class = error.error_class
        self.billable = False


# Anthropic's smallest thinking budget; below it, thinking is turned off.
MIN_THINKING_BUDGET = 1024
# The anthropic-beta flag that opens a model's long context window.
LONG_CONTEXT_BETA = "context-1m"


@dataclass(slots=True)
class Plan:
    """How one request goes upstream and comes back.

    ``max_output`` is the output bound of the whole request (``choices`` answers), and it
    is the bound the upstream is sent: whatever the client asked for or left out, the
    reservation's worst case holds.
    """

    url: str
    headers: dict[str, str]
    body: dict
    stream: bool
    upstream_api: str
    estimated_input: int
    max_output: int
    client_wants_usage: bool
    context_window: int
    choices: int = 1
    output_field: str = "max_tokens"  # where an OpenAI-wire body without a bound gets one
    payload: bytes = b""
    # A Responses API request: what its answer echoes and which tools were left out.
    responses: tresponses.ResponsesRequest | None = None

    def __post_init__(self) -> None:
        if self.max_output:
            self._set_output_bound(self.max_output // self.choices)
        self.payload = orjson.dumps(self.body)

    @property
    def output_bound(self) -> int:
        """The bound on each answer's output tokens, as sent upstream."""
        return self.max_output // self.choices

    def lower_output_bound(self, max_output: int) -> None:
        """Send at most ``max_output`` output tokens in all (never raises the bound)."""
        per_answer = min(self.output_bound, max_output // self.choices)
        self._set_output_bound(per_answer)
        self.max_output = per_answer * self.choices
        self.payload = orjson.dumps(self.body)

    def _set_output_bound(self, per_answer: int) -> None:
        if self.upstream_api == "anthropic":
            self.body["max_tokens"] = per_answer
            _fit_thinking(self.body, per_answer)
            return
        present = [name for name in ("max_completion_tokens", "max_tokens") if self.body.get(name) is not None]
        for name in present or [self.output_field]:
            self.body[name] = per_answer


def _fit_thinking(body: dict, max_tokens: int) -> None:
    """Keep an Anthropic thinking budget below ``max_tokens``, or turn thinking off."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int) and budget < max_tokens:
        return
    if max_tokens - 1 < MIN_THINKING_BUDGET:
        body.pop("thinking")
    else:
        body["thinking"] = dict(thinking, budget_tokens=max_tokens - 1)


def context_window(model: Model, provider: Provider, beta: str | None) -> int:
    """The model's context window for this request: the long one when the request opens it."""
    if model.long_context_window and provider.api == "anthropic" and beta and LONG_CONTEXT_BETA in beta:
        return model.long_context_window
    return model.context_window


def plan_request(endpoint: str, body: dict, model: Model, provider: Provider, secret: str, beta: str | None) -> Plan:
    """Translate the client body for the provider's wire API and size the reservation."""
    stream = bool(body.get("stream")) and endpoint != EMBEDDINGS
    # Checked on the OpenAI formats; any other endpoint may carry anything under this name.
    options = body.get("stream_options")
    options = options if isinstance(options, dict) else {}
    client_wants_usage = options.get("include_usage") is True
    window = context_window(model, provider, beta)
    if endpoint == EMBEDDINGS:
        upstream = dict(body, model=model.upstream)
        return Plan(openai_wire.embeddings_url(provider), openai_wire.headers(secret, False), upstream, False,
                    "openai", tokens.estimate_embedding_input(body["input"]), 0, False, window)
    if endpoint == RESPONSES:
        return _plan_responses(body, model, provider, secret, stream, window)
    if endpoint == MESSAGES:
        estimated = tokens.estimate_messages_prompt(body)
        max_output = body.get("max_tokens") or model.max_output_tokens
        if provider.api == "anthropic":
            # Every field goes on, unknown ones included: Anthropic judges its own API.
            upstream = dict(treq.system_messages_as_user_turns(body), model=model.upstream)
            return Plan(anthropic_wire.messages_url(provider), anthropic_wire.headers(secret, stream, beta),
                        upstream, stream, "anthropic", estimated, max_output, False, window)
        # The client's anthropic-beta is not sent on: it means nothing to another API.
        upstream = treq.messages_to_chat_request(body, model, provider.name)
        return Plan(openai_wire.chat_url(provider), openai_wire.headers(secret, stream),
                    upstream, stream, "openai", estimated, max_output, False, window)
    chat_body = body if endpoint == CHAT else treq.completion_to_chat_request(body, provider.name)
    estimated = tokens.estimate_chat_prompt(chat_body)
    choices = chat_body.get("n") or 1
    max_output = (
        chat_body.get("max_completion_tokens") or chat_body.get("max_tokens") or model.max_output_tokens
    ) * choices
    if provider.api == "anthropic":
        if choices > 1:
            raise bad_request(f"n > 1 is not supported for '{model.id}'.", "n")
        upstream = treq.chat_to_messages_request(chat_body, model)
        return Plan(anthropic_wire.messages_url(provider), anthropic_wire.headers(secret, stream),
                    upstream, stream, "anthropic", estimated, max_output, client_wants_usage, window)
    upstream = dict(chat_body, model=model.upstream)
    if stream:
        # Always ask for usage: it is what the request is billed by.
        upstream["stream_options"] = dict(options, include_usage=True)
    else:
        upstream.pop("stream_options", None)
    # OpenAI's own models take max_completion_tokens; other OpenAI-compatible APIs max_tokens.
    field = "max_completion_tokens" if provider.name == "openai" else "max_tokens"
    return Plan(openai_wire.chat_url(provider), openai_wire.headers(secret, stream),
                upstream, stream, "openai", estimated, max_output, client_wants_usage, window, choices, field)


def _plan_responses(body: dict, model: Model, provider: Provider, secret: str, stream: bool, window: int) -> Plan:
    """A Responses API request: passed through where the provider has the API, else translated."""
    passthrough = provider.api == "openai" and provider.responses
    tools = tresponses.split_tools(body, passthrough)
    estimated = tokens.estimate_responses_prompt(body)
    max_output = body.get("max_output_tokens") or model.max_output_tokens
    request = tresponses.ResponsesRequest(body, tools)
    if passthrough:
        upstream = tresponses.passthrough_request(body, model, tools)
        return Plan(openai_wire.responses_url(provider), openai_wire.headers(secret, stream), upstream, stream,
                    RESPONSES_WIRE, estimated, max_output, False, window, output_field="max_output_tokens",
                    responses=request)
    if provider.api == "anthropic":
        upstream = tresponses.responses_to_messages_request(body, model, tools)
        return Plan(anthropic_wire.messages_url(provider), anthropic_wire.headers(secret, stream), upstream, stream,
                    "anthropic", estimated, max_output, False, window, responses=request)
    upstream = tresponses.responses_to_chat_request(body, model, provider.name, tools)
    field_name = "max_completion_tokens" if provider.name == "openai" else "max_tokens"
    return Plan(openai_wire.chat_url(provider), openai_wire.headers(secret, stream), upstream, stream,
                "openai", estimated, max_output, False, window, output_field=field_name, responses=request)
