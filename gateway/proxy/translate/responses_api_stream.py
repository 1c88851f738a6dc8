"""Responses API streams: named SSE events built from chat chunks or Anthropic events, or passed through.

``ResponseEvents`` writes one answer's events in OpenAI's order: ``response.created``,
``response.in_progress``, then per output item ``response.output_item.added``, its
deltas (``response.output_text.delta``, ``response.function_call_arguments.delta``,
``response.reasoning_summary_text.delta``) and ``response.output_item.done``, and last
``response.completed`` (or ``response.incomplete``) with the usage the request is
charged and its ``cost``. One item is open at a time, as upstreams stream them.
The relays plug these into ``forward.forward_stream`` like the other relays.
"""

from __future__ import annotations

import orjson

from ...accounting.pricing import TokenUsage
from ...errors import ApiError, openai_error_dict
from ..sse import parse_event
from ..upstream_errors import malformed_error
from . import usage as tusage
from .relays import Relay, _load, _with_data, rename_model, translated_anthropic_event, translated_chat_chunk
from .responses_api_answers import (
    CLAUDE_SIGNATURE_PREFIX,
    function_call_item,
    message_item,
    new_id,
    output_text,
    reasoning_item,
    response_object,
)
from .streams import Charge, Usage, no_charge, upstream_stream_error

# Pass-through events that carry the response's final usage.
_FINAL_EVENTS = (b"response.completed", b"response.incomplete", b"response.failed")


def named_sse(event: dict) -> bytes:
    """One Responses SSE event, named after its type."""
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class ResponseEvents:
    """The events of one streamed answer, with the output items they build."""

    def __init__(self, model_id: str, body: dict, tools: list[dict], encrypted: bool) -> None:
        self.model_id = model_id
        self.body = body
        self.tools = tools
        self.encrypted = encrypted
        self.id = new_id("resp")
        self.sequence = 0
        self.output: list[dict] = []
        self.open: dict | None = None  # the open item, being built
        self.pieces: list[str] = []  # the open item's text (message, reasoning) or arguments
        self.started = False
        self.finished = False

    def _event(self, kind: str, **fields) -> dict:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def _snapshot(self, status: str, usage: dict | None = None) -> dict:
        return response_object(self.id, self.model_id, self.body, list(self.output), status, usage, self.tools)

    def start(self) -> list[dict]:
        """``response.created`` and ``response.in_progress`` (once)."""
        if self.started:
            return []
        self.started = True
        return [self._event("response.created", response=self._snapshot("in_progress")),
                self._event("response.in_progress", response=self._snapshot("in_progress"))]

    def _open(self, item: dict) -> list[dict]:
        events = self.start() + self.close()
        self.open = item
        self.pieces = []
        events.append(self._event("response.output_item.added", output_index=len(self.output), item=item))
        return events

    def _where(self) -> dict:
        return {"item_id": self.open["id"], "output_index": len(self.output)}

    def text(self, delta: str) -> list[dict]:
        """An ``output_text`` delta (opening a message item first when needed)."""
        events = []
        if self.open is None or self.open["type"] != "message":
            events += self._open(message_item([], status="in_progress"))
            events.append(self._event("response.content_part.added", **self._where(), content_index=0,
                                      part=output_text("")))
        self.pieces.append(delta)
        events.append(self._event("response.output_text.delta", **self._where(), content_index=0, delta=delta,
                                  logprobs=[]))
        return events

    def reasoning(self, delta: str) -> list[dict]:
        """A reasoning summary delta (opening a reasoning item first when needed)."""
        events = []
        if self.open is None or self.open["type"] != "reasoning":
            events += self._open(reasoning_item("", None))
            events.append(self._event("response.reasoning_summary_part.added", **self._where(), summary_index=0,
                                      part={"type": "summary_text", "text": ""}))
        self.pieces.append(delta)
        events.append(self._event("response.reasoning_summary_text.delta", **self._where(), summary_index=0,
                                  delta=delta))
        return events

    def signature(self, signature: str) -> None:
        """The open thinking block's signature, kept as the reasoning item's encrypted content."""
        if self.open is not None and self.open["type"] == "reasoning" and self.encrypted:
            self.open["encrypted_content"] = (self.open.get("encrypted_content") or CLAUDE_SIGNATURE_PREFIX) + signature

    def function_call(self, call_id: str, name: str) -> list[dict]:
        """Open a ``function_call`` item."""
        return self._open(function_call_item(call_id, name, "", status="in_progress"))

    def arguments(self, delta: str) -> list[dict]:
        """A delta of the open function call's arguments."""
        if self.open is None or self.open["type"] != "function_call" or not delta:
            return []
        self.pieces.append(delta)
        return [self._event("response.function_call_arguments.delta", **self._where(), delta=delta)]

    def close(self) -> list[dict]:
        """Finish the open item: its ``…done`` events and ``response.output_item.done``."""
        item = self.open
        if item is None:
            return []
        where = self._where()
        text = "".join(self.pieces)
        events = []
        if item["type"] == "message":
            done = message_item([text], item["id"])
            events.append(self._event("response.output_text.done", **where, content_index=0, text=text, logprobs=[]))
            events.append(self._event("response.content_part.done", **where, content_index=0,
                                      part=done["content"][0]))
        elif item["type"] == "reasoning":
            # Only Claude's thinking has something to send back; other reasoning carries none.
            done = reasoning_item(text, item.get("encrypted_content") if self.encrypted else None, item["id"])
            events.append(self._event("response.reasoning_summary_text.done", **where, summary_index=0, text=text))
            events.append(self._event("response.reasoning_summary_part.done", **where, summary_index=0,
                                      part={"type": "summary_text", "text": text}))
        else:
            done = function_call_item(item["call_id"], item["name"], text or "{}", item["id"])
            events.append(self._event("response.function_call_arguments.done", **where, name=item["name"],
                                      arguments=done["arguments"]))
        events.append(self._event("response.output_item.done", output_index=where["output_index"], item=done))
        self.output.append(done)
        self.open = None
        self.pieces = []
        return events

    def complete(self, usage: dict, incomplete: bool) -> list[dict]:
        """Close what is open and end with ``response.completed`` (or ``response.incomplete``)."""
        if self.finished:
            return []
        self.finished = True
        events = self.start() + self.close()
        status = "incomplete" if incomplete else "completed"
        events.append(self._event(f"response.{status}", response=self._snapshot(status, usage)))
        return events

    def failed(self, error: ApiError) -> list[dict]:
        """An ``error`` event (which OpenAI's SDK raises as an exception) and ``response.failed``."""
        self.finished = True
        body = openai_error_dict(error)["error"]
        failed = self._snapshot("failed")
        failed["error"] = {"code": error.code or "server_error", "message": error.message}
        return [self._event("error", code=error.code, message=error.message, param=error.param, error=body),
                self._event("response.failed", response=failed)]


