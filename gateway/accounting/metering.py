"""What a request cost, and the batch writer that records and charges it.

``BatchWriter.settle`` is called once per request (from a ``finally``) and only queues;
a background task commits, per flush and in ONE transaction, ``write_batch``'s phases:
the request log rows, the usage charges (``ledger.debit_usage``: one ledger entry per
charged request, idempotency key ``usage:<request_id>``), the lease consumption
(``leases.settle_reservations``), the keys' spend and last use, and the usage sums (15-minute
buckets, and days in the account's zone). A flush that fails for a transient reason
(the connection, a lock) keeps its batch and retries it; a batch that did commit is
recognised by its request ids and never charged twice. Every record is made safe to
store before it is queued (``normalise``); one the database still refuses is found by
splitting the batch, kept in ``dead_letters`` with its error, and never blocks the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import metrics
from ..auth import KeyCache
from ..db import (
    Database, accounts, api_keys, dead_letters, in_list, request_attempts, request_log, upsert, usage_rollups,
    utcnow,
)
from .budgets import add_budget_spend
from .leases import Reservation, Reserver, Settled, settle_reservations
from .ledger import UsageCharge, debit_usage
from .usage import BUCKET_SECONDS, DAY_TABLES, SUMS, local_day

log = logging.getLogger("samalink.gateway.metering")


@dataclass(frozen=True)
class Attempt:
    """One try of a request on one channel: the status it ended with and how long it took."""

    channel: str
    status: int
    latency_ms: int
    error_class: str | None = None


# More tries than any catalogue has channels: the rest are not logged.
MAX_ATTEMPTS = 20


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
    # The parts of input_tokens (which stays ALL input) read from or written to a prompt cache,
    # and the part of output_tokens spent reasoning (accounting/pricing.py prices them).
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # the default (5-minute) lifetime
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    price_tier: int | None = None  # the above_input_tokens of the long-context tier applied
    saved_micro_p: int = 0  # what caching saved; negative when cache writes cost more than they saved
    channel: str = ""  # the channel that served, or the last one tried
    upstream_cost_micro_p: int | None = None  # what that channel cost the operator (None: no cost known)
    attempts: tuple[Attempt, ...] = ()


# Far above any real request, far below what a BigInteger sum of a batch can hold
# (500 records at the bound stay under 2**63).
MAX_TOKENS = 10**12
MAX_COST_MICRO_P = 10**15
MAX_INT32 = 2**31 - 1
# NUL (PostgreSQL refuses it in text), other control characters, lone surrogates (not
# encodable as UTF-8): each becomes U+FFFD, so what was there stays visible.
_UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_REPLACEMENT = "\ufffd"


def _text(value: object, limit: int, default: str = "") -> str:
    """``value`` as a string of at most ``limit`` storable characters."""
    if value is None:
        return default
    if not isinstance(value, str):
        try:
            value = str(value)
        except Exception:  # noqa: BLE001 - a broken __str__ must not stop the record
            return default
    return _UNSAFE_CHARS.sub(_REPLACEMENT, value[:limit])


def _optional_text(value: object, limit: int) -> str | None:
    return None if value is None else _text(value, limit)


def _integer(value: object, low: int, high: int, default: int) -> int:
    """``value`` as an int within [low, high]; ``default`` when it is not a number."""
    try:
        number = int(value)  # floats truncate; inf and NaN raise
    except (TypeError, ValueError, OverflowError):
        return default
    return min(max(number, low), high)


def _flag(value: object) -> bool:
    try:
        return bool(value)
    except Exception:  # noqa: BLE001
        return False


# Looked up once: normalise runs for every request.
_COLUMN_LENGTHS = {column.name: getattr(column.type, "length", None) for column in request_log.c}


def _column_length(name: str) -> int:
    return _COLUMN_LENGTHS[name]


def normalise(record: RequestRecord) -> RequestRecord:
    """A copy of ``record`` that every column of ``request_log`` accepts. Never raises.

    Strings lose NUL, control characters and lone surrogates and are cut to their
    column's size; numbers are bounded (tokens, cost and times never negative, what caching
    saved within ±MAX_COST_MICRO_P, the status an HTTP status); a time that is not aware
    becomes now.
    """
    get = lambda name, default=None: getattr(record, name, default)  # noqa: E731
    created_at = get("created_at")
    if not isinstance(created_at, datetime) or created_at.tzinfo is None:
        created_at = utcnow()
    else:
        try:
            created_at = created_at.astimezone(timezone.utc)
        except (OverflowError, ValueError):
            created_at = utcnow()
    ttft = get("ttft_ms")
    tier = get("price_tier")
    upstream_cost = get("upstream_cost_micro_p")
    return RequestRecord(
        request_id=_text(get("request_id"), _column_length("request_id")),
        account_id=_text(get("account_id"), _column_length("account_id")),
        key_id=_text(get("key_id"), _column_length("key_id")),
        model=_text(get("model"), _column_length("model")),
        provider=_text(get("provider"), _column_length("provider")),
        endpoint=_text(get("endpoint"), _column_length("endpoint")),
        stream=_flag(get("stream")),
        input_tokens=_integer(get("input_tokens"), 0, MAX_TOKENS, 0),
        output_tokens=_integer(get("output_tokens"), 0, MAX_TOKENS, 0),
        cost_micro_p=_integer(get("cost_micro_p"), 0, MAX_COST_MICRO_P, 0),
        latency_ms=_integer(get("latency_ms"), 0, MAX_INT32, 0),
        ttft_ms=None if ttft is None else _integer(ttft, 0, MAX_INT32, 0),
        status=_integer(get("status"), 100, 599, 500),
        error_class=_optional_text(get("error_class"), _column_length("error_class")),
        estimated=_flag(get("estimated")),
        created_at=created_at,
        flags=_text(get("flags"), _column_length("flags")),
        cache_read_tokens=_integer(get("cache_read_tokens", 0), 0, MAX_TOKENS, 0),
        cache_write_tokens=_integer(get("cache_write_tokens", 0), 0, MAX_TOKENS, 0),
        cache_write_1h_tokens=_integer(get("cache_write_1h_tokens", 0), 0, MAX_TOKENS, 0),
        reasoning_tokens=_integer(get("reasoning_tokens", 0), 0, MAX_TOKENS, 0),
        price_tier=None if tier is None else _integer(tier, 0, MAX_TOKENS, 0),
        saved_micro_p=_integer(get("saved_micro_p", 0), -MAX_COST_MICRO_P, MAX_COST_MICRO_P, 0),
        channel=_text(get("channel", ""), _column_length("channel")),
        upstream_cost_micro_p=None if upstream_cost is None else _integer(upstream_cost, 0, MAX_COST_MICRO_P, 0),
        attempts=_attempts(get("attempts", ())),
    )


def _attempts(value: object) -> tuple[Attempt, ...]:
    """The attempts as ``request_attempts`` stores them; anything that is not an Attempt is left out."""
    try:
        items = list(value)[:MAX_ATTEMPTS]
    except TypeError:
        return ()
    length = request_attempts.c.channel.type.length
    return tuple(
        Attempt(_text(item.channel, length), _integer(item.status, 100, 599, 502),
                _integer(item.latency_ms, 0, MAX_INT32, 0),
                _optional_text(item.error_class, request_attempts.c.error_class.type.length))
        for item in items if isinstance(item, Attempt)
    )


def _changed_fields(before: RequestRecord, after: RequestRecord) -> list[str]:
    names = []
    for name in RequestRecord.__dataclass_fields__:
        try:
            if getattr(before, name, None) != getattr(after, name):
                names.append(name)
        except Exception:  # noqa: BLE001 - a strange value compares as changed
            names.append(name)
    return names


def is_transient(exc: BaseException) -> bool:
    """True for a failure that a later retry of the same rows can get past.

    The connection or the server (``OperationalError``: lost connection, lock timeout,
    deadlock, a database that is locked; ``InterfaceError``; a pool timeout) rather
    than a value in the rows (``DataError``, ``IntegrityError``, ``OverflowError``,
    ``ValueError``, …), which fails the same way every time.
    """
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError,
                            sa.exc.TimeoutError, ConnectionError, TimeoutError))


def bucket_start(when: datetime) -> int:
    """Epoch seconds of the 15-minute UTC bucket holding ``when``."""
    epoch = int(when.timestamp())
    return epoch - epoch % BUCKET_SECONDS


# The statements every flush runs are built once (a new statement object costs its
# construction and its cache key, 0.1–0.8 ms each, in every flush).
_LOGGED_IDS = sa.select(request_log.c.request_id).where(
    request_log.c.request_id.in_(sa.bindparam("b_ids", expanding=True))
)
_ZONES = sa.select(accounts.c.id, accounts.c.usage_tz).where(accounts.c.id.in_(sa.bindparam("b_ids", expanding=True)))
_last_used = sa.bindparam("b_last", type_=api_keys.c.last_used_at.type)
_KEY_USE = (
    api_keys.update()
    .where(api_keys.c.id == sa.bindparam("b_id"))
    .values(
        spent_micro_p=api_keys.c.spent_micro_p + sa.bindparam("b_spent"),
        last_used_at=sa.case(
            (api_keys.c.last_used_at.is_(None), _last_used),
            (api_keys.c.last_used_at < _last_used, _last_used),
            else_=api_keys.c.last_used_at,
        ),
        updated_at=sa.bindparam("b_now", type_=api_keys.c.updated_at.type),
    )
)


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
    _insert_attempts(conn, records)
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
        done.update(conn.execute(_LOGGED_IDS, {"b_ids": in_list(chunk)}).scalars())
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
                "cache_read_tokens": int(r.cache_read_tokens), "cache_write_tokens": int(r.cache_write_tokens),
                "cache_write_1h_tokens": int(r.cache_write_1h_tokens), "reasoning_tokens": int(r.reasoning_tokens),
                "price_tier": None if r.price_tier is None else int(r.price_tier),
                "saved_micro_p": int(r.saved_micro_p),
                "channel": r.channel or None,
                "upstream_cost_micro_p": None if r.upstream_cost_micro_p is None else int(r.upstream_cost_micro_p),
            }
            for r in records
        ],
    )


def _insert_attempts(conn: Connection, records: list[RequestRecord]) -> None:
    """One row per channel tried, for the requests that tried any."""
    rows = [
        {"request_id": r.request_id, "attempt": index, "channel": a.channel, "status": int(a.status),
         "latency_ms": int(a.latency_ms), "error_class": a.error_class, "created_at": r.created_at}
        for r in records for index, a in enumerate(r.attempts)
    ]
    if rows:
        conn.execute(request_attempts.insert(), rows)


def _add_key_use(conn: Connection, records: list[RequestRecord]) -> None:
    """Each key's spend and last use."""
    key_use: dict[str, tuple[int, datetime]] = {}
    for record in records:
        if not record.key_id:
            continue
        spent, last = key_use.get(record.key_id, (0, record.created_at))
        key_use[record.key_id] = (spent + record.cost_micro_p, max(last, record.created_at))
    now = utcnow()
    charges: dict[str, list[tuple[datetime, int]]] = {}
    for record in records:
        if record.key_id and record.cost_micro_p:
            charges.setdefault(record.key_id, []).append((record.created_at, record.cost_micro_p))
    if charges:
        add_budget_spend(conn, charges, now)
    if key_use:
        conn.execute(_KEY_USE, [{"b_id": key_id, "b_spent": key_use[key_id][0], "b_last": key_use[key_id][1],
                                 "b_now": now} for key_id in sorted(key_use)])


