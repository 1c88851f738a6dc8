"""Server-sent events, split incrementally from the bytes an upstream sends.

Events are handed on whole (so passthrough forwards complete events) as soon
as their terminating blank line arrives; nothing waits for the end of the stream.
"""

from __future__ import annotations

import orjson


class SSESplitter:
    """Feed raw bytes, get back complete events (each ending in a blank line)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed_block(self, chunk: bytes) -> tuple[bytes, list[bytes]]:
        """The complete events found so far as one run of bytes, and its pieces between blank lines.

        The block is the bytes as the upstream sent them (line ends made ``\n``) up to
        and including the last blank line; a partial event waits for more bytes. The
        pieces are the block split at its blank lines, separators left out; a piece
        may itself be blank (several blank lines in a row).
        """
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            # A lone trailing \r may be the first half of \r\n: keep it for later.
            tail = b"\r" if buffer.endswith(b"\r") else b""
            buffer = buffer[: len(buffer) - len(tail)].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
        parts = buffer.split(b"\n\n")
        rest = parts.pop()
        self._buffer = rest
        if not parts:
            return b"", parts
        return (buffer[: len(buffer) - len(rest)] if rest else buffer), parts

    def feed(self, chunk: bytes) -> list[bytes]:
        """Complete events found so far; a partial event waits for more bytes."""
        return events_of(self.feed_block(chunk)[1])

    def rest(self) -> bytes:
        """Whatever arrived after the last complete event (non-empty means a cut-off event)."""
        return self._buffer.strip()


def events_of(parts: list[bytes]) -> list[bytes]:
    """The events among a block's pieces (see ``SSESplitter.feed_block``), each ending in a blank line."""
    return [part + b"\n\n" for part in parts if part.strip()]


def parse_event(raw: bytes) -> tuple[bytes | None, bytes]:
    """(event name or None, data) of one event; comment lines are ignored."""
    name = None
    data: list[bytes] = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    return name, b"\n".join(data)


# Events that come before anything generated (Anthropic's and the Responses API's): they
# neither commit the client's response nor count as its first token.
_PREAMBLE = frozenset({
    b"message_start", b"ping", b"content_block_start",
    b"response.created", b"response.queued", b"response.in_progress", b"response.output_item.added",
    b"response.content_part.added", b"response.reasoning_summary_part.added",
})
# OpenAI delta fields that carry what the model generated; a role alone carries nothing.
_OPENAI_CONTENT = ("content", "tool_calls", "function_call", "reasoning_content", "reasoning", "refusal", "audio")


def is_content_event(raw: bytes) -> bool:
    """Whether an upstream event carries generated content, or anything else that is not a preamble.

    The client's response is committed at the first such event (before it, the request may
    still go to another channel), and time to first token is measured there, not at the
    first byte, which is often a role-only chunk or Anthropic's message_start. An event
    that is not of a known shape counts, so its error reaches the client.
    """
    name, data = parse_event(raw)
    if not data or data == b"[DONE]":
        return False
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(event, dict):
        return True
    kind = name or event.get("type")
    if kind:
        return kind not in _PREAMBLE and str(kind).encode() not in _PREAMBLE
    if event.get("usage") or event.get("error"):
        return True
    choices = event.get("choices")
    if not isinstance(choices, list):
        return True
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("finish_reason") or choice.get("text"):
            return True
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict) or any(delta.get(field) for field in _OPENAI_CONTENT):
            return True
    return False
