"""Typed keys for what the gateway keeps on its aiohttp application."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from .accounting.catalog_overrides import CatalogRefresher
from .accounting.leases import Reserver
from .accounting.metering import BatchWriter
from .accounting.provider_keys import ProviderKeys
from .accounting.ratelimits import RateLimiter
from .auth import KeyCache
from .catalog import Catalog
from .config import Settings
from .db import Database
from .proxy.breaker import Breakers

SETTINGS = web.AppKey("settings", Settings)
CATALOG = web.AppKey("catalog", Catalog)
HTTP = web.AppKey("http", aiohttp.ClientSession)
ENGINE = web.AppKey("engine", Database)
KEYS = web.AppKey("keys", KeyCache)
RESERVER = web.AppKey("reserver", Reserver)
WRITER = web.AppKey("writer", BatchWriter)
REFRESHER = web.AppKey("catalog_refresher", CatalogRefresher)
BREAKERS = web.AppKey("breakers", Breakers)
PROVIDER_KEYS = web.AppKey("provider_keys", ProviderKeys)
LIMITER = web.AppKey("rate_limiter", RateLimiter)
