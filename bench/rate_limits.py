"""The cost of the shared rate-limit check (``RateLimiter.admit``) at concurrency 64.

One command: ``python bench/rate_limits.py [--database-url URL ...]``. For each database
(a temporary SQLite file unless URLs are given) it migrates a fresh schema, then runs
``--requests`` admissions from 64 concurrent tasks in one process, first all on one key
(the hot row every request of a busy key updates), then spread over 64 keys, then on
one key limited to 100 requests per minute (the rest refused), and prints per-request wall time, the process's CPU time per request, latency percentiles
and how many were admitted (the limit is set so that all fit). Raw figures go to
``bench/results/rate_limits.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.accounting.ratelimits import RateLimit, RateLimited, RateLimiter  # noqa: E402
from gateway.db import Database, safe_url  # noqa: E402

CONCURRENCY = 64


async def run(db: Database, requests: int, scopes: int, tag: str, rpm: int) -> dict:
    limiter = RateLimiter(db)
    limits = [[RateLimit(f"key:bench-{tag}-{scopes}-{rpm}-{i}", rpm, 10**12)] for i in range(scopes)]
    latencies: list[float] = []
    admitted = 0
    queue = iter(range(requests))

    async def worker() -> None:
        nonlocal admitted
        for i in queue:
            started = time.perf_counter()
            try:
                await limiter.admit(limits[i % scopes], 500)
                admitted += 1
            except RateLimited:
                pass
            latencies.append(time.perf_counter() - started)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await limiter.close()
    latencies.sort()
    return {
        "scopes": scopes, "rpm": rpm, "requests": requests, "admitted": admitted,
        "per_second": requests / wall, "wall_us_per_request": wall / requests * 1e6,
        "cpu_us_per_request": cpu / requests * 1e6,
        "p50_ms": statistics.median(latencies) * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def measure(url: str, requests: int) -> list[dict]:
    db = Database(url)
    db.upgrade()
    tag = str(int(time.time()))
    try:
        # Within the limit on one hot key and on 64 keys; then a key far over its limit
        # (a client retrying into 429s).
        return [asyncio.run(run(db, requests, scopes, tag, rpm))
                for scopes, rpm in ((1, 10_000_000), (CONCURRENCY, 10_000_000), (1, 100))]
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", action="append", default=[])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f}; the figures assume an idle machine", file=sys.stderr)
    urls = args.database_url
    temp = None
    if not urls:
        temp = tempfile.TemporaryDirectory()
        urls = [f"sqlite:///{temp.name}/bench.db"]
    results = {}
    print(f"admissions at concurrency {CONCURRENCY}, {args.requests} per row (load average {load:.2f})\n")
    print("| store | keys | RPM limit | admitted | per second | wall µs/request | CPU µs/request | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for url in urls:
        store = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        rows = measure(url, args.requests)
        results[safe_url(url)] = rows
        for row in rows:
            print(f"| {store} | {row['scopes']} | {row['rpm']:,} | {row['admitted']} | {row['per_second']:,.0f} | "
                  f"{row['wall_us_per_request']:,.0f} | {row['cpu_us_per_request']:,.0f} | "
                  f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} |")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "rate_limits.json").write_text(json.dumps({"load": load, "results": results}, indent=2))
    if temp is not None:
        temp.cleanup()


if __name__ == "__main__":
    main()
