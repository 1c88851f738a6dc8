"""The least a Python relay of SSE streams can cost: no gateway logic, only the transport.

    python bench/relay_floor.py --port 9200 --upstream 127.0.0.1:9101 [--mode aiohttp|protocol]

``aiohttp`` relays each POST to the upstream with the gateway's own machinery and
nothing else: a pooled ``ClientSession`` with a read timeout, ``iter_any`` on the
answer and one ``StreamResponse.write`` per read. ``protocol`` is bare uvloop
protocols: the upstream connection's ``data_received`` hands its bytes (HTTP/1.1
chunked framing and all) straight to the client's transport. ``bench/streams.py
--target floor-aiohttp`` / ``floor-protocol`` runs the stream load against either,
so the gateway's CPU per event can be set against what the transport alone costs.
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web


def aiohttp_app(upstream: str) -> web.Application:
    """The relay with aiohttp's client and server, as the gateway uses them."""
    app = web.Application()
    url = f"http://{upstream}/v1/chat/completions"

    async def session_ctx(app: web.Application):
        app["session"] = ClientSession(connector=TCPConnector(limit=0), timeout=ClientTimeout(total=None,
                                                                                              sock_read=300))
        yield
        await app["session"].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with request.app["session"].post(url, data=body, headers={"Content-Type": "application/json"}) as up:
            out = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
            await out.prepare(request)
            async for chunk in up.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", relay)
    return app


class ClientSide(asyncio.Protocol):
    """One client connection: reads its request, opens the upstream, relays the answer's bytes."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            return
        body, self.buffer = rest[:length], rest[length:]
        request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: upstream\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        asyncio.get_running_loop().create_task(self.open_upstream(request))

    async def open_upstream(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(lambda: UpstreamSide(self.transport), *self.upstream)
        transport.write(request)


class UpstreamSide(asyncio.Protocol):
    """The upstream connection: every read goes to the client as it came (the framing is the same)."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def eof_received(self):
        return False


def main() -> None:
    """Command line: serve the relay until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="host:port of the paced fake")
    parser.add_argument("--mode", choices=("aiohttp", "protocol"), default="aiohttp")
    args = parser.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    if args.mode == "aiohttp":
        web.run_app(aiohttp_app(args.upstream), host="127.0.0.1", port=args.port, backlog=4096, print=None,
                    loop=uvloop.new_event_loop())
        return

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: ClientSide((host, int(port))), "127.0.0.1", args.port,
                                          backlog=4096)
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
