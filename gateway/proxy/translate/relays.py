"""Stream relays: one upstream SSE event in, the client's bytes out.

A relay is chosen per request from (client format, upstream wire API). When
the two match, events pass through byte for byte and only those carrying
usage are parsed; otherwise every event is parsed and translated. Every relay
keeps a ``Usage`` for metering and knows how to end the client's stream and
how to report an error inside it.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from functools import lru_cache

import orjson

from ...accounting.pricing import TokenUsage
from ...errors import ApiError, anthropic_error_dict, openai_error_dict
from ..upstream_errors import malformed_error
from ..sse import events_of, parse_event
from . import usage as tusage
from .streams import (
    OPENAI_DONE,
    Charge,
    ChatToCompletionStream,
    ChatToMessagesStream,
    MessagesToChatStream,
    Usage,
    anthropic_sse,
    chat_chunk_usage,
    no_charge,
    openai_sse,
    upstream_stream_error,
)

_DONE = b"[DONE]"


@lru_cache(maxsize=256)
def model_renames(upstream: str, public: str) -> tuple[tuple[bytes, bytes], ...]:
    """Byte replacements that show the public model id where the upstream wrote its own name.

    Covers compact and spaced JSON; anything else (a dated snapshot name, say)
    is left as the upstream wrote it.
    """
    up = orjson.dumps(upstream)
    pub = orjson.dumps(public)
    return ((b'"model":' + up, b'"model":' + pub), (b'"model": ' + up, b'"model": ' + pub))


def rename_model(raw: bytes, renames: tuple[tuple[bytes, bytes], ...]) -> bytes:
    """``raw`` with the first upstream model name replaced by the public id."""
    for old, new in renames:
        if old in raw:
            return raw.replace(old, new, 1)
    return raw


def _with_data(raw: bytes, data: bytes) -> bytes:
    """The SSE event ``raw`` with its data line replaced by ``data`` (its other lines kept)."""
    lines = [line for line in raw.split(b"\n") if line and not line.startswith(b"data:")]
    return b"\n".join([*lines, b"data: " + data]) + b"\n\n"


def _load(data: bytes, provider_name: str) -> dict:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise malformed_error(provider_name) from None
    if not isinstance(value, dict):
        raise malformed_error(provider_name)
    return value


class Relay(ABC):
    """Base: OpenAI-shaped client stream (error events are ``data: {"error": ...}``).

    ``charge`` (set by whoever meters the request) turns the upstream's usage into the
    checked usage and its cost, which the event that ends the client's stream carries.
    """

    def __init__(self, provider_name: str) -> None:
        self.provider_name = provider_name
        self.usage = Usage()
        self.complete = False
        self.charge: Charge = no_charge

    @property
    def _charge(self) -> Charge:
        """``charge`` for a translator the relay owns: late-bound, and holding the relay weakly.

        Late-bound, so translators made in ``__init__`` see the charge set afterwards;
        weakly, so relay and translator form no reference cycle, which would keep each
        finished stream's relay (and the bytes it kept) until the collector's next full pass.
        """
        relay = weakref.ref(self)
        return lambda usage: relay().charge(usage)

    @abstractmethod
    def event(self, raw: bytes) -> bytes:
        """Bytes for the client for one complete upstream event (may be empty)."""

    def block(self, block: bytes, parts: list[bytes]) -> bytes:
        """Bytes for the client for a run of complete upstream events (see ``SSESplitter.feed_block``)."""
        return b"".join([self.event(raw) for raw in events_of(parts)])

    def finish(self) -> bytes:
        """Bytes that end the client's stream after the upstream finished."""
        return OPENAI_DONE

    def error_event(self, error: ApiError) -> bytes:
        """An error reported inside the client's stream."""
        return openai_sse(openai_error_dict(error))

    def estimated_usage(self, estimated_input: int) -> TokenUsage:
        """Usage for an upstream that sent none: what it reported so far, the rest counted."""
        return self.usage.estimate(estimated_input)


