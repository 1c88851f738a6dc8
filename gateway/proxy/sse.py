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


# Named events that carry generated content: Anthropic's, and the Responses API's deltas.
_CONTENT_EVENTS = (b"content_block_delta", b"response.output_text.delta", b"response.function_call_arguments.delta",
                   b"response.reasoning_summary_text.delta", b"response.reasoning_text.delta", b"response.refusal.delta")
# OpenAI delta fields that carry generated content; a role alone carries none.
_CONTENT_FIELDS = ("content", "reasoning_content", "reasoning", "tool_calls", "refusal", "text")


def carries_content(raw: bytes) -> bool:
    """True when the upstream event ``raw`` holds generated content: the first token.

    Time to first token is measured here, not at the first byte, which is often a
    role-only chunk or Anthropic's message_start sent before the model has produced
    anything.
    """
    name, data = parse_event(raw)
    if name is not None:
        return name in _CONTENT_EVENTS
    if not data.startswith(b"{") or b"choices" not in data:
        return False
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    for choice in chunk.get("choices") or () if isinstance(chunk, dict) else ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and any(delta.get(name) for name in _CONTENT_FIELDS):
            return True
        if isinstance(choice, dict) and choice.get("text"):
            return True
    return False
