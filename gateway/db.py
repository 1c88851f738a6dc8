"""The gateway's database: tables, engine, migrations, and a thread pool for queries.

The engine is synchronous SQLAlchemy Core; every query runs on a small thread pool
(``Database.run``) so the event loop never waits on the database. SQLite runs in WAL
mode with a busy timeout and takes the write lock at BEGIN (``BEGIN IMMEDIATE``) so two
writers queue instead of failing on a lock upgrade; PostgreSQL runs at READ COMMITTED
and relies on conditional UPDATEs and row locks (see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("samalink.gateway.db")

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Arbitrary constant shared by every gateway process: serialises migrations on PostgreSQL.
MIGRATION_LOCK_ID = 7_311_402_118


class UTCDateTime(sa.types.TypeDecorator):
    """Aware UTC datetimes in Python, naive UTC in the database (same on both dialects)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def utcnow() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(timezone.utc)


metadata = sa.MetaData()

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("email", sa.String(320)),
    sa.Column("external_id", sa.String(200), unique=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("balance_micro_p", sa.BigInteger, nullable=False, server_default="0"),
    # Sum of the leases rows of this account: balance handed out to gateway processes.
    sa.Column("leased_micro_p", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("credited_micro_p", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("spent_micro_p", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("requests", sa.BigInteger, nullable=False, server_default="0"),
    # The zone whose local days ``usage_days`` is kept in (the customer's own).
    sa.Column("usage_tz", sa.String(64), nullable=False, server_default="UTC"),
    # Account-wide requests and tokens per minute an operator may set (null: none).
    sa.Column("rpm_limit", sa.Integer),
    sa.Column("tpm_limit", sa.BigInteger),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_accounts_updated_at", "updated_at"),
)

ledger_entries = sa.Table(
    "ledger_entries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("amount_micro_p", sa.BigInteger, nullable=False),
    sa.Column("balance_after_micro_p", sa.BigInteger, nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("request_id", sa.String(64)),
    sa.Column("description", sa.String(500), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_ledger_account_id", "account_id", "id"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("holder_id", sa.String(36), primary_key=True),
    sa.Column("amount_micro_p", sa.BigInteger, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_leases_expires_at", "expires_at"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("suffix", sa.String(8), nullable=False),
    sa.Column("spend_limit_micro_p", sa.BigInteger),
    sa.Column("spent_micro_p", sa.BigInteger, nullable=False, server_default="0"),
    # The part of the spending limit leased by gateway processes (see accounting/leases.py).
    sa.Column("leased_micro_p", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("last_used_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # A budget that resets each day, week or month (key_controls.period_bounds), beside
    # the lifetime limit above: what it allows, what was spent since the period began,
    # and the part leased by gateway processes, as for the lifetime limit.
    sa.Column("budget_micro_p", sa.BigInteger),
    sa.Column("budget_period", sa.String(8)),
    sa.Column("budget_spent_micro_p", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("budget_leased_micro_p", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("budget_period_start", UTCDateTime),
    sa.Column("budget_resets_at", UTCDateTime),
    # JSON lists: canonical model ids, and addresses or CIDR ranges ("[]": any).
    sa.Column("allowed_models", sa.Text, nullable=False, server_default="[]"),
    sa.Column("allowed_ips", sa.Text, nullable=False, server_default="[]"),
    sa.Column("rpm_limit", sa.Integer),
    sa.Column("tpm_limit", sa.BigInteger),
    # The team member who owns the key (the portal's user id, as text); null outside teams.
    sa.Column("member_id", sa.String(36)),
    sa.Index("ix_api_keys_account_id", "account_id"),
    sa.Index("ix_api_keys_updated_at", "updated_at"),
    sa.Index("ix_api_keys_account_member", "account_id", "member_id"),
)

key_leases = sa.Table(
    "key_leases",
    metadata,
    sa.Column("key_id", sa.String(36), sa.ForeignKey("api_keys.id"), primary_key=True),
    sa.Column("holder_id", sa.String(36), primary_key=True),
    sa.Column("amount_micro_p", sa.BigInteger, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_key_leases_expires_at", "expires_at"),
)

key_budget_leases = sa.Table(
    "key_budget_leases",
    metadata,
    sa.Column("key_id", sa.String(36), sa.ForeignKey("api_keys.id"), primary_key=True),
    sa.Column("holder_id", sa.String(36), primary_key=True),
    sa.Column("amount_micro_p", sa.BigInteger, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_key_budget_leases_expires_at", "expires_at"),
)

# A team member's spend cap per day, week or month, shared by every key of that member
# in the account: kept as a key budget is (accounting/member_budgets.py), with the part
# leased by gateway processes in ``leased_micro_p`` and ``member_budget_leases``. A row
# whose budget was removed stays (null budget and period) so leases never dangle.
member_budgets = sa.Table(
    "member_budgets",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("member_id", sa.String(36), nullable=False),
    sa.Column("budget_micro_p", sa.BigInteger),
    sa.Column("budget_period", sa.String(8)),
    sa.Column("spent_micro_p", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("leased_micro_p", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("period_start", UTCDateTime),
    sa.Column("resets_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("account_id", "member_id", name="uq_member_budgets_member"),
)

member_budget_leases = sa.Table(
    "member_budget_leases",
    metadata,
    sa.Column("member_budget_id", sa.String(36), sa.ForeignKey("member_budgets.id"), primary_key=True),
    sa.Column("holder_id", sa.String(36), primary_key=True),
    sa.Column("amount_micro_p", sa.BigInteger, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_member_budget_leases_expires_at", "expires_at"),
)

# Requests and tokens admitted per minute, per key ("key:<id>") or account
# ("account:<id>"): the shared counters of the rate limits (accounting/ratelimits.py).
rate_windows = sa.Table(
    "rate_windows",
    metadata,
    sa.Column("scope", sa.String(48), primary_key=True),
    # Epoch seconds of the minute's start.
    sa.Column("window_start", sa.BigInteger, primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Index("ix_rate_windows_window_start", "window_start"),
)

request_log = sa.Table(
    "request_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("key_id", sa.String(36)),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("endpoint", sa.String(64), nullable=False),
    sa.Column("stream", sa.Boolean, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_micro_p", sa.BigInteger, nullable=False),
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("ttft_ms", sa.Integer),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error_class", sa.String(100)),
    sa.Column("estimated", sa.Boolean, nullable=False),
    # Why the upstream's usage was not taken as reported (comma-separated; empty when it was).
    sa.Column("flags", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # The parts of input_tokens (all input) read from or written to a prompt cache, the part
    # of output_tokens spent reasoning, the long-context tier applied (its above_input_tokens)
    # and what caching saved (negative when cache writes cost more than they saved).
    sa.Column("cache_read_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cache_write_1h_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reasoning_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("price_tier", sa.BigInteger),
    sa.Column("saved_micro_p", sa.BigInteger, nullable=False, server_default="0"),
    # The channel ("provider:upstream model") that served, or the last one tried; what the
    # operator paid that channel for the usage (None where the channel has no cost).
    sa.Column("channel", sa.String(200)),
    sa.Column("upstream_cost_micro_p", sa.BigInteger),
    sa.Index("ix_request_log_account_id", "account_id", "id"),
    sa.Index("ix_request_log_account_created", "account_id", "created_at"),
    sa.Index("ix_request_log_account_key", "account_id", "key_id", "id"),
)

# Each try of a request on one channel, in order (``attempt`` from 0): what it answered
# and how long it took. Written with the request's log row.
request_attempts = sa.Table(
    "request_attempts",
    metadata,
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("error_class", sa.String(100)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("request_id", "attempt", name="pk_request_attempts"),
    sa.Index("ix_request_attempts_channel_created", "channel", "created_at"),
)

# Each channel's breaker as every gateway process sees it: open (skipped) until
# ``open_until``, switched off by the operator, and its last failure. A process writes
# its own changes and adopts any row whose ``changed_at`` is newer than what it last saw.
channel_health = sa.Table(
    "channel_health",
    metadata,
    sa.Column("channel", sa.String(200), primary_key=True),
    sa.Column("open_until", UTCDateTime),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("last_error", sa.String(200)),
    sa.Column("last_error_at", UTCDateTime),
    sa.Column("changed_at", UTCDateTime, nullable=False),
)

# Provider keys entered in the operator console, encrypted with SECRETS_KEY (Fernet);
# ``hint`` is the masked form the console shows. A key in the environment wins over these.
provider_keys = sa.Table(
    "provider_keys",
    metadata,
    sa.Column("provider", sa.String(64), primary_key=True),
    sa.Column("ciphertext", sa.Text, nullable=False),
    sa.Column("hint", sa.String(20), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Settled requests the batch writer could not record (a value the database refused):
# kept here with the error instead of blocking every later flush. ``record`` is the
# request as JSON text with every field made safe to store.
dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("account_id", sa.String(36), nullable=False),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("error_class", sa.String(100), nullable=False),
    sa.Column("message", sa.String(500), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_dead_letters_created_at", "created_at"),
)

# Balance thresholds an account watches (``name``: low_balance, auto_top_up). ``armed`` is
# true while the balance is at or above the threshold: falling below disarms it and
# records one event, climbing back re-arms it (see accounting/events.py).
balance_thresholds = sa.Table(
    "balance_thresholds",
    metadata,
    sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("name", sa.String(32), nullable=False),
    sa.Column("threshold_micro_p", sa.BigInteger, nullable=False),
    sa.Column("armed", sa.Boolean, nullable=False),
    sa.PrimaryKeyConstraint("account_id", "name", name="pk_balance_thresholds"),
)

# The outbox the portal polls (GET /internal/events): one row per threshold crossing,
# written in the transaction whose balance (or budget spend) change crossed it.
account_events = sa.Table(
    "account_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("balance_micro_p", sa.BigInteger, nullable=False),
    sa.Column("threshold_micro_p", sa.BigInteger, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Budget events only (budget_80, budget_100): whose budget ("key" or "member" and its
    # id), which period, and the budget and spend at the crossing.
    sa.Column("subject_kind", sa.String(8)),
    sa.Column("subject_id", sa.String(36)),
    sa.Column("period_start", UTCDateTime),
    sa.Column("resets_at", UTCDateTime),
    sa.Column("budget_micro_p", sa.BigInteger),
    sa.Column("spent_micro_p", sa.BigInteger),
    sa.Index("ux_account_events_budget_period", "kind", "account_id", "subject_kind", "subject_id", "period_start",
             unique=True),
)


def _cache_sums() -> list[sa.Column]:
    """The sums of the cached and reasoning parts (cache writes of both lifetimes together)
    and of what caching saved; zero in rows summed before they were kept."""
    return [sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
            for name in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "saved_micro_p")]


usage_rollups = sa.Table(
    "usage_rollups",
    metadata,
    sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("key_id", sa.String(36), nullable=False),
    sa.Column("model", sa.String(100), nullable=False),
    # Start of the 15-minute UTC bucket, epoch seconds: every real time zone offset is
    # a multiple of 15 minutes, so a bucket never straddles a local midnight.
    sa.Column("bucket_start", sa.BigInteger, nullable=False),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_micro_p", sa.BigInteger, nullable=False),
    *_cache_sums(),
    sa.UniqueConstraint("account_id", "key_id", "model", "bucket_start", name="uq_usage_rollups_bucket"),
    sa.Index("ix_usage_rollups_account_bucket", "account_id", "bucket_start"),
)


def _day_sums(name: str, column: sa.Column) -> sa.Table:
    """The usage sums per local day in the account's ``usage_tz`` and per ``column``."""
    return sa.Table(
        name,
        metadata,
        sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
        # Days since 1970-01-01 in the account's zone.
        sa.Column("day", sa.Integer, nullable=False),
        column,
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_micro_p", sa.BigInteger, nullable=False),
        *_cache_sums(),
        # Reports read a range of days in key order; on SQLite the table is that key's
        # b-tree itself (no rowid), so they touch no other page.
        sa.PrimaryKeyConstraint("account_id", "day", column.name, name=f"pk_{name}"),
        sqlite_with_rowid=False,
    )


# The buckets summed per local day, written with them and rebuilt from them when the
# zone changes: a 90-day report reads 90 rows per model (or key) instead of 96 × 90 per
# model and key. One table per report dimension, so neither has to group the other away.
usage_days = _day_sums("usage_days", sa.Column("model", sa.String(100), nullable=False))
usage_key_days = _day_sums("usage_key_days", sa.Column("key_id", sa.String(36), nullable=False))


def upsert(conn: Connection, table: sa.Table, rows: list[dict], keys: list[str], add: list[str] = (), replace: list[str] = ()) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE on SQLite or PostgreSQL.

    ``add`` columns are incremented by the inserted value, ``replace`` columns overwritten.
    """
    if not rows:
        return
    conn.execute(_upsert_statement(conn.dialect.name, table, tuple(keys), tuple(add), tuple(replace)), rows)


def in_list(values: Iterable[T]) -> list[T]:
    """``values`` for an expanding IN parameter, padded to a power of two (at least 8) by
    repeating the last one, which changes no IN's result.

    Each length of the list renders its own SQL, and each connection's driver keeps up to
    128 prepared statements. The batch writer's IN lists of every length up to 2,000 filled
    those caches with large statements (about 75 KB each at 500 ids) for as long as the
    process ran (bench/README.md, "Soak"); padded, a statement has at most nine shapes.
    """
    padded = list(values)
    if padded:
        size = max(8, 1 << (len(padded) - 1).bit_length())
        padded.extend([padded[-1]] * (size - len(padded)))
    return padded


@functools.lru_cache(maxsize=64)
def _upsert_statement(dialect: str, table: sa.Table, keys: tuple[str, ...], add: tuple[str, ...],
                      replace: tuple[str, ...]) -> sa.Insert:
    # Built once per shape: a statement object keeps its cache key, so the batch writer's
    # flushes skip rebuilding and re-keying it (about 0.8 ms each, per table, per flush).
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table)
    set_ = {c: table.c[c] + stmt.excluded[c] for c in add}
    set_.update({c: stmt.excluded[c] for c in replace})
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=set_)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is turned off: BEGIN is emitted below.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # Taking the write lock at BEGIN makes concurrent writers wait on busy_timeout
    # instead of failing when a read transaction tries to upgrade. Read-only work
    # (Database.read) begins a plain deferred transaction: WAL readers never wait.
    if conn.get_execution_options().get("samalink_read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, pool_size: int = 8) -> Engine:
    """Create the engine for ``url`` with the pragmas and pool each dialect needs."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10},
            pool_size=pool_size,
            max_overflow=0,
            hide_parameters=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # hide_parameters: error messages and logs never carry bound values.
    return sa.create_engine(url, pool_size=pool_size, max_overflow=4, pool_pre_ping=True, hide_parameters=True)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to the newest migration (concurrent starters wait for each other)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_ID)))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


class Database:
    """An engine plus the thread pool its queries run on."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=threads + 2)
        self.dialect = self.engine.dialect.name
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="samalink-db")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the database thread pool and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    async def transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` inside one transaction on the thread pool."""
        return await self.run(self.transaction_sync, fn, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run read-only ``fn(conn, *args)`` on the thread pool, in a snapshot that is rolled back."""
        return await self.run(self.read_sync, fn, *args)

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run read-only ``fn(conn, *args)`` on the calling thread."""
        with self.engine.connect() as conn:
            conn.execution_options(samalink_read_only=True)
            try:
                return fn(conn, *args)
            finally:
                conn.rollback()

    def transaction_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` inside one transaction on the calling thread."""
        with self.engine.begin() as conn:
            return fn(conn, *args)

    def upgrade(self) -> None:
        """Apply the migrations (blocking)."""
        upgrade(self.engine)

    def ping(self) -> bool:
        """True when a trivial query succeeds."""
        try:
            self.read_sync(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())
            return True
        except sa.exc.SQLAlchemyError:
            return False

    def close(self) -> None:
        """Stop the thread pool and close every pooled connection."""
        self._pool.shutdown(wait=True)
        self.engine.dispose()


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL must still produce a message
        return url.split("@")[-1]