class ChatToResponsesStream:
    """OpenAI chat.completion.chunk objects → Responses events."""

    def __init__(self, events: ResponseEvents, charge: Charge = no_charge) -> None:
        self.events = events
        self.charge = charge
        self.usage = Usage()
        self.incomplete = False
        self._calls: dict[int, str] = {}  # chat tool call index → call id

    def feed(self, chunk: dict) -> list[dict]:
        """Events for one chunk."""
        self.usage.observe_chat_chunk(chunk)
        out = self.events.start()
        for choice in (chunk.get("choices") or ())[:1]:
            delta = (choice or {}).get("delta") or {}
            if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
                out += self.events.reasoning(delta["reasoning_content"])
            if isinstance(delta.get("content"), str) and delta["content"]:
                out += self.events.text(delta["content"])
            for call in delta.get("tool_calls") or ():
                index = call.get("index", 0)
                function = call.get("function") or {}
                if index not in self._calls:
                    self._calls[index] = str(call.get("id") or new_id("call"))
                    out += self.events.function_call(self._calls[index], str(function.get("name") or ""))
                out += self.events.arguments(str(function.get("arguments") or ""))
            if (choice or {}).get("finish_reason") == "length":
                self.incomplete = True
        return out

    def finish(self) -> list[dict]:
        """The closing events, with the usage the request is charged."""
        if self.events.finished:
            return []
        charged, cost = self.charge(self.usage.reported_usage)
        return self.events.complete(tusage.responses_usage(charged, cost), self.incomplete)