class ChatPassthrough(Relay):
    """OpenAI chat upstream → OpenAI chat client: bytes pass through untouched.

    The upstream is always asked for usage; when the client did not ask for
    it, the usage-only chunk is dropped so the client sees what it asked for.
    A run of plain content events (one ``data: {...}`` line each, no usage, no
    error, no ``[DONE]``) leaves as it came, its model name aside, without being
    taken apart event by event; the rest go through ``event``.
    """

    def __init__(self, provider_name: str, client_wants_usage: bool,
                 renames: tuple[tuple[bytes, bytes], ...] = (), model_id: str = "") -> None:
        super().__init__(provider_name)
        self.client_wants_usage = client_wants_usage
        self.renames = renames if any(old != new for old, new in renames) else ()
        self.model_id = model_id
        # The events relayed so far, kept unparsed: read only if the upstream never reports usage.
        self._seen: list[bytes] = []

    def block(self, block: bytes, parts: list[bytes]) -> bytes:
        if not parts:
            return b""
        if not _plain_chat_events(block, parts):
            return super().block(block, parts)
        self._seen.append(block)
        renames = self.renames
        if not renames:
            return block
        if len(parts) == 1:
            # The usual read: one event, renamed in place.
            return rename_model(block, renames)
        return b"\n\n".join([rename_model(part, renames) for part in parts]) + b"\n\n"

    def event(self, raw: bytes) -> bytes:
        _, data = parse_event(raw)
        if not data:
            return raw  # a keep-alive comment passes on as the provider sent it
        if data == _DONE:
            self.complete = True
            return self._estimated_usage_chunk() + raw
        # Only events carrying usage are parsed; the rest get a cheap shape check
        # that catches truncated or non-JSON events.
        if not (data.startswith(b"{") and data.endswith(b"}")):
            raise malformed_error(self.provider_name)
        self._seen.append(raw)
        if _has_usage(data):
            chunk = _load(data, self.provider_name)
            if isinstance(chunk.get("error"), dict):
                raise upstream_stream_error(str(chunk["error"].get("message") or "unknown error"))
            usage = chat_chunk_usage(chunk)
            if usage is not None:
                self.usage.observe_usage(usage)
                if not chunk.get("choices") and not self.client_wants_usage:
                    return b""
                # The provider's own fields go through as they are; the cost joins them.
                _, cost = self.charge(self.usage.reported_usage)
                if cost is not None:
                    usage["cost"] = tusage.cost_p(cost)
                    return _with_data(raw, rename_model(orjson.dumps(chunk), self.renames))
            return rename_model(raw, self.renames)
        elif b'"error"' in data:
            chunk = _load(data, self.provider_name)
            if isinstance(chunk.get("error"), dict):
                raise upstream_stream_error(str(chunk["error"].get("message") or "unknown error"))
        return rename_model(raw, self.renames)

    def _estimated_usage_chunk(self) -> bytes:
        """The usage chunk the client asked for, when the upstream sent none: estimated, with its cost."""
        if self.usage.reported or not self.client_wants_usage:
            return b""
        charged, cost = self.charge(None)
        if cost is None:
            return b""
        return openai_sse({"id": "", "object": "chat.completion.chunk", "created": 0, "model": self.model_id,
                           "choices": [], "usage": tusage.openai_usage(charged, cost)})

    def estimated_usage(self, estimated_input: int) -> TokenUsage:
        for raw in events_of(b"".join(self._seen).split(b"\n\n")):
            try:
                chunk = orjson.loads(parse_event(raw)[1])
            except orjson.JSONDecodeError:
                continue
            if isinstance(chunk, dict):
                self.usage.observe_chat_chunk(chunk)
        self._seen.clear()
        return super().estimated_usage(estimated_input)

    def finish(self) -> bytes:
        # The upstream's own [DONE] already went through.
        return b"" if self.complete else OPENAI_DONE


def translated_chat_chunk(relay: Relay, raw: bytes) -> dict | None:
    """The chunk of an OpenAI chat upstream's event, for a relay that translates it.

    None for a keep-alive comment and for ``[DONE]`` (which completes the relay); an error
    chunk raises the stream's error.
    """
    _, data = parse_event(raw)
    if not data:
        return None
    if data == _DONE:
        relay.complete = True
        return None
    chunk = _load(data, relay.provider_name)
    if isinstance(chunk.get("error"), dict):
        raise upstream_stream_error(str(chunk["error"].get("message") or "unknown error"))
    return chunk


def translated_anthropic_event(relay: Relay, raw: bytes) -> dict | None:
    """The event of an Anthropic upstream, for a relay that translates it: None for a ping
    or a keep-alive comment; ``message_stop`` completes the relay."""
    name, data = parse_event(raw)
    if name == b"ping" or not data:
        return None
    event = _load(data, relay.provider_name)
    if event.get("type") == "message_stop":
        relay.complete = True
    return event


def _has_usage(data: bytes) -> bool:
    """True when ``data`` holds a usage object that is not null.

    A usage object may sit beside a null one (Kimi's, in its last choice).
    """
    return data.count(b'"usage"') > data.count(b'"usage":null') + data.count(b'"usage": null')