def _sums_of(record: RequestRecord) -> tuple[int, ...]:
    """What one record adds to each of ``usage.SUMS``, in that order (both cache-write lifetimes together)."""
    return (1, int(record.input_tokens), int(record.output_tokens), int(record.cost_micro_p),
            int(record.cache_read_tokens), int(record.cache_write_tokens) + int(record.cache_write_1h_tokens),
            int(record.reasoning_tokens), int(record.saved_micro_p))


def _add_usage_sums(conn: Connection, records: list[RequestRecord]) -> None:
    """The 15-minute buckets, and the day rows in each account's zone."""
    rollups: dict[tuple[str, str, str, int], list[int]] = {}
    for record in records:
        key = (record.account_id, record.key_id or "", record.model, bucket_start(record.created_at))
        row = rollups.setdefault(key, [0] * len(SUMS))
        for i, value in enumerate(_sums_of(record)):
            row[i] += value
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
        for row in conn.execute(_ZONES, {"b_ids": in_list(account_ids)})
    }
    for table, column in DAY_TABLES:
        days: dict[tuple[str, int, str], list[int]] = {}
        for (a, k, m, b), v in rollups.items():
            row = days.setdefault((a, local_day(b, zones[a]), k if column == "key_id" else m), [0] * len(SUMS))
            for i, value in enumerate(v):
                row[i] += value
        upsert(
            conn,
            table,
            [{"account_id": a, "day": d, column: g, **dict(zip(SUMS, v))} for (a, d, g), v in sorted(days.items())],
            keys=["account_id", "day", column],
            add=list(SUMS),
        )


