"""A fake upstream per channel that can be told to fail in each way, and a gateway routed over it.

Every channel is a provider of its own whose requests reach one server: OpenAI-wire
providers at ``/openai``, Anthropic-wire ones at ``/anthropic``, so channels share a
wire API and base URL and differ only in their key, as an operator's second key with
the same provider does. The key a request presents names the channel; ``fail(key,
mode)`` tells that channel how to answer:

``ok`` · ``status:NNN`` that error status (in the wire API's error shape) · ``hang`` no
answer for ``HANG_SECONDS`` · ``drop`` the connection closes with no answer ·
``error_event`` 200, then an error event before any content · ``cut`` 200, content, then
the connection drops · ``slow`` content in ``SLOW_PIECES`` pieces, ``SLOW_INTERVAL`` apart.

``channel_catalog(names)`` writes a providers file with, per name, a model of that id
served by three channels ``<name>-a`` (primary), ``<name>-b``, ``<name>-c``.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from fixtures.gateway import start_gateway

PROMPT_TOKENS = 10
COMPLETION_TOKENS = 5
PIECES = ["The", " answer", " is", " here."]
HANG_SECONDS = 30
SLOW_PIECES = 30
SLOW_INTERVAL = 0.1
# Catalogue prices (P per 1M tokens) of every channel model, and each channel's cost.
INPUT_PRICE, OUTPUT_PRICE = 1000, 2000
CHANNEL_COSTS = {"a": (600, 1200), "b": (700, 1300), "c": (800, 1500)}
# The gateway's settings for these tests.
BREAKER_FAILURES = 2
BREAKER_COOLDOWN = 3.0
POLL_INTERVAL = 0.2
UPSTREAM_TIMEOUT = 2


def charge(input_price: int = INPUT_PRICE, output_price: int = OUTPUT_PRICE) -> int:
    """What one fake answer costs at these prices, in micro-P."""
    return PROMPT_TOKENS * input_price + COMPLETION_TOKENS * output_price


KEY_PREFIX, KEY_SUFFIX = "sk-chan-", "-0123456789"


def key_of(channel: str) -> str:
    """The provider key of channel ``<name>-<letter>``."""
    return f"{KEY_PREFIX}{channel}{KEY_SUFFIX}"


def env_of(channel: str) -> str:
    return f"CHAN_{channel.upper().replace('-', '_')}_API_KEY"


@dataclass
class Hit:
    """One request a channel received."""

    channel: str
    model: str
    stream: bool
    key: str


class ChannelUpstream:
    """The fake server: what each channel is told to do and the requests each received."""

    def __init__(self) -> None:
        self.url = ""
        self.modes: dict[str, str] = {}
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def fail(self, channel: str, mode: str) -> None:
        """From now on ``channel`` answers in ``mode`` (``ok`` heals it)."""
        with self._lock:
            self.modes[channel] = mode

    def received(self, channel: str) -> list[Hit]:
        """The requests ``channel`` has received."""
        with self._lock:
            return [hit for hit in self.hits if hit.channel == channel]

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application()
            app.router.add_post("/openai/chat/completions", self._chat)
            app.router.add_post("/anthropic/v1/messages", self._messages)
            self._runner = web.AppRunner(app, shutdown_timeout=0.5)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="channel-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the channel upstream did not start")

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            await self._runner.cleanup()
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        except Exception:  # noqa: BLE001 - a stuck handler must not fail the session
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # --- handlers ----------------------------------------------------------

    async def _mode(self, request: web.Request) -> tuple[str, dict]:
        body = orjson.loads(await request.read())
        presented = request.headers.get("x-api-key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        # Any key "sk-chan-<channel>-<anything>" reaches the channel, so a rotated key does too.
        channel = presented.removeprefix(KEY_PREFIX).rsplit("-", 1)[0]
        with self._lock:
            self.hits.append(Hit(channel, body.get("model", ""), bool(body.get("stream")), presented))
            mode = self.modes.get(channel, "ok")
        return mode, body

    async def _before_answer(self, request: web.Request, mode: str, anthropic: bool) -> web.StreamResponse | None:
        """The answer of a mode that fails before any 200, or None to answer normally."""
        if mode.startswith("status:"):
            status = int(mode.split(":")[1])
            error = {"type": "api_error", "message": f"channel says {status}"}
            body = {"type": "error", "error": error} if anthropic else {"error": error}
            return web.json_response(body, status=status)
        if mode == "hang":
            await asyncio.sleep(HANG_SECONDS)
        if mode == "drop":
            request.transport.close()
            await asyncio.sleep(1)
            return web.Response()
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        mode, body = await self._mode(request)
        early = await self._before_answer(request, mode, anthropic=False)
        if early is not None:
            return early
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                 "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(PIECES)},
                             "finish_reason": "stop"}],
                "usage": usage,
            })
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)

        async def send(data: dict) -> None:
            await out.write(b"data: " + orjson.dumps(data) + b"\n\n")

        await send({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]})
        if mode == "error_event":
            await asyncio.sleep(0.1)  # apart from the preamble, as a provider's error comes
            await send({"error": {"message": "overloaded", "type": "server_error"}})
            return out
        pieces = PIECES * (SLOW_PIECES // len(PIECES)) if mode == "slow" else PIECES
        for index, piece in enumerate(pieces):
            await send({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            if mode == "cut":
                await asyncio.sleep(0.05)
                request.transport.close()
                return out
            if mode == "slow":
                await asyncio.sleep(SLOW_INTERVAL)
        await send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        await send({**base, "choices": [], "usage": usage})
        await out.write(b"data: [DONE]\n\n")
        return out

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        mode, body = await self._mode(request)
        early = await self._before_answer(request, mode, anthropic=True)
        if early is not None:
            return early
        if not body.get("stream"):
            return web.json_response({
                "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                "content": [{"type": "text", "text": "".join(PIECES)}], "stop_reason": "end_turn",
                "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
            })
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)

        async def send(name: str, data: dict) -> None:
            await out.write(b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n")

        await send("message_start", {"message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"], "content": [],
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}}})
        if mode == "error_event":
            await asyncio.sleep(0.1)
            await send("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
            return out
        await send("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        for piece in PIECES:
            await send("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
            if mode == "cut":
                await asyncio.sleep(0.05)
                request.transport.close()
                return out
        await send("content_block_stop", {"index": 0})
        await send("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": COMPLETION_TOKENS}})
        await send("message_stop", {})
        return out


def channel_catalog(path: Path, base_url: str, names: list[str], anthropic: tuple[str, ...] = ()) -> Path:
    """A providers file: per name, a model served by channels ``<name>-a``, ``-b``, ``-c``.

    Names in ``anthropic`` speak Anthropic's wire API. Every channel has a cost.
    """
    lines = []
    for name in names:
        wire = "anthropic" if name in anthropic else "openai"
        for letter in CHANNEL_COSTS:
            channel = f"{name}-{letter}"
            lines += [f"[providers.{channel}]", f'base_url = "{base_url}/{wire}"',
                      f'api_key_env = "{env_of(channel)}"', f'api = "{wire}"', ""]
    for name in names:
        costs = {letter: f"{{ input_price = {i}, output_price = {o} }}" for letter, (i, o) in CHANNEL_COSTS.items()}
        lines += [
            "[[models]]", f'id = "{name}"', f'provider = "{name}-a"', f'upstream = "{name}-up-a"',
            f"input_price = {INPUT_PRICE}", f"output_price = {OUTPUT_PRICE}", f"cost = {costs['a']}",
            f'fallbacks = [ {{ provider = "{name}-b", upstream = "{name}-up-b", cost = {costs["b"]} }},',
            f'              {{ provider = "{name}-c", upstream = "{name}-up-c", cost = {costs["c"]} }} ]', "",
        ]
    path.write_text("\n".join(lines))
    return path


def channel_keys(names: list[str]) -> dict[str, str]:
    """Every channel's key, as the gateway's environment carries it."""
    return {env_of(f"{name}-{letter}"): key_of(f"{name}-{letter}") for name in names for letter in CHANNEL_COSTS}


@pytest.fixture(scope="session")
def channel_upstream():
    """The running fake channel upstream (session-wide)."""
    server = ChannelUpstream()
    server.start()
    yield server
    server.stop()


def channel_gateway_env(channel_upstream: ChannelUpstream, database_url: str, providers: Path,
                        names: list[str]) -> dict[str, str]:
    """Environment for a gateway routed over the channel upstream, with short breaker times."""
    return {
        "PROVIDERS_FILE": str(providers),
        **channel_keys(names),
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_FLUSH_INTERVAL": "0.05",
        "GATEWAY_BREAKER_FAILURES": str(BREAKER_FAILURES),
        "GATEWAY_BREAKER_COOLDOWN": str(BREAKER_COOLDOWN),
        "GATEWAY_CHANNEL_POLL_INTERVAL": str(POLL_INTERVAL),
        "UPSTREAM_TIMEOUT": str(UPSTREAM_TIMEOUT),
        "UPSTREAM_CONNECT_TIMEOUT": "2",
    }


def start_channel_gateway(env: dict[str, str]):
    """A gateway process with ``env`` (see ``channel_gateway_env``)."""
    return start_gateway(env)
