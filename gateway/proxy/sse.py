"""Server-sent events, split incrementally from the bytes an upstream sends.

Events are handed on whole (so passthrough forwards complete events) as soon
as their terminating blank line arrives; nothing waits for the end of the stream.
"""

from __future__ import annotations


class SSESplitter:
    """Feed raw bytes, get back complete events (each ending in a blank line)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Complete events found so far; a partial event waits for more bytes."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            # A lone trailing \r may be the first half of \r\n: keep it for later.
            tail = b"\r" if buffer.endswith(b"\r") else b""
            buffer = buffer[: len(buffer) - len(tail)].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
        parts = buffer.split(b"\n\n")
        self._buffer = parts.pop()
        return [part + b"\n\n" for part in parts if part.strip()]

    def rest(self) -> bytes:
        """Whatever arrived after the last complete event (non-empty means a cut-off event)."""
        return self._buffer.strip()


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
