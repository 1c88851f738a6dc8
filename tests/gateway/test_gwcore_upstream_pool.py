"""The upstream connection pool: sized from configuration, no cap by default, connections reused."""

from __future__ import annotations

import asyncio
import resource

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.app import upstream_session
from gateway.config import ConfigError, Settings

TOKEN = "a-long-enough-internal-token"


def settings(**env: str) -> Settings:
    return Settings.from_env({"INTERNAL_API_TOKEN": TOKEN, **env})


async def peak_in_flight(settings: Settings, clients: int, hold: float = 10.0) -> tuple[int, set[int]]:
    """Send ``clients`` requests at once through the gateway's upstream session.

    The upstream holds every request until all have arrived (or ``hold`` seconds have passed),
    so the peak it sees is how many the pool let through at once. Also returns the
    client ports the upstream saw, one per connection used.
    """
    in_flight = 0
    peak = 0
    ports: set[int] = set()
    everyone = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        ports.add(request.transport.get_extra_info("peername")[1])
        if in_flight >= clients:
            everyone.set()
        try:
            await asyncio.wait_for(everyone.wait(), hold)
        except asyncio.TimeoutError:
            pass
        in_flight -= 1
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    async with TestServer(app) as server:
        session = upstream_session(settings)
        try:
            async def one() -> int:
                async with session.post(server.make_url("/v1/chat/completions"), json={}) as response:
                    await response.read()
                    return response.status

            statuses = await asyncio.gather(*(one() for _ in range(clients)))
        finally:
            await session.close()
    assert statuses == [200] * clients
    return peak, ports


def test_by_default_every_client_gets_an_upstream_connection_at_once():
    # Beyond the 1,000 the pool used to be capped at.
    clients = 1200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 3 * clients:
        if hard != resource.RLIM_INFINITY and hard < 3 * clients:
            pytest.skip("the open-file limit is too low for this many sockets")
        resource.setrlimit(resource.RLIMIT_NOFILE, (3 * clients, hard))
    try:
        peak, _ = asyncio.run(peak_in_flight(settings(), clients))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert peak == clients


def test_upstream_connections_caps_the_pool():
    peak, ports = asyncio.run(peak_in_flight(settings(UPSTREAM_CONNECTIONS="3"), 12, hold=0.3))
    assert peak == 3
    # The capped pool reuses its keep-alive connections for the requests that waited.
    assert len(ports) == 3


def test_sequential_requests_reuse_one_connection():
    async def within_one_session() -> set[int]:
        ports: set[int] = set()

        async def handler(request: web.Request) -> web.Response:
            ports.add(request.transport.get_extra_info("peername")[1])
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/", handler)
        async with TestServer(app) as server:
            session = upstream_session(settings())
            try:
                for _ in range(5):
                    async with session.post(server.make_url("/"), json={}) as response:
                        await response.read()
            finally:
                await session.close()
        return ports

    assert len(asyncio.run(within_one_session())) == 1


@pytest.mark.parametrize("value", ["-1", "many"])
def test_a_bad_upstream_connections_value_is_refused_naming_it(value):
    with pytest.raises(ConfigError, match="UPSTREAM_CONNECTIONS"):
        settings(UPSTREAM_CONNECTIONS=value)


def test_a_cookie_one_upstream_answer_sets_is_not_sent_with_the_next_request():
    async def run() -> list[str | None]:
        seen: list[str | None] = []

        async def handler(request: web.Request) -> web.Response:
            seen.append(request.headers.get("Cookie"))
            response = web.json_response({"ok": True})
            response.set_cookie("session", "first-customer")
            return response

        app = web.Application()
        app.router.add_post("/", handler)
        async with TestServer(app) as server:
            session = upstream_session(settings())
            try:
                # A host name, not an address: a cookie jar keeps cookies only for names.
                url = f"http://localhost:{server.port}/"
                for _ in range(2):
                    async with session.post(url, json={}) as response:
                        await response.read()
            finally:
                await session.close()
        return seen

    assert asyncio.run(run()) == [None, None]
