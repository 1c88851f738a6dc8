"""Operator changes to the catalogue: versioned rows, and the poller that applies them.

The providers file is the base catalogue. An operator's change (a new price, a model
switched off or on) is a new row in ``catalog_overrides``; rows are never edited, so the
table is the catalogue's price history. Each row carries the model's full state
(both prices, the three cache prices and ``enabled``), an ``effective_from`` time and a
``version`` (the row id, increasing). The state in force for a model is its row with the
latest ``effective_from`` not after now (ties: the higher version), or the file's entry
when it has none. Long-context tiers stay as the file has them.

Every gateway process runs a ``CatalogRefresher`` that re-reads the rows in force every
``interval`` seconds (the key refresh interval, 0.5 s by default) and swaps changed
models into the shared ``Catalog`` as new ``Model`` objects. So a change reaches every
process within one interval plus a query, and the process that recorded it applies it
before answering. A request keeps the ``Model`` it resolved when it started, so it is
charged at the price in force at that moment even if the price changes mid-stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..background import repeat_every, stop_task
from ..catalog import CACHE_PRICES, Catalog, Model
from ..db import Database, UTCDateTime, metadata, utcnow

log = logging.getLogger("samalink.gateway.catalog")

catalog_overrides = sa.Table(
    "catalog_overrides",
    metadata,
    sa.Column("version", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.String(100), nullable=False),
    sa.Column("input_price", sa.BigInteger),
    sa.Column("output_price", sa.BigInteger),
    sa.Column("enabled", sa.Boolean, nullable=False),
    # Cache prices (null: the input price). Rows written before cache prices could be
    # changed have cache_prices_set false and keep the providers file's cache prices.
    sa.Column("cache_read_price", sa.BigInteger),
    sa.Column("cache_write_price", sa.BigInteger),
    sa.Column("cache_write_1h_price", sa.BigInteger),
    sa.Column("cache_prices_set", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("effective_from", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(320), nullable=False, server_default=""),
    sa.Column("reason", sa.String(500), nullable=False, server_default=""),
    sa.Index("ix_catalog_overrides_model_effective", "model_id", "effective_from"),
)


def change_dict(row: Any) -> dict:
    """One catalogue change as the internal API shows it."""
    return {
        "version": row.version,
        "model_id": row.model_id,
        "input_price": row.input_price,
        "output_price": row.output_price,
        "enabled": bool(row.enabled),
        # Null in a row written before cache prices could be changed: the file's stayed in force.
        **{name: getattr(row, name) if row.cache_prices_set else None for name in CACHE_PRICES},
        "cache_prices_set": bool(row.cache_prices_set),
        "effective_from": row.effective_from,
        "created_at": row.created_at,
        "actor": row.actor,
        "reason": row.reason,
    }


def rows_in_force(rows: list[Any], now: datetime) -> dict[str, Any]:
    """Per model, the row in force at ``now``: latest ``effective_from`` ≤ now, then highest version."""
    chosen: dict[str, Any] = {}
    for row in rows:
        if row.effective_from > now:
            continue
        best = chosen.get(row.model_id)
        if best is None or (row.effective_from, row.version) > (best.effective_from, best.version):
            chosen[row.model_id] = row
    return chosen


def read_in_force(conn: Connection, now: datetime) -> dict[str, Any]:
    """The rows in force at ``now``, by model id (the table holds one row per change: small)."""
    rows = list(conn.execute(sa.select(catalog_overrides).where(catalog_overrides.c.effective_from <= now)))
    return rows_in_force(rows, now)


def list_changes(conn: Connection, limit: int = 200) -> list[Any]:
    """The newest changes first."""
    return list(conn.execute(
        sa.select(catalog_overrides).order_by(catalog_overrides.c.version.desc()).limit(limit)))


def record_change(conn: Connection, model_id: str, input_price: int | None, output_price: int | None,
                  enabled: bool, effective_from: datetime, actor: str, reason: str,
                  cache_prices: dict[str, int | None] | None = None) -> Any:
    """Append one change; returns its row (with its version).

    ``cache_prices`` maps each of ``CACHE_PRICES`` to its price (None: the input price);
    a change without it leaves the cache prices as the providers file has them.
    """
    result = conn.execute(catalog_overrides.insert().values(
        model_id=model_id, input_price=input_price, output_price=output_price, enabled=enabled,
        effective_from=effective_from, created_at=utcnow(), actor=actor, reason=reason,
        cache_prices_set=cache_prices is not None, **(cache_prices or {}),
    ))
    version = result.inserted_primary_key[0]
    return conn.execute(sa.select(catalog_overrides).where(catalog_overrides.c.version == version)).one()


def apply_overrides(catalog: Catalog, base: dict[str, Model], in_force: dict[str, Any]) -> list[str]:
    """Put the state in force for every model into ``catalog``; the ids that changed.

    Models are replaced, never mutated: a request holding the old ``Model`` keeps its price.
    """
    changed = []
    for model_id, original in base.items():
        row = in_force.get(model_id)
        wanted = original
        if row is not None:
            cache = {name: getattr(row, name) for name in CACHE_PRICES} if getattr(row, "cache_prices_set", False) else {}
            wanted = dataclasses.replace(original, input_price=row.input_price, output_price=row.output_price,
                                         enabled=bool(row.enabled), **cache)
        if catalog.models.get(model_id) != wanted:
            catalog.models[model_id] = wanted
            changed.append(model_id)
    return changed


class CatalogRefresher:
    """Polls ``catalog_overrides`` and keeps this process's catalogue up to date."""

    def __init__(self, db: Database, catalog: Catalog, interval: float) -> None:
        self.db = db
        self.catalog = catalog
        self.interval = interval
        # The providers file's models, before any operator change.
        self.base: dict[str, Model] = dict(catalog.models)
        self.last_refresh_at: datetime | None = None
        self._task: asyncio.Task | None = None
        # One refresh at a time: a poll that read before a change committed must not
        # apply its older snapshot after the refresh that follows the change.
        self._lock = asyncio.Lock()

    async def refresh(self) -> list[str]:
        """Read the rows in force now and apply them; the ids of models that changed."""
        async with self._lock:
            now = utcnow()
            in_force = await self.db.read(read_in_force, now)
            changed = apply_overrides(self.catalog, self.base, in_force)
            self.last_refresh_at = now
        if changed:
            log.info("catalogue changes applied: %s", ", ".join(changed))
        return changed

    async def start(self) -> None:
        """Apply what is in force, then keep polling in the background."""
        await self.refresh()
        self._task = repeat_every(self.interval, self.refresh, "catalogue refresh")

    async def close(self) -> None:
        """Stop polling."""
        await stop_task(self._task)
        self._task = None
