"""What a request cost, and the batch writer that records and charges it.

``BatchWriter.settle`` is called once per request (from a ``finally``) and only queues;
a background task commits, per flush and in ONE transaction, ``write_batch``'s phases:
the request log rows, the usage charges (``ledger.debit_usage``: one ledger entry per
charged request, idempotency key ``usage:<request_id>``), the lease consumption
(``leases.settle_reservations``), the keys' spend and last use, and the usage sums (15-minute
buckets, and days in the account's zone). A failed flush keeps
its batch and retries it; a batch that did commit is recognised by its request ids and
never charged twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..auth import KeyCache
from ..catalog import Model
from ..db import Database, accounts, api_keys, request_log, upsert, usage_rollups, utcnow
from .leases import Reservation, Reserver, Settled, settle_reservations
from .ledger import UsageCharge, debit_usage
from .usage import BUCKET_SECONDS, DAY_TABLES, SUMS, local_day

log = logging.getLogger("samalink.gateway.metering")


@dataclass
class RequestRecord:
    """One public API request as it is logged and charged."""

    request_id: str
    account_id: str
    key_id: str
    model: str
    provider: str
    endpoint: str
    stream: bool
    input_tokens: int
    output_tokens: int
    cost_micro_p: int
    latency_ms: int
    ttft_ms: int | None
    status: int
    error_class: str | None
    estimated: bool
    created_at: datetime  # aware UTC
    flags: str = ""  # why the upstream's usage was not taken as reported (see proxy/usage_checks.py)


def cost_micro_p(model: Model, input_tokens: int, output_tokens: int) -> int:
    """The cost in micro-P: prices are P per 1M tokens, i.e. micro-P per token.

    Raises ``ValueError`` for a model without a price (it must be refused earlier).
    """
    if model.input_price is None or model.output_price is None:
        raise ValueError(f"model {model.id} has no price")
    return int(input_tokens) * model.input_price + int(output_tokens) * model.output_price


def affordable_output_tokens(model: Model, input_tokens: int, amount_micro_p: int) -> int:
    """The most output tokens ``amount_micro_p`` pays for after ``input_tokens`` of input."""
    if model.input_price is None or model.output_price is None:
        raise ValueError(f"model {model.id} has no price")
    left = amount_micro_p - int(input_tokens) * model.input_price
    if model.output_price == 0:
        return 2**62 if left >= 0 else 0
    return max(0, left // model.output_price)


def bucket_start(when: datetime) -> int:
    """Epoch seconds of the 15-minute UTC bucket holding ``when``."""
    epoch = int(when.timestamp())
    return epoch - epoch % BUCKET_SECONDS


def write_batch(conn: Connection, batch: list[tuple[RequestRecord, Reservation | None]]) -> list[Settled]:
    """Record and charge ``batch`` inside the caller's transaction, phase by phase.

    Returns the reservations consumed, each with which of its lease rows shrank.
    Records whose request id is already logged (a retried flush whose commit did land)
    are skipped entirely.
    """
    unwritten = _unwritten(conn, batch)
    if not unwritten:
        return []
    records = [record for record, _ in unwritten]
    _insert_log_rows(conn, records)
    debit_usage(conn, (UsageCharge(r.account_id, r.request_id, r.cost_micro_p, f"{r.model} {r.endpoint}")
                       for r in records))
    consumed = settle_reservations(conn, [reservation for _, reservation in unwritten])
    _add_key_use(conn, records)
    _add_usage_sums(conn, records)
    return consumed


def _unwritten(
    conn: Connection, batch: list[tuple[RequestRecord, Reservation | None]]
) -> list[tuple[RequestRecord, Reservation | None]]:
    """The batch without records already logged or repeated within it."""
    ids = [record.request_id for record, _ in batch]
    done: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        done.update(conn.execute(sa.select(request_log.c.request_id).where(request_log.c.request_id.in_(chunk))).scalars())
    unwritten = []
    for record, reservation in batch:
        if record.request_id not in done:
            done.add(record.request_id)
            unwritten.append((record, reservation))
    return unwritten


def _insert_log_rows(conn: Connection, records: list[RequestRecord]) -> None:
    """One request log row per record."""
    conn.execute(
        request_log.insert(),
        [
            {
                "request_id": r.request_id, "account_id": r.account_id, "key_id": r.key_id or None,
                "model": r.model, "provider": r.provider, "endpoint": r.endpoint, "stream": bool(r.stream),
                "input_tokens": int(r.input_tokens), "output_tokens": int(r.output_tokens),
                "cost_micro_p": int(r.cost_micro_p), "latency_ms": int(r.latency_ms),
                "ttft_ms": None if r.ttft_ms is None else int(r.ttft_ms), "status": int(r.status),
                "error_class": r.error_class, "estimated": bool(r.estimated), "flags": r.flags,
                "created_at": r.created_at,
            }
            for r in records
        ],
    )


def _add_key_use(conn: Connection, records: list[RequestRecord]) -> None:
    """Each key's spend and last use."""
    key_use: dict[str, tuple[int, datetime]] = {}
    for record in records:
        if not record.key_id:
            continue
        spent, last = key_use.get(record.key_id, (0, record.created_at))
        key_use[record.key_id] = (spent + record.cost_micro_p, max(last, record.created_at))
    now = utcnow()
    for key_id in sorted(key_use):
        spent, last = key_use[key_id]
        conn.execute(
            api_keys.update()
            .where(api_keys.c.id == key_id)
            .values(
                spent_micro_p=api_keys.c.spent_micro_p + spent,
                last_used_at=sa.case(
                    (api_keys.c.last_used_at.is_(None), last),
                    (api_keys.c.last_used_at < last, last),
                    else_=api_keys.c.last_used_at,
                ),
                updated_at=now,
            )
        )


