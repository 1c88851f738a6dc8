"""A fast fake of an OpenAI-compatible provider, for benchmarks.

Serves ``POST /v1/chat/completions`` (JSON and SSE streaming, with a final usage
chunk when ``stream_options.include_usage`` is set), ``POST /v1/embeddings`` and
``GET /v1/models`` on plain HTTP/1.1 with keep-alive. It is written on bare
asyncio protocols (uvloop when installed) with pre-built response bytes, so that
it costs far less per request than anything measured through it.

    python bench/fake_upstream.py --port 9100 [--latency-ms 0] [--chunks 8]
        [--chunk-interval-ms 0] [--processes 1]

``--latency-ms`` delays the answer (the first stream chunk for streams);
``--chunk-interval-ms`` spaces the stream chunks; ``--processes`` forks that many
servers sharing the port (SO_REUSEPORT).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import socket
import sys
from dataclasses import dataclass

import orjson

try:
    import uvloop
except ImportError:  # the fake still works, only slower
    uvloop = None

COMPLETION_TOKENS_PER_CHUNK = 2
CONTENT_PIECE = "Hello there"


@dataclass(frozen=True)
class Behaviour:
    """How the fake answers: delay before the answer, stream shape."""

    latency: float = 0.0
    chunks: int = 8
    chunk_interval: float = 0.0
    completion_tokens: int = 16


class BadRequest(Exception):
    """The request could not be parsed; the connection answers 400 and closes."""


_ids = itertools.count(1)


def _prompt_tokens(body: dict) -> int:
    """Estimate prompt tokens the way a provider would report them: about 4 chars each."""
    chars = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
    prompt = body.get("input") or body.get("prompt")
    if isinstance(prompt, str):
        chars += len(prompt)
    elif isinstance(prompt, list):
        chars += sum(len(p) for p in prompt if isinstance(p, str))
    return max(1, chars // 4) + 4


def _response_head(status: str, content_type: bytes, length: int | None, close: bool) -> bytes:
    lines = [b"HTTP/1.1 " + status.encode(), b"Content-Type: " + content_type]
    if length is None:
        lines.append(b"Transfer-Encoding: chunked")
        lines.append(b"Cache-Control: no-cache")
    else:
        lines.append(b"Content-Length: " + str(length).encode())
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _json_response(payload: dict, status: str = "200 OK", close: bool = False) -> bytes:
    body = orjson.dumps(payload)
    return _response_head(status, b"application/json", len(body), close) + body


def _error(status: str, message: str, close: bool = False) -> bytes:
    return _json_response(
        {"error": {"message": message, "type": "invalid_request_error", "code": None}}, status, close
    )


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(payload: dict) -> bytes:
    return _chunk(b"data: " + orjson.dumps(payload) + b"\n\n")


def chat_completion(body: dict, behaviour: Behaviour) -> dict:
    """The non-streaming chat answer for ``body``."""
    prompt = _prompt_tokens(body)
    completion = behaviour.completion_tokens
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": 1764072000,
        "model": body.get("model", "unknown"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": CONTENT_PIECE * (completion // 2)},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def chat_stream_events(body: dict, behaviour: Behaviour) -> list[bytes]:
    """The SSE events (already chunk-encoded) of a streamed chat answer, last one ``[DONE]``."""
    ident = f"chatcmpl-{next(_ids)}"
    model = body.get("model", "unknown")
    base = {"id": ident, "object": "chat.completion.chunk", "created": 1764072000, "model": model}
    events = [_sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})]
    for _ in range(behaviour.chunks):
        events.append(_sse({**base, "choices": [{"index": 0, "delta": {"content": CONTENT_PIECE}, "finish_reason": None}]}))
    events.append(_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    options = body.get("stream_options") or {}
    if isinstance(options, dict) and options.get("include_usage"):
        prompt = _prompt_tokens(body)
        completion = behaviour.chunks * COMPLETION_TOKENS_PER_CHUNK
        events.append(_sse({**base, "choices": [], "usage": {
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}))
    events.append(_chunk(b"data: [DONE]\n\n"))
    events.append(b"0\r\n\r\n")
    return events


def embeddings(body: dict) -> dict:
    """An embeddings answer with one small vector per input."""
    inputs = body.get("input")
    count = len(inputs) if isinstance(inputs, list) else 1
    prompt = _prompt_tokens(body)
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": [0.01, -0.02, 0.03, 0.04]} for i in range(count)],
        "model": body.get("model", "unknown"),
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


MODELS_RESPONSE = _json_response({"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "bench"}]})


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: parse HTTP/1.1 requests in order, answer each."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a delayed or streamed answer is being written
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._drain_requests()

    def _drain_requests(self) -> None:
        while not self.busy and not self.closed:
            try:
                parsed = self._parse_one()
            except BadRequest as exc:
                self.transport.write(_error("400 Bad Request", str(exc), close=True))
                self.transport.close()
                self.closed = True
                return
            if parsed is None:
                return
            self._answer(*parsed)

    def _parse_one(self) -> tuple[str, str, bytes, bool] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > 65536:
                raise BadRequest("header section too large")
            return None
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = head[0].split(" ", 2)
        except ValueError:
            raise BadRequest("malformed request line") from None
        length = 0
        chunked = False
        close = version == "HTTP/1.0"
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise BadRequest("bad Content-Length") from None
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection":
                close = value.strip().lower() == "close"
        start = end + 4
        if chunked:
            decoded = self._dechunk(start)
            if decoded is None:
                return None
            body, consumed = decoded
            del self.buffer[:consumed]
        else:
            if len(self.buffer) < start + length:
                return None
            body = bytes(self.buffer[start:start + length])
            del self.buffer[:start + length]
        return method, target.split("?", 1)[0], body, close

    def _dechunk(self, pos: int) -> tuple[bytes, int] | None:
        body = bytearray()
        while True:
            line_end = self.buffer.find(b"\r\n", pos)
            if line_end < 0:
                return None
            try:
                size = int(bytes(self.buffer[pos:line_end]).split(b";")[0], 16)
            except ValueError:
                raise BadRequest("bad chunk size") from None
            pos = line_end + 2
            if size == 0:
                trailer_end = self.buffer.find(b"\r\n", pos)
                if trailer_end < 0:
                    return None
                return bytes(body), trailer_end + 2
            if len(self.buffer) < pos + size + 2:
                return None
            body += self.buffer[pos:pos + size]
            pos += size + 2

    def _answer(self, method: str, path: str, raw: bytes, close: bool) -> None:
        if method == "GET" and path.endswith("/models"):
            self._send(MODELS_RESPONSE, close)
            return
        if method != "POST":
            self._send(_error("404 Not Found", f"no route for {method} {path}", close), close)
            return
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            self._send(_error("400 Bad Request", "body is not JSON", close), close)
            return
        if not isinstance(body, dict):
            self._send(_error("400 Bad Request", "body must be a JSON object", close), close)
            return
        if path.endswith("/chat/completions"):
            if body.get("stream"):
                self.busy = True
                asyncio.ensure_future(self._stream(body, close))
                return
            self._send_later(_json_response(chat_completion(body, self.behaviour), close=close), close)
        elif path.endswith("/embeddings"):
            self._send_later(_json_response(embeddings(body), close=close), close)
        else:
            self._send(_error("404 Not Found", f"no route for {method} {path}", close), close)

    def _send(self, data: bytes, close: bool) -> None:
        if self.closed:
            return
        self.transport.write(data)
        if close:
            self.transport.close()
            self.closed = True

    def _send_later(self, data: bytes, close: bool) -> None:
        if self.behaviour.latency <= 0:
            self._send(data, close)
            return
        self.busy = True

        def deliver() -> None:
            self.busy = False
            self._send(data, close)
            self._drain_requests()

        asyncio.get_running_loop().call_later(self.behaviour.latency, deliver)

    async def _stream(self, body: dict, close: bool) -> None:
        events = chat_stream_events(body, self.behaviour)
        head = _response_head("200 OK", b"text/event-stream", None, close)
        if self.behaviour.latency > 0:
            await asyncio.sleep(self.behaviour.latency)
        if self.behaviour.chunk_interval <= 0:
            self._send(head + b"".join(events), close)
        else:
            self._send(head + events[0], False)
            for event in events[1:]:
                await asyncio.sleep(self.behaviour.chunk_interval)
                if self.closed:
                    return
                self.transport.write(event)
            if close:
                self._send(b"", True)
        self.busy = False
        self._drain_requests()


def serve(host: str, port: int, behaviour: Behaviour, sock: socket.socket | None = None) -> None:
    """Run one server process until SIGTERM or SIGINT."""
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        if sock is not None:
            server = await loop.create_server(lambda: UpstreamProtocol(behaviour), sock=sock, backlog=4096)
        else:
            server = await loop.create_server(
                lambda: UpstreamProtocol(behaviour), host, port, reuse_port=True, backlog=4096)
        await stop
        server.close()

    asyncio.run(main())


def main(argv: list[str] | None = None) -> None:
    """Command line entry: start the fake (optionally several processes on one port)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering")
    parser.add_argument("--chunks", type=int, default=8, help="content chunks per stream")
    parser.add_argument("--chunk-interval-ms", type=float, default=0.0, help="gap between stream chunks")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args(argv)
    behaviour = Behaviour(latency=args.latency_ms / 1000, chunks=args.chunks,
                          chunk_interval=args.chunk_interval_ms / 1000)
    children = []
    for _ in range(args.processes - 1):
        pid = os.fork()
        if pid == 0:
            serve(args.host, args.port, behaviour)
            os._exit(0)
        children.append(pid)
    print(f"fake upstream on http://{args.host}:{args.port}/v1 ({args.processes} process(es))", flush=True)
    try:
        serve(args.host, args.port, behaviour)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    sys.exit(0)


if __name__ == "__main__":
    main()
