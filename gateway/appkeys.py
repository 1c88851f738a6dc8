"""Typed keys for what the gateway keeps on its aiohttp application."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from .accounting.catalog_overrides import CatalogRefresher
from .accounting.leases import Reserver
from .accounting.metering import BatchWriter
from .accounting.ratelimits import RateLimiter
from .auth import KeyCache
from .catalog import Catalog
from .config import Settings
from .db import Database

SETTINGS = web.AppKey("settings", Settings)
CATALOG = web.AppKey("catalog", Catalog)
HTTP = web.AppKey("http", aiohttp.ClientSession)
ENGINE = web.AppKey("engine", Database)
KEYS = web.AppKey("keys", KeyCache)
RESERVER = web.AppKey("reserver", Reserver)
WRITER = web.AppKey("writer", BatchWriter)
REFRESHER = web.AppKey("catalog_refresher", CatalogRefresher)
LIMITER = web.AppKey("rate_limiter", RateLimiter)
