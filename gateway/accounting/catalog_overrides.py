"""Operator changes to the catalogue: versioned rows, and the poller that applies them.

The providers file is the base catalogue. An operator's change (a new price, a model
switched off or on) is a new row in ``catalog_overrides``; rows are never edited, so the
table is the catalogue's price history. Each row carries the model's full state
(both prices and ``enabled``), an ``effective_from`` time and a ``version`` (the row id,
increasing). The state in force for a model is its row with the latest
``effective_from`` not after now (ties: the higher version), or the file's entry when
it has none.

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

from ..background import stop_task
from ..catalog import Catalog, Model
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
                  enabled: bool, effective_from: datetime, actor: str, reason: str) -> Any:
    """Append one change; returns its row (with its version)."""
    result = conn.execute(catalog_overrides.insert().values(
        model_id=model_id, input_price=input_price, output_price=output_price, enabled=enabled,
        effective_from=effective_from, created_at=utcnow(), actor=actor, reason=reason,
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
        wanted = original if row is None else dataclasses.replace(
            original, input_price=row.input_price, output_price=row.output_price, enabled=bool(row.enabled))
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
        self._task = asyncio.create_task(self._poll(), name="catalog-refresher")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - the next poll retries; serving goes on
                log.warning("catalogue refresh failed (%s); retrying", type(exc).__name__)

    async def close(self) -> None:
        """Stop polling."""
        await stop_task(self._task)
        self._task = None