def _safe_json(record: RequestRecord) -> str:
    """The record as JSON text that any database stores: ASCII only, fields bounded."""
    fields = {}
    for name in RequestRecord.__dataclass_fields__:
        value = getattr(record, name, None)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            value = value if -(2**63) <= value < 2**63 else str(value)[:40]
        else:
            value = _text(value, 200)
        fields[name] = value
    return json.dumps(fields, ensure_ascii=True, sort_keys=True)


def insert_dead_letter(conn: Connection, record: RequestRecord, exc: BaseException) -> None:
    """Keep ``record``, which the database refused with ``exc``, in ``dead_letters``."""
    message = _text(str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else "", 500)
    conn.execute(dead_letters.insert().values(
        request_id=_text(getattr(record, "request_id", ""), 64),
        account_id=_text(getattr(record, "account_id", ""), 36),
        record=_safe_json(record),
        error_class=_text(type(getattr(exc, "orig", None) or exc).__name__, 100),
        message=message,
        created_at=utcnow(),
    ))


def dead_letter_count(conn: Connection) -> int:
    """How many settled requests the batch writer could not record."""
    return conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one()


Batch = list[tuple[RequestRecord, Reservation | None]]


def observe(record: RequestRecord) -> None:
    """Count a settled request in the metrics (its model only when the catalogue resolved it)."""
    metrics.observe_request(
        record.model if record.provider else "", record.endpoint, record.status, record.channel,
        record.latency_ms / 1000, None if record.ttft_ms is None else record.ttft_ms / 1000,
        {"input": record.input_tokens, "output": record.output_tokens, "cache_read": record.cache_read_tokens,
         "cache_write": record.cache_write_tokens + record.cache_write_1h_tokens,
         "reasoning": record.reasoning_tokens},
        record.cost_micro_p,
    )