def _add_usage_sums(conn: Connection, records: list[RequestRecord]) -> None:
    """The 15-minute buckets, and the day rows in each account's zone."""
    rollups: dict[tuple[str, str, str, int], list[int]] = {}
    for record in records:
        key = (record.account_id, record.key_id or "", record.model, bucket_start(record.created_at))
        row = rollups.setdefault(key, [0, 0, 0, 0])
        row[0] += 1
        row[1] += record.input_tokens
        row[2] += record.output_tokens
        row[3] += record.cost_micro_p
    upsert(
        conn,
        usage_rollups,
        [{"account_id": a, "key_id": k, "model": m, "bucket_start": b, **dict(zip(SUMS, v))}
         for (a, k, m, b), v in sorted(rollups.items())],
        keys=["account_id", "key_id", "model", "bucket_start"],
        add=list(SUMS),
    )
    # Read after debit_usage locked the account rows, so a zone change (which rebuilds
    # the day rows under that same lock) is either wholly before this flush or wholly after.
    account_ids = sorted({record.account_id for record in records})
    zones = {
        row.id: ZoneInfo(row.usage_tz)
        for row in conn.execute(sa.select(accounts.c.id, accounts.c.usage_tz).where(accounts.c.id.in_(account_ids)))
    }
    for table, column in DAY_TABLES:
        days: dict[tuple[str, int, str], list[int]] = {}
        for (a, k, m, b), v in rollups.items():
            row = days.setdefault((a, local_day(b, zones[a]), k if column == "key_id" else m), [0, 0, 0, 0])
            for i, value in enumerate(v):
                row[i] += value
        upsert(
            conn,
            table,
            [{"account_id": a, "day": d, column: g, **dict(zip(SUMS, v))} for (a, d, g), v in sorted(days.items())],
            keys=["account_id", "day", column],
            add=list(SUMS),
        )