def _plain_chat_events(block: bytes, parts: list[bytes]) -> bool:
    """True when every event of the block is one ``data: {...}`` line without usage or error.

    Such events need nothing from the relay but the model name; whole-block byte
    searches rule out the rest, so the events of a read are not taken apart.
    """
    # Each piece a single line: the only line ends are the blank lines between events.
    if block.count(b"\n") != 2 * len(parts):
        return False
    if b'"error"' in block or (b'"usage"' in block and _has_usage(block)):
        return False
    # A piece that starts with "data: {" is not [DONE].
    for part in parts:
        if not ((part.startswith(b"data: {") or part.startswith(b"data:{")) and part.endswith(b"}")):
            return False
    return True


class MessagesPassthrough(Relay):
    """Anthropic upstream → Anthropic client: bytes pass through; usage events are read."""

    def __init__(self, provider_name: str, renames: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__(provider_name)
        self.renames = renames

    def event(self, raw: bytes) -> bytes:
        name, data = parse_event(raw)
        if name == b"ping" or not data:
            return raw  # a keep-alive passes on as the provider sent it
        if not (data.startswith(b"{") and data.endswith(b"}")):
            raise malformed_error(self.provider_name)
        if name in (b"message_start", b"message_delta", b"content_block_delta", b"content_block_start", b"error"):
            event = _load(data, self.provider_name)
            if event.get("type") == "error":
                error = event.get("error") or {}
                raise upstream_stream_error(str(error.get("message") or error.get("type") or "unknown error"))
            self.usage.observe_anthropic_event(event)
            if name == b"message_start":
                return rename_model(raw, self.renames)
            if name == b"message_delta":
                # The provider's own fields go through as they are; the cost joins them.
                # Without them, the estimate the request is charged takes their place.
                charged, cost = self.charge(self.usage.reported_usage)
                if cost is not None:
                    if isinstance(event.get("usage"), dict):
                        event["usage"]["cost"] = tusage.cost_p(cost)
                    else:
                        event["usage"] = tusage.anthropic_usage(charged, cost)
                    return _with_data(raw, orjson.dumps(event))
        elif name == b"message_stop":
            self.complete = True
        return raw

    def finish(self) -> bytes:
        return b""

    def error_event(self, error: ApiError) -> bytes:
        return anthropic_sse(anthropic_error_dict(error))


class MessagesToChatRelay(Relay):
    """Anthropic upstream → OpenAI chat client (or text completion client)."""

    def __init__(self, provider_name: str, model_id: str, include_usage: bool, completion: bool) -> None:
        super().__init__(provider_name)
        self.translator = MessagesToChatStream(model_id, include_usage, self._charge)
        self.usage = self.translator.usage
        self.completion = ChatToCompletionStream(model_id) if completion else None

    def event(self, raw: bytes) -> bytes:
        event = translated_anthropic_event(self, raw)
        if event is None:
            return b""
        chunks = self.translator.feed(event)
        if self.completion is not None:
            chunks = [out for chunk in chunks for out in self.completion.feed(chunk)]
        return b"".join(openai_sse(chunk) for chunk in chunks)


class ChatToMessagesRelay(Relay):
    """OpenAI chat upstream → Anthropic client, event by event."""

    def __init__(self, provider_name: str, model_id: str, estimated_input_tokens: int) -> None:
        super().__init__(provider_name)
        self.translator = ChatToMessagesStream(model_id, estimated_input_tokens, self._charge)
        self.usage = self.translator.usage

    def event(self, raw: bytes) -> bytes:
        chunk = translated_chat_chunk(self, raw)
        if chunk is None:
            return b""
        return b"".join(anthropic_sse(event) for event in self.translator.feed(chunk))

    def finish(self) -> bytes:
        return b"".join(anthropic_sse(event) for event in self.translator.finish())

    def error_event(self, error: ApiError) -> bytes:
        return anthropic_sse(anthropic_error_dict(error))


class ChatToCompletionRelay(Relay):
    """OpenAI chat upstream → text completion client."""

    def __init__(self, provider_name: str, model_id: str, client_wants_usage: bool) -> None:
        super().__init__(provider_name)
        self.translator = ChatToCompletionStream(model_id)
        self.client_wants_usage = client_wants_usage

    def event(self, raw: bytes) -> bytes:
        chunk = translated_chat_chunk(self, raw)
        if chunk is None:
            return b""
        self.usage.observe_chat_chunk(chunk)
        usage = chat_chunk_usage(chunk)
        if usage is not None:
            if not self.client_wants_usage:
                if not chunk.get("choices"):
                    return b""
                chunk.pop("usage", None)
            else:
                _, cost = self.charge(self.usage.reported_usage)
                if cost is not None:
                    usage["cost"] = tusage.cost_p(cost)
                chunk["usage"] = usage
        return b"".join(openai_sse(out) for out in self.translator.feed(chunk))