@dataclass
class FlushOutcome:
    """What one attempt to commit a batch did, by index into the batch.

    Plain data, so that the work can run on a database thread or in the writer process
    (``writer_process.py``) and the batch writer learns the same either way.
    """

    done: set[int] = field(default_factory=set)  # committed, or refused into dead_letters
    consumed: list[tuple[int, tuple[bool, ...]]] = field(default_factory=list)  # reservation settled: which lease rows shrank
    refused: list[int] = field(default_factory=list)  # refused by the database: not charged
    dead_lettered: int = 0  # of ``refused``, those kept in dead_letters
    error: str | None = None  # the transient failure that stopped it; the rest is retried


def commit_batch(db: Database, batch: Batch) -> FlushOutcome:
    """Commit ``batch`` in one transaction, bisecting rows the database refuses out (blocking).

    A transient error stops the attempt: what committed before it is in ``done``, the
    error in ``error``.
    """
    outcome = FlushOutcome()
    positions = {id(reservation): index for index, (_, reservation) in enumerate(batch) if reservation is not None}
    try:
        _commit_isolating(db, batch, list(range(len(batch))), positions, outcome)
    except Exception as exc:  # noqa: BLE001 - transient (anything else was isolated): retried later
        lines = str(getattr(exc, "orig", None) or exc).splitlines()
        outcome.error = type(exc).__name__ + (f": {lines[0][:200]}" if lines else "")
    return outcome


