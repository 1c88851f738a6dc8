"""Fill a gateway database with a large request history, through the batch writer's path.

Two accounts: "big" gets 1,000,000 requests and "small" 1,000, spread over the last
90 days, 12 models and 5 keys each. Rows go through ``gateway.accounting.metering.write_batch``
(the function the gateway's ``BatchWriter`` commits every flush with), so the request
log, the usage ledger entries, the key spend and the 15-minute roll-ups are exactly
what real traffic would leave. Accounts and keys are made with the gateway's own
``create_account``, ``post_entry`` and ``create_key``.

    python bench/load_requests.py [--database-url URL] [--requests 1000000] [--small 1000]

The default database is ``bench/results/data/gateway.db`` (SQLite); pass a
``postgresql+psycopg://`` URL to load PostgreSQL. Re-running is safe: request ids are
deterministic and an account already holding its requests is skipped. The account ids
are recorded per database in ``bench/results/loaded_accounts.json`` for
``bench/portal_pages.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

import sqlalchemy as sa  # noqa: E402

from gateway.auth import create_key  # noqa: E402
from gateway.catalog import load_catalog  # noqa: E402
from gateway.db import Database, accounts, api_keys, safe_url  # noqa: E402
from gateway.accounting.ledger import create_account, post_entry  # noqa: E402
from gateway.accounting.metering import RequestRecord, write_batch  # noqa: E402
from gateway.accounting.pricing import TokenUsage, cost_micro_p, price_tier, saved_micro_p  # noqa: E402
from gateway.accounting.usage import set_usage_zone  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_DB = f"sqlite:///{RESULTS_DIR / 'data' / 'gateway.db'}"
ACCOUNTS_FILE = RESULTS_DIR / "loaded_accounts.json"
KEYS_PER_ACCOUNT = 5
# Usage is skewed the way real accounts are: a few cheap models carry most traffic.
MODEL_WEIGHTS = {
    "deepseek-v3.2": 30, "qwen-3.5-plus": 14, "kimi-k2.5": 9, "glm-5": 7, "minimax-m2.5": 6,
    "deepseek-r1": 6, "gpt-5.2": 8, "claude-sonnet-4.5": 7, "claude-haiku-4.5": 5,
    "claude-4.6-opus": 2, "gemini-3.1-pro": 4, "text-embedding-3-small": 2,
}
ERRORS = [(429, "RateLimited"), (502, "UpstreamError"), (504, "UpstreamTimeout"), (400, "BadRequest")]


def ensure_account(db: Database, label: str, credit_micro_p: int) -> tuple[str, list[str]]:
    """The account with external id ``bench-<label>`` and its key ids, created (and credited) once."""

    def work(conn) -> tuple[str, list[str]]:
        row, created = create_account(conn, f"{label}@bench.invalid", f"bench-{label}")
        if created:
            post_entry(conn, row.id, "credit", credit_micro_p, f"bench-credit-{label}", "benchmark balance")
        key_ids = list(conn.execute(
            sa.select(api_keys.c.id).where(api_keys.c.account_id == row.id).order_by(api_keys.c.created_at)
        ).scalars())
        for index in range(len(key_ids), KEYS_PER_ACCOUNT):
            # The full key is not kept: the loaded history needs only the key rows.
            _, key_row = create_key(conn, row.id, f"bench key {index + 1}")
            key_ids.append(key_row.id)
        return row.id, key_ids

    return db.transaction_sync(work)


def generate(label: str, account_id: str, key_ids: list[str], count: int, days: int,
             now: datetime, seed: int, start_index: int = 0):
    """Yield ``count`` records for the account, oldest first, spread evenly over ``days``."""
    catalog = load_catalog(BENCH_DIR / "providers.toml")
    rng = random.Random(seed)
    names = list(MODEL_WEIGHTS)
    weights = list(MODEL_WEIGHTS.values())
    span = days * 86400
    first = now - timedelta(seconds=span)
    for index in range(start_index, count):
        model = catalog.models[rng.choices(names, weights)[0]]
        offset = (index + rng.random()) * span / count
        created = first + timedelta(seconds=offset)
        embedding = model.kind == "embedding"
        stream = not embedding and rng.random() < 0.4
        if rng.random() < 0.03:
            status, error_class = rng.choice(ERRORS)
            input_tokens = output_tokens = 0
        else:
            status, error_class = 200, None
            input_tokens = int(rng.lognormvariate(6.5, 1.0)) + 1
            output_tokens = 0 if embedding else int(rng.lognormvariate(5.5, 0.9)) + 1
        # Agents resend their prompt: most chat turns read much of it from the provider's cache.
        cached = 0 if embedding or rng.random() < 0.5 else int(input_tokens * rng.uniform(0.5, 0.95))
        usage = TokenUsage(input_tokens=input_tokens - cached, cache_read_tokens=cached, output_tokens=output_tokens)
        latency = int(rng.lognormvariate(6.8, 0.6))
        yield RequestRecord(
            request_id=f"bench-{label}-{index:08d}",
            account_id=account_id,
            # Keys mostly stick to "their" models, as applications do.
            key_id=key_ids[names.index(model.id) % len(key_ids)] if rng.random() < 0.8 else rng.choice(key_ids),
            model=model.id,
            provider=model.provider,
            endpoint="/v1/embeddings" if embedding else "/v1/chat/completions",
            stream=stream,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_micro_p=cost_micro_p(model, usage),
            cache_read_tokens=cached,
            price_tier=price_tier(model, input_tokens),
            saved_micro_p=saved_micro_p(model, usage),
            latency_ms=latency,
            ttft_ms=int(latency * rng.uniform(0.1, 0.4)) if stream and status == 200 else None,
            status=status,
            error_class=error_class,
            estimated=False,
            created_at=created,
        )


def load_account(db: Database, label: str, count: int, days: int, batch_size: int, now: datetime,
                 tz: ZoneInfo) -> dict:
    """Load ``count`` requests into the ``label`` account; returns its ids and the load rate."""
    # A generous credit, so the history never drives the balance below zero.
    account_id, key_ids = ensure_account(db, label, credit_micro_p=count * 60_000_000 + 10**12)
    # As when the customer picked their zone before the traffic came: the writer keeps the days.
    db.transaction_sync(set_usage_zone, account_id, tz)
    with db.engine.connect() as conn:
        already = conn.execute(sa.select(accounts.c.requests).where(accounts.c.id == account_id)).scalar_one()
    result = {"label": label, "account_id": account_id, "key_ids": key_ids, "requests": count}
    if already >= count:
        print(f"{label}: already holds {already:,} requests, skipped", flush=True)
        result["seconds"] = None
        return result
    # Earlier partial runs committed whole batches of records in order: resume after them.
    records = generate(label, account_id, key_ids, count, days, now, seed=zlib.crc32(label.encode()),
                       start_index=int(already))
    started = time.perf_counter()
    written = int(already)
    batch: list = []
    for record in records:
        batch.append((record, None))
        if len(batch) >= batch_size:
            db.transaction_sync(write_batch, batch)
            written += len(batch)
            batch = []
            rate = (written - already) / (time.perf_counter() - started)
            print(f"\r{label}: {written:,}/{count:,} requests ({rate:,.0f}/s)", end="", flush=True)
    if batch:
        db.transaction_sync(write_batch, batch)
        written += len(batch)
    seconds = time.perf_counter() - started
    print(f"\r{label}: {written:,} requests in {seconds:,.1f} s ({(written - already) / seconds:,.0f}/s)", flush=True)
    result["seconds"] = round(seconds, 1)
    result["rows_per_second"] = round((written - already) / seconds)
    return result


def main(argv: list[str] | None = None) -> None:
    """Command line: migrate the database, load both accounts, record their ids."""
    parser = argparse.ArgumentParser(description="Load a large request history into a gateway database.")
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--requests", type=int, default=1_000_000, help="requests of the big account")
    parser.add_argument("--small", type=int, default=1_000, help="requests of the small account")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--batch", type=int, default=20_000, help="records per write_batch transaction")
    parser.add_argument("--tz", default="Asia/Kolkata",
                        help="the zone the accounts keep daily sums in (portal_pages.py's users' zone)")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.small < 1 or args.days < 1 or args.batch < 1:
        parser.error("--requests, --small, --days and --batch must be positive")
    db = Database(args.database_url, threads=1)
    try:
        db.upgrade()
        # Both histories end at the same instant, so their pages cover the same dates.
        now = datetime.now(timezone.utc).replace(microsecond=0)
        loaded = [load_account(db, "big", args.requests, args.days, args.batch, now, ZoneInfo(args.tz)),
                  load_account(db, "small", args.small, args.days, args.batch, now, ZoneInfo(args.tz))]
    finally:
        db.close()
    record_accounts(args.database_url, loaded)
    print(f"account ids written to {ACCOUNTS_FILE}")


def record_accounts(database_url: str, loaded: list[dict]) -> None:
    """Remember which accounts a database holds, keyed by its URL (password hidden)."""
    known = read_accounts_file()
    known[safe_url(database_url)] = loaded
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    ACCOUNTS_FILE.write_text(json.dumps(known, indent=2))


def read_accounts_file() -> dict[str, list[dict]]:
    """Every database this loader filled, with its accounts; empty when there is none yet."""
    try:
        data = json.loads(ACCOUNTS_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and "accounts" not in data else {}


def loaded_accounts(database_url: str) -> dict[str, dict] | None:
    """The loaded accounts of ``database_url`` by label ("big", "small"), or None."""
    accounts_list = read_accounts_file().get(safe_url(database_url))
    return {a["label"]: a for a in accounts_list} if accounts_list else None


if __name__ == "__main__":
    main()
