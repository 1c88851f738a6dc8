"""Stream events, translated one at a time as they arrive.

Each translator takes one parsed upstream event and returns the events the
client should get for it (possibly none), keeping only the small state the
mapping needs (open content block, tool call indexes, usage). ``Usage``
collects what metering needs from either direction.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from ...accounting.pricing import TokenUsage
from ...errors import ApiError
from ..tokens import count_text
from . import usage as tusage
from .responses import FINISH_FROM_STOP, STOP_FROM_FINISH

# What a stream's usage is charged: the reported usage (None when the upstream sent
# none) in, the checked usage and its cost in micro-P out (None when nothing is charged,
# as in a translator used on its own).
Charge = Callable[[TokenUsage | None], tuple[TokenUsage, int | None]]


def no_charge(usage: TokenUsage | None) -> tuple[TokenUsage, int | None]:
    """A ``Charge`` that takes the usage as reported and charges nothing."""
    return usage or TokenUsage(), None


def chat_chunk_usage(chunk: dict) -> dict | None:
    """The usage object of an OpenAI-style chunk, wherever the provider put it.

    OpenAI sends it top-level in a final chunk; Moonshot puts it inside the
    last choice.
    """
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        return usage
    choices = chunk.get("choices")
    if choices and isinstance(choices[0], dict) and isinstance(choices[0].get("usage"), dict):
        return choices[0]["usage"]
    return None


class Usage:
    """Token usage reported by the upstream, plus generated text for estimates."""

    __slots__ = ("reported_usage", "start", "pieces")

    def __init__(self) -> None:
        self.reported_usage: TokenUsage | None = None
        self.start: dict | None = None  # Anthropic's message_start usage
        self.pieces: list[str] = []

    @property
    def reported(self) -> bool:
        """True once the upstream sent its output token count."""
        return self.reported_usage is not None

    @property
    def input_tokens(self) -> int | None:
        """Every prompt token the upstream has reported so far (None before any)."""
        if self.reported_usage is not None:
            return self.reported_usage.prompt_tokens
        started = tusage.from_anthropic(self.start)
        return None if started is None else started.prompt_tokens

    @property
    def output_tokens(self) -> int | None:
        """The reported output tokens (None before the upstream reported them)."""
        return None if self.reported_usage is None else self.reported_usage.output_tokens

    def estimate(self, estimated_input: int) -> TokenUsage:
        """Usage for a stream that ended without its output count: what was seen, the rest counted."""
        output = count_text("".join(self.pieces))
        started = tusage.from_anthropic(self.start)
        if started is not None:
            return TokenUsage(started.input_tokens, started.cache_read_tokens, started.cache_write_tokens,
                              started.cache_write_1h_tokens, output)
        return TokenUsage(input_tokens=estimated_input, output_tokens=output)

    def observe_usage(self, usage: dict) -> None:
        """Record an OpenAI-compatible usage object."""
        self.reported_usage = tusage.from_openai(usage)

    def observe_chat_chunk(self, chunk: dict) -> None:
        """Record usage and generated text from one OpenAI chat (or completion) chunk."""
        usage = chat_chunk_usage(chunk)
        if usage is not None:
            self.observe_usage(usage)
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content") or choice.get("text")
            if text:
                self.pieces.append(text)
            reasoning = delta.get("reasoning_content")
            if reasoning:
                self.pieces.append(reasoning)
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                if function.get("name"):
                    self.pieces.append(function["name"])
                if function.get("arguments"):
                    self.pieces.append(function["arguments"])

    def observe_anthropic_event(self, event: dict) -> None:
        """Record usage (message_start, message_delta) and generated text from one Anthropic event."""
        kind = event.get("type")
        if kind == "message_start":
            usage = (event.get("message") or {}).get("usage")
            if isinstance(usage, dict):
                tusage.from_anthropic(usage)  # refuses malformed counts now, not at the end
                self.start = usage
        elif kind == "message_delta":
            usage = event.get("usage")
            # message_delta's counts are cumulative; newer API versions repeat the
            # input and cache counts there too.
            if isinstance(usage, dict) and usage.get("output_tokens") is not None:
                self.reported_usage = tusage.from_anthropic(tusage.merge_anthropic(self.start, usage))
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            text = delta.get("text") or delta.get("partial_json") or delta.get("thinking")
            if text:
                self.pieces.append(text)
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use" and block.get("name"):
                self.pieces.append(block["name"])


def upstream_stream_error(message: str) -> ApiError:
    """The error for an upstream that reported a failure inside its stream."""
    return ApiError(502, f"upstream stream failed: {message}", code="upstream_stream_error")


class MessagesToChatStream:
    """Anthropic Messages events → OpenAI chat.completion.chunk objects."""

    def __init__(self, model_id: str, include_usage: bool, charge: Charge = no_charge) -> None:
        self.model_id = model_id
        self.include_usage = include_usage
        self.charge = charge
        self.usage = Usage()
        self.id = "chatcmpl-"
        self.created = int(time.time())
        self._tool_indexes: dict[int, int] = {}

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model_id,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    def feed(self, event: dict) -> list[dict]:
        """Chunks for one Anthropic event."""
        self.usage.observe_anthropic_event(event)
        kind = event.get("type")
        if kind == "message_start":
            self.id = "chatcmpl-" + str((event.get("message") or {}).get("id") or "")
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                tool_index = len(self._tool_indexes)
                self._tool_indexes[event.get("index", 0)] = tool_index
                return [self._chunk({"tool_calls": [{
                    "index": tool_index,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text") or ""})]
            if delta.get("type") == "thinking_delta" and delta.get("thinking"):
                return [self._chunk({"reasoning_content": delta["thinking"]})]
            if delta.get("type") == "input_json_delta":
                tool_index = self._tool_indexes.get(event.get("index", 0), 0)
                return [self._chunk({"tool_calls": [{
                    "index": tool_index,
                    "function": {"arguments": delta.get("partial_json") or ""},
                }]})]
            return []
        if kind == "message_delta":
            stop_reason = (event.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, FINISH_FROM_STOP.get(stop_reason, "stop"))]
        if kind == "message_stop":
            if not self.include_usage:
                return []
            charged, cost = self.charge(self.usage.reported_usage)
            return [{
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model_id,
                "choices": [],
                "usage": tusage.openai_usage(charged, cost),
            }]
        if kind == "error":
            error = event.get("error") or {}
            raise upstream_stream_error(str(error.get("message") or error.get("type") or "unknown error"))
        return []


class ChatToMessagesStream:
    """OpenAI chat.completion.chunk objects → Anthropic Messages events.

    Anthropic announces input tokens in ``message_start``, before OpenAI
    reports any usage, so that event carries the gateway's estimate and the
    final ``message_delta`` carries the upstream's real counts.
    """

    def __init__(self, model_id: str, estimated_input_tokens: int, charge: Charge = no_charge) -> None:
        self.model_id = model_id
        self.estimated_input_tokens = estimated_input_tokens
        self.charge = charge
        self.usage = Usage()
        self._started = False
        self._finished = False
        self._open: tuple[str, int] | None = None  # ("text", -1), ("thinking", -1) or ("tool", openai index)
        self._next_block = 0
        self._finish_reason: str | None = None

    def _start(self, upstream_id: object) -> list[dict]:
        self._started = True
        return [{
            "type": "message_start",
            "message": {
                "id": "msg_" + str(upstream_id or ""),
                "type": "message",
                "role": "assistant",
                "model": self.model_id,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": self.estimated_input_tokens, "output_tokens": 0},
            },
        }]

    def _close_block(self) -> list[dict]:
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": self._next_block - 1}]

    def _open_block(self, key: tuple[str, int], block: dict) -> list[dict]:
        events = self._close_block()
        self._open = key
        events.append({"type": "content_block_start", "index": self._next_block, "content_block": block})
        self._next_block += 1
        return events

    def feed(self, chunk: dict) -> list[dict]:
        """Events for one OpenAI chunk."""
        self.usage.observe_chat_chunk(chunk)
        events: list[dict] = []
        if not self._started:
            events.extend(self._start(chunk.get("id")))
        choices = chunk.get("choices") or ()
        if not choices:
            return events
        choice = choices[0] or {}
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            if self._open != ("thinking", -1):
                events.extend(self._open_block(("thinking", -1), {"type": "thinking", "thinking": "", "signature": ""}))
            events.append({
                "type": "content_block_delta",
                "index": self._next_block - 1,
                "delta": {"type": "thinking_delta", "thinking": reasoning},
            })
        text = delta.get("content")
        if text:
            if self._open != ("text", -1):
                events.extend(self._open_block(("text", -1), {"type": "text", "text": ""}))
            events.append({
                "type": "content_block_delta",
                "index": self._next_block - 1,
                "delta": {"type": "text_delta", "text": text},
            })
        for call in delta.get("tool_calls") or ():
            tool_index = call.get("index", 0)
            function = call.get("function") or {}
            if call.get("id") or self._open != ("tool", tool_index):
                events.extend(self._open_block(("tool", tool_index), {
                    "type": "tool_use",
                    "id": call.get("id") or f"toolu_{tool_index}",
                    "name": function.get("name") or "",
                    "input": {},
                }))
            if function.get("arguments"):
                events.append({
                    "type": "content_block_delta",
                    "index": self._next_block - 1,
                    "delta": {"type": "input_json_delta", "partial_json": function["arguments"]},
                })
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]
        return events

    def finish(self) -> list[dict]:
        """Closing events once the upstream stream ended (after its usage chunk)."""
        if self._finished:
            return []
        self._finished = True
        events = [] if self._started else self._start("")
        events.extend(self._close_block())
        charged, cost = self.charge(self.usage.reported_usage)
        if self.usage.reported_usage is None and cost is None:
            charged = TokenUsage(input_tokens=self.estimated_input_tokens)
        events.append({
            "type": "message_delta",
            "delta": {"stop_reason": STOP_FROM_FINISH.get(self._finish_reason, "end_turn"), "stop_sequence": None},
            "usage": tusage.anthropic_usage(charged, cost),
        })
        events.append({"type": "message_stop"})
        return events


class ChatToCompletionStream:
    """OpenAI chat.completion.chunk objects → text_completion chunks."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.created = int(time.time())

    def feed(self, chunk: dict) -> list[dict]:
        """Completion chunks for one chat chunk (role-only chunks vanish)."""
        out_id = "cmpl-" + str(chunk.get("id") or "")
        choices = []
        for index, choice in enumerate(chunk.get("choices") or ()):
            delta = choice.get("delta") or {}
            text = delta.get("content") or ""
            if not text and not choice.get("finish_reason"):
                continue
            choices.append({
                "text": text,
                "index": choice.get("index", index),
                "logprobs": None,
                "finish_reason": choice.get("finish_reason"),
            })
        result = []
        if choices:
            result.append({
                "id": out_id, "object": "text_completion", "created": self.created,
                "model": self.model_id, "choices": choices,
            })
        if isinstance(chunk.get("usage"), dict):
            result.append({
                "id": out_id, "object": "text_completion", "created": self.created,
                "model": self.model_id, "choices": [], "usage": chunk["usage"],
            })
        return result


def openai_sse(chunk: dict) -> bytes:
    """One OpenAI SSE event."""
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


OPENAI_DONE = b"data: [DONE]\n\n"


def anthropic_sse(event: dict) -> bytes:
    """One Anthropic SSE event (named after its type)."""
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