def _commit_isolating(db: Database, batch: Batch, indexes: list[int], positions: dict[int, int],
                      outcome: FlushOutcome) -> None:
    part = [batch[index] for index in indexes]
    try:
        settled = db.transaction_sync(write_batch, part)
    except Exception as exc:  # noqa: BLE001 - sorted below: transient or a bad row
        if is_transient(exc):
            raise
        if len(indexes) > 1:
            middle = len(indexes) // 2
            _commit_isolating(db, batch, indexes[:middle], positions, outcome)
            _commit_isolating(db, batch, indexes[middle:], positions, outcome)
            return
        if _dead_letter(db, batch[indexes[0]][0], exc):
            outcome.dead_lettered += 1
        outcome.refused.append(indexes[0])
    else:
        outcome.consumed.extend((positions[id(s.reservation)], s.shrunk) for s in settled)
    outcome.done.update(indexes)


def _dead_letter(db: Database, record: RequestRecord, exc: BaseException) -> bool:
    """Keep a refused record in ``dead_letters`` and raise the alarm; False when it could not be kept."""
    error = type(getattr(exc, "orig", None) or exc).__name__
    try:
        db.transaction_sync(insert_dead_letter, record, exc)
    except Exception as second:  # noqa: BLE001
        if is_transient(second):
            raise
        log.error("ALERT request %s of account %s refused by the database (%s) and could not be kept "
                  "in dead_letters (%s); it is not recorded", getattr(record, "request_id", "?"),
                  getattr(record, "account_id", "?"), error, type(second).__name__)
        return False
    log.error("ALERT request %s of account %s refused by the database (%s): kept in dead_letters, "
              "not charged", getattr(record, "request_id", "?"), getattr(record, "account_id", "?"), error)
    return True


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
        transaction_limit: int = 2_000,
        backlog_limit: int = 5_000,
        commit: Callable[[Batch], FlushOutcome] | None = None,
    ) -> None:
        self.db = db
        # Commits one batch, blocking (it runs on a database thread): here, or in the
        # writer process that ``writer_process.WriterProcess.commit`` hands it to.
        self.commit = commit or partial(commit_batch, db)
        self.reserver = reserver
        self.keys = keys
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.shutdown_timeout = shutdown_timeout
        # A flush commits at most this many records per transaction, so neither the write
        # lock nor the memory a transaction's parameters take grows with a backlog.
        self.transaction_limit = transaction_limit
        # More records than this waiting to be committed make new requests wait (``room``):
        # when the process is saturated its writer gets a thin share of the interpreter
        # lock, and without a bound the backlog (and the memory it holds) kept growing.
        self.backlog_limit = backlog_limit
        self.last_flush_at: datetime | None = None
        # Consecutive failed flushes, and since when (monotonic) they have been failing.
        self.failed_flushes = 0
        self.failing_since: float | None = None
        # Records this writer put into dead_letters.
        self.dead_lettered = 0
        self._queue: Batch = []
        self._retry: Batch = []
        # Records of the flush under way not committed yet.
        self._writing = 0
        self._room = asyncio.Event()
        self._room.set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._flush_lock = asyncio.Lock()
        self._closing = False

    @property
    def queue_depth(self) -> int:
        """Records settled but not yet committed."""
        return len(self._queue) + len(self._retry) + self._writing

    async def room(self, timeout: float) -> bool:
        """Wait until the records waiting to be committed are below ``backlog_limit``.

        False when that did not happen within ``timeout`` seconds (flushes failing, or
        the database far slower than the traffic): the caller then turns the request away.
        """
        if self._room.is_set():
            return True
        metrics.BACKLOG_WAITS.inc()
        try:
            await asyncio.wait_for(self._room.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def _update_room(self) -> None:
        if self.queue_depth >= self.backlog_limit:
            self._room.clear()
        else:
            self._room.set()
        metrics.QUEUE_DEPTH.set(self.queue_depth)

    async def start(self) -> None:
        """Start the flushing task."""
        self._task = asyncio.create_task(self._run(), name="samalink-batch-writer")

    def settle(self, record: RequestRecord, reservation: Reservation | None) -> None:
        """Queue the log row and the usage debit; free what the request did not spend. Never raises.

        The record is normalised first, so a value the database would refuse (a NUL in
        a model name, a token count beyond any column) cannot reach the queue.
        """
        try:
            safe = normalise(record)
            changed = _changed_fields(record, safe)
            if changed:
                log.warning("request %s: %s made safe to store", safe.request_id, ", ".join(changed))
            record = safe
            if reservation is not None and self.reserver is not None:
                if record.cost_micro_p == 0:
                    # Nothing to charge: the reservation goes back to the lease right away.
                    self.reserver.release(reservation)
                    reservation = None
                else:
                    # Only the cost stays set aside until the commit.
                    self.reserver.trim(reservation, record.cost_micro_p)
            self._queue.append((record, reservation))
            if len(self._queue) >= self.batch_size:
                self._wake.set()
            observe(record)
            self._update_room()
        except Exception:  # noqa: BLE001 - settling must never break the response path
            log.exception("could not queue request %s", getattr(record, "request_id", "?"))

    async def flush(self) -> bool:
        """Commit everything queued; False (what is left kept for the next try) on a transient error.

        The records go in transactions of at most ``transaction_limit``. A transaction
        that fails for any other reason is split in halves until the rows the database
        refuses are found; the others commit, each refused one goes to ``dead_letters``
        in its own transaction and its reservation is released.
        """
        async with self._flush_lock:
            batch = self._retry + self._queue
            self._retry, self._queue = [], []
            ok = True
            self._writing = len(batch)
            try:
                for start in range(0, len(batch), self.transaction_limit):
                    part = batch[start : start + self.transaction_limit]
                    left = await self._commit(part)
                    self._writing -= len(part)
                    if left:
                        self._retry = left + batch[start + len(part) :]
                        ok = False
                        break
                    self._update_room()
            finally:
                self._writing = 0
            self._update_room()
            if ok:
                # Also after an empty flush: health shows the writer is alive.
                self.last_flush_at = utcnow()
                self._note_success()
            return ok

    async def _commit(self, batch: Batch) -> Batch:
        """Commit ``batch`` (refused rows bisected out); what is left after a transient error."""
        started = time.perf_counter()
        outcome = await self.db.run(self.commit, batch)
        metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
        self._after_commit(batch, outcome)
        if outcome.error is None:
            return []
        metrics.FLUSH_FAILURES.inc()
        self.failed_flushes += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        left = [item for index, item in enumerate(batch) if index not in outcome.done]
        log.warning("flush of %d request(s) failed (%s); will retry", len(left), outcome.error)
        return left

    def _note_success(self) -> None:
        if self.failing_since is not None:
            log.info("flushes succeed again after %d failure(s)", self.failed_flushes)
        self.failed_flushes = 0
        self.failing_since = None

    def _after_commit(self, batch: Batch, outcome: FlushOutcome) -> None:
        """Tell the reserver and the key cache what the committed transactions did."""
        self.dead_lettered += outcome.dead_lettered
        if self.reserver is not None:
            for index, shrunk in outcome.consumed:
                self.reserver.consumed(Settled(batch[index][1], shrunk))
            for index in outcome.refused:
                reservation = batch[index][1]
                if reservation is not None:
                    self.reserver.release(reservation)
        if self.keys is not None:
            refused = set(outcome.refused)
            for index in outcome.done - refused:
                record = batch[index][0]
                if record.key_id and record.cost_micro_p:
                    self.keys.note_spent(record.key_id, record.cost_micro_p)

    def failing_for(self) -> float:
        """Seconds since flushes started failing without a success in between (0 when healthy)."""
        if self.failing_since is None:
            return 0.0
        return time.monotonic() - self.failing_since

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
