"""Typed keys for what the gateway keeps on its aiohttp application."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from .catalog import Catalog
from .config import Settings

if TYPE_CHECKING:
    from .auth import KeyCache
    from .ledger import Reserver
    from .metering import BatchWriter
    from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: F401

SETTINGS = web.AppKey("settings", Settings)
CATALOG = web.AppKey("catalog", Catalog)
HTTP = web.AppKey("http", aiohttp.ClientSession)
ENGINE = web.AppKey("engine", object)
KEYS = web.AppKey("keys", object)
RESERVER = web.AppKey("reserver", object)
WRITER = web.AppKey("writer", object)