class MessagesToResponsesStream:
    """Anthropic Messages events → Responses events."""

    def __init__(self, events: ResponseEvents, charge: Charge = no_charge) -> None:
        self.events = events
        self.charge = charge
        self.usage = Usage()
        self.incomplete = False

    def feed(self, event: dict) -> list[dict]:
        """Events for one Anthropic event."""
        self.usage.observe_anthropic_event(event)
        kind = event.get("type")
        out = self.events.start()
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                out += self.events.function_call(str(block.get("id") or new_id("call")), str(block.get("name") or ""))
            elif block.get("type") == "text" and block.get("text"):
                out += self.events.text(block["text"])
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                out += self.events.text(delta["text"])
            elif delta.get("type") == "thinking_delta" and delta.get("thinking"):
                out += self.events.reasoning(delta["thinking"])
            elif delta.get("type") == "signature_delta" and isinstance(delta.get("signature"), str):
                self.events.signature(delta["signature"])
            elif delta.get("type") == "input_json_delta":
                out += self.events.arguments(str(delta.get("partial_json") or ""))
        elif kind == "message_delta":
            self.incomplete = (event.get("delta") or {}).get("stop_reason") == "max_tokens"
        elif kind == "message_stop":
            out += self.finish()
        elif kind == "error":
            error = event.get("error") or {}
            raise upstream_stream_error(str(error.get("message") or error.get("type") or "unknown error"))
        return out

    def finish(self) -> list[dict]:
        """The closing events, with the usage the request is charged."""
        if self.events.finished:
            return []
        charged, cost = self.charge(self.usage.reported_usage)
        return self.events.complete(tusage.responses_usage(charged, cost), self.incomplete)


class _ResponsesClientRelay(Relay):
    """Base of relays whose client speaks the Responses API: errors are named events."""

    events: ResponseEvents

    def error_event(self, error: ApiError) -> bytes:
        return b"".join(named_sse(event) for event in self.events.failed(error))

    def finish(self) -> bytes:
        return b"".join(named_sse(event) for event in self.translator.finish())


class ChatToResponsesRelay(_ResponsesClientRelay):
    """OpenAI chat upstream → Responses client."""

    def __init__(self, provider_name: str, events: ResponseEvents) -> None:
        super().__init__(provider_name)
        self.events = events
        self.translator = ChatToResponsesStream(events, self._charge)
        self.usage = self.translator.usage

    def event(self, raw: bytes) -> bytes:
        chunk = translated_chat_chunk(self, raw)
        if chunk is None:
            return b""
        return b"".join(named_sse(event) for event in self.translator.feed(chunk))


class MessagesToResponsesRelay(_ResponsesClientRelay):
    """Anthropic upstream → Responses client."""

    def __init__(self, provider_name: str, events: ResponseEvents) -> None:
        super().__init__(provider_name)
        self.events = events
        self.translator = MessagesToResponsesStream(events, self._charge)
        self.usage = self.translator.usage

    def event(self, raw: bytes) -> bytes:
        event = translated_anthropic_event(self, raw)
        if event is None:
            return b""
        return b"".join(named_sse(out) for out in self.translator.feed(event))


class ResponsesPassthrough(Relay):
    """Responses upstream → Responses client: events pass through; the final one gains the cost.

    Deltas are read for their text only in case the upstream never reports usage.
    """

    def __init__(self, provider_name: str, renames: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__(provider_name)
        self.renames = renames
        self.sequence = 0

    def event(self, raw: bytes) -> bytes:
        name, data = parse_event(raw)
        if not data:
            return raw
        if not (data.startswith(b"{") and data.endswith(b"}")):
            raise malformed_error(self.provider_name)
        if name == b"error" or (name is None and b'"type":"error"' in data):
            event = _load(data, self.provider_name)
            error = event.get("error") if isinstance(event.get("error"), dict) else event
            raise upstream_stream_error(str(error.get("message") or error.get("code") or "unknown error"))
        if name in (b"response.output_text.delta", b"response.function_call_arguments.delta",
                    b"response.reasoning_summary_text.delta"):
            delta = _load(data, self.provider_name).get("delta")
            if isinstance(delta, str):
                self.usage.pieces.append(delta)
            return raw
        if name in _FINAL_EVENTS:
            event = _load(data, self.provider_name)
            self.complete = True
            response = event.get("response")
            if not isinstance(response, dict):
                raise malformed_error(self.provider_name)
            self.usage.reported_usage = tusage.from_responses(response.get("usage"))
            charged, cost = self.charge(self.usage.reported_usage)
            if cost is not None:
                if isinstance(response.get("usage"), dict):
                    response["usage"]["cost"] = tusage.cost_p(cost)
                else:
                    response["usage"] = tusage.responses_usage(charged, cost)
                return _with_data(raw, rename_model(orjson.dumps(event), self.renames))
        return rename_model(raw, self.renames)

    def finish(self) -> bytes:
        return b""

    def error_event(self, error: ApiError) -> bytes:
        return named_sse({"type": "error", "sequence_number": 0, "code": error.code, "message": error.message,
                          "param": error.param, "error": openai_error_dict(error)["error"]})

    def estimated_usage(self, estimated_input: int) -> TokenUsage:
        return self.usage.estimate(estimated_input)
