"""Builds the gateway application: one lifespan for every shared resource.

``create_app(settings)`` opens, in order, the database (migrated to the newest schema),
the upstream HTTP session, the key cache, the reserver, the rate limiter, the batch writer, the
catalogue refresher, the console's provider keys and the channel breakers, and closes them in
reverse: the writer's final flush runs before
the reserver returns its leases.

The same application serves both listeners (see ``serve``); ``_listener_guard`` keeps
the internal and admin APIs off the public one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

import aiohttp
from aiohttp import web

from .accounting.catalog_overrides import CatalogRefresher
from .accounting.leases import Reserver
from .accounting.metering import BatchWriter
from .accounting.ratelimits import RateLimiter
from .accounting.writer_process import WriterProcess, in_memory
from .api import admin, guards, internal, public
from .api import metrics as metrics_api
from .accounting.provider_keys import ProviderKeys
from .appkeys import (
    BREAKERS, CATALOG, ENGINE, HTTP, KEYS, LIMITER, PROVIDER_KEYS, REFRESHER, RESERVER, SETTINGS, WRITER,
)
from .auth import KeyCache
from .catalog import load_catalog
from .config import Settings
from .db import Database
from .proxy.providers import simulated
from .proxy.breaker import Breakers

log = logging.getLogger("samalink.gateway")


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = Database(app[SETTINGS].database_url)
    try:
        await db.run(db.upgrade)
    except Exception:
        db.close()
        raise
    app[ENGINE] = db
    yield
    db.close()


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    session = upstream_session(settings)
    app[HTTP] = session
    yield
    await session.close()


def upstream_session(settings: Settings) -> aiohttp.ClientSession:
    """The shared upstream client: keep-alive connections, as many open at once as ``upstream_connections``.

    With the default of no cap every client stream gets its own upstream connection at
    once; a fixed cap below the number of clients made the streams beyond it wait for a
    free connection before their first byte. Cookies an upstream sets are not kept.
    """
    connector = aiohttp.TCPConnector(limit=settings.upstream_connections, limit_per_host=0, keepalive_timeout=60,
                                     ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=settings.upstream_timeout, sock_connect=settings.upstream_connect_timeout)
    # No cookie jar: one customer's upstream answer must not set what another's request
    # sends, and skipping the jar saves its work on every request and answer.
    return aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar())


async def _key_cache(app: web.Application) -> AsyncIterator[None]:
    cache = KeyCache(app[ENGINE], refresh_interval=app[SETTINGS].key_refresh_interval)
    await cache.start()
    app[KEYS] = cache
    yield
    await cache.close()


async def _reserver(app: web.Application) -> AsyncIterator[None]:
    reserver = Reserver(app[ENGINE])
    await reserver.start()
    app[RESERVER] = reserver
    yield
    await reserver.close()


async def _rate_limiter(app: web.Application) -> AsyncIterator[None]:
    limiter = RateLimiter(app[ENGINE])
    await limiter.start()
    app[LIMITER] = limiter
    yield
    await limiter.close()


async def _batch_writer(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    process = None
    if settings.writer_process and not in_memory(settings.database_url):
        process = WriterProcess(settings.database_url, settings.log_format)
        process.start()
    writer = BatchWriter(app[ENGINE], app[RESERVER], app[KEYS], flush_interval=settings.flush_interval,
                         backlog_limit=settings.writer_backlog, commit=process.commit if process else None)
    await writer.start()
    app[WRITER] = writer
    yield
    await writer.close()
    if process is not None:
        await asyncio.get_running_loop().run_in_executor(None, process.close)


async def _catalog_refresher(app: web.Application) -> AsyncIterator[None]:
    # Operators' price changes and switches become live through this poller.
    refresher = CatalogRefresher(app[ENGINE], app[CATALOG], app[SETTINGS].key_refresh_interval)
    await refresher.start()
    app[REFRESHER] = refresher
    yield
    await refresher.close()


async def _provider_keys(app: web.Application) -> AsyncIterator[None]:
    # Keys entered in the console, decrypted in memory and refreshed like the catalogue.
    settings = app[SETTINGS]
    keys = ProviderKeys(app[ENGINE], settings.secrets_key, settings.key_refresh_interval)
    await keys.start()
    app[PROVIDER_KEYS] = keys
    yield
    await keys.close()


async def _breakers(app: web.Application) -> AsyncIterator[None]:
    # Channel breakers, kept in step with every other gateway process through the database.
    settings = app[SETTINGS]
    breakers = Breakers(app[ENGINE], settings.breaker_failures, settings.breaker_cooldown,
                        settings.channel_poll_interval)
    await breakers.start()
    app[BREAKERS] = breakers
    yield
    await breakers.close()


def _on_internal_listener(request: web.Request, internal_port: int) -> bool:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return isinstance(sockname, tuple) and len(sockname) >= 2 and sockname[1] == internal_port


def _listener_guard(internal_port: int):
    """Middleware: ``/internal/...`` and ``/metrics`` exist only on the internal listener.

    On the public port it answers the same JSON 404 as any unknown ``/v1`` path, before
    the token is even looked at: a leaked token alone reaches nothing there.
    """
    @web.middleware
    async def guard(request: web.Request, handler):
        internal = request.path == "/internal" or request.path.startswith("/internal/") \
            or request.path == metrics_api.PATH or len(request.match_info.apps) > 1
        if internal and not _on_internal_listener(request, internal_port):
            return await public.unknown_endpoint(request)
        return await handler(request)

    return guard


def create_app(settings: Settings) -> web.Application:
    """The gateway application for ``settings`` (raises ``ConfigError`` for a bad catalogue)."""
    # The parser's header limits sit above the gateway's own (api/guards.py), which answer in JSON.
    app = web.Application(client_max_size=settings.max_body_bytes, handler_args=guards.PARSER_LIMITS,
                          middlewares=[_listener_guard(settings.internal_port)])
    app[SETTINGS] = settings
    catalog = load_catalog(settings.providers_file)
    # Demo mode, and only demo mode, serves every model with the simulated provider.
    app[CATALOG] = simulated.simulate_catalog(catalog) if settings.demo else catalog
    simulated.configure(simulated.Pace(settings.simulated_first_token_seconds, settings.simulated_tokens_per_second))
    app.cleanup_ctx.extend([_database, _http_session, _key_cache, _reserver, _rate_limiter, _batch_writer, _catalog_refresher,
                            _provider_keys, _breakers])
    internal.setup_routes(app)
    admin.setup_routes(app)
    metrics_api.setup_routes(app)
    public.setup_routes(app)
    return app