class BatchWriter:
    """Queues settled requests and commits them in batches off the request path."""

    def __init__(
        self,
        db: Database,
        reserver: Reserver | None,
        keys: KeyCache | None = None,
        flush_interval: float = 0.2,
        batch_size: int = 500,
        shutdown_timeout: float = 30.0,
    ) -> None:
        self.db = db
        self.reserver = reserver
        self.keys = keys
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.shutdown_timeout = shutdown_timeout
        self.last_flush_at: datetime | None = None
        self.failed_flushes = 0
        self._queue: list[tuple[RequestRecord, Reservation | None]] = []
        self._retry: list[tuple[RequestRecord, Reservation | None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._flush_lock = asyncio.Lock()
        self._closing = False

    @property
    def queue_depth(self) -> int:
        """Records settled but not yet committed."""
        return len(self._queue) + len(self._retry)

    async def start(self) -> None:
        """Start the flushing task."""
        self._task = asyncio.create_task(self._run(), name="samalink-batch-writer")

    def settle(self, record: RequestRecord, reservation: Reservation | None) -> None:
        """Queue the log row and the usage debit; free the reservation. Never raises."""
        try:
            if reservation is not None and record.cost_micro_p == 0 and self.reserver is not None:
                # Nothing to charge: the reservation goes back to the lease right away.
                self.reserver.release(reservation)
                reservation = None
            self._queue.append((record, reservation))
            if len(self._queue) >= self.batch_size:
                self._wake.set()
        except Exception:  # noqa: BLE001 - settling must never break the response path
            log.exception("could not queue request %s", getattr(record, "request_id", "?"))

    async def flush(self) -> bool:
        """Commit everything queued; False (batch kept for the next try) on a database error."""
        async with self._flush_lock:
            batch = self._retry + self._queue
            self._retry, self._queue = [], []
            if not batch:
                # Still a completed flush cycle: health shows the writer is alive.
                self.last_flush_at = utcnow()
                return True
            try:
                try:
                    consumed = await self.db.transaction(write_batch, batch)
                except sa.exc.IntegrityError:
                    # Not transient: one record breaks a constraint (say, an unknown
                    # account). Commit the others one by one rather than block them all.
                    consumed, rejected = await self.db.run(self._write_one_by_one, batch)
                    if self.reserver is not None:
                        for reservation in rejected:
                            self.reserver.release(reservation)
            except Exception:  # noqa: BLE001 - keep the batch and retry; never drop usage
                self._retry = batch
                self.failed_flushes += 1
                log.warning("flush of %d request(s) failed; will retry", len(batch), exc_info=True)
                return False
            self.failed_flushes = 0
            self.last_flush_at = utcnow()
            if self.reserver is not None:
                for settled in consumed:
                    self.reserver.consumed(settled)
            if self.keys is not None:
                for record, _ in batch:
                    if record.key_id and record.cost_micro_p:
                        self.keys.note_spent(record.key_id, record.cost_micro_p)
            return True

    def _write_one_by_one(
        self, batch: list[tuple[RequestRecord, Reservation | None]]
    ) -> tuple[list[Settled], list[Reservation]]:
        consumed: list[Settled] = []
        rejected: list[Reservation] = []
        for record, reservation in batch:
            try:
                consumed.extend(self.db.transaction_sync(write_batch, [(record, reservation)]))
            except sa.exc.IntegrityError:
                log.error("request %s violates a constraint and is not recorded", record.request_id)
                if reservation is not None:
                    rejected.append(reservation)
        return consumed, rejected

    async def _run(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._delay())
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    def _delay(self) -> float:
        if self.failed_flushes:
            return min(5.0, self.flush_interval * 2 ** min(self.failed_flushes, 6))
        return self.flush_interval

    async def close(self) -> None:
        """Stop the task and flush what is left, retrying for up to ``shutdown_timeout``."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        deadline = time.monotonic() + self.shutdown_timeout
        while not await self.flush():
            if time.monotonic() > deadline:
                log.error("gave up flushing %d request(s) at shutdown", self.queue_depth)
                return
            await asyncio.sleep(min(1.0, self._delay()))

    def pending_records(self) -> list[RequestRecord]:
        """The records not yet committed (for inspection)."""
        return [record for record, _ in self._retry + self._queue]
