"""Soak run: mixed traffic from many clients through the gateway while the portal is browsed.

    python bench/soak.py                       # 10 minutes, 200 clients
    python bench/soak.py --minutes 1 --clients 50

Everything runs on 127.0.0.1: two fake upstreams (one answering at once, one pacing its
stream chunks), the gateway (``python -m gateway``, SQLite unless ``--database-url``)
and the portal (``python app.py``, waitress). ``--clients`` asyncio clients send a mix
of whole and streamed chat completions, Anthropic-format messages (translated),
embeddings, model listings and deliberately bad requests (malformed JSON, unknown
model, bad key) for ``--minutes`` minutes, while ``--browsers`` threads sign up and
page through the portal (dashboard, usage, request log, keys, billing, settings).

Afterwards the gateway is stopped with SIGTERM (its final flush) and its database is
checked directly:

* every request id a client saw completed with 200 is in the request log (0 lost rows);
* for every account, the balance equals the sum of its ledger entries, and no lease is
  left behind;
* resident memory of the gateway and the portal, sampled every ``--sample-seconds``,
  is flat: the median of the last fifth of the run is within ``--rss-growth`` of the
  median of the second fifth (the first fifth is warm-up).

The figures go to ``bench/results/soak.json``; the exit status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import aiohttp
import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from portal_session import sign_up  # noqa: E402

ACCOUNTS = 20
PORTAL_PAGES = ["/dashboard", "/usage", "/requests", "/keys", "/billing", "/settings", "/models",
                "/pricing", "/docs", "/payments", "/quickstart"]
PASSWORD = "soak test passphrase 2026"
# (weight, kind): what one client request is, picked at random.
MIX = [(40, "chat"), (20, "chat_stream"), (10, "paced_stream"), (10, "messages"), (8, "embeddings"),
       (4, "models"), (3, "bad_json"), (3, "unknown_model"), (2, "bad_key")]


def _request_for(kind: str, key: str, base: str) -> tuple[str, str, dict[str, str], bytes | None]:
    """Method, URL, headers and body of one request of ``kind``."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    chat = {"model": "deepseek-v3.2", "max_tokens": 32,
            "messages": [{"role": "user", "content": f"soak {secrets.token_hex(4)}"}]}
    if kind == "chat":
        return "POST", f"{base}/v1/chat/completions", headers, json.dumps(chat).encode()
    if kind == "chat_stream":
        body = dict(chat, stream=True, stream_options={"include_usage": True})
        return "POST", f"{base}/v1/chat/completions", headers, json.dumps(body).encode()
    if kind == "paced_stream":
        body = dict(chat, model="paced-stream", stream=True)
        return "POST", f"{base}/v1/chat/completions", headers, json.dumps(body).encode()
    if kind == "messages":
        body = {"model": "deepseek-v3.2", "max_tokens": 32, "messages": [{"role": "user", "content": "soak"}]}
        return "POST", f"{base}/v1/messages", headers, json.dumps(body).encode()
    if kind == "embeddings":
        body = {"model": "text-embedding-3-small", "input": ["soak one", "soak two"]}
        return "POST", f"{base}/v1/embeddings", headers, json.dumps(body).encode()
    if kind == "models":
        return "GET", f"{base}/v1/models", headers, None
    if kind == "bad_json":
        return "POST", f"{base}/v1/chat/completions", headers, b'{"model": "deepseek-v3.2", "messages": ['
    if kind == "unknown_model":
        return "POST", f"{base}/v1/chat/completions", headers, json.dumps(dict(chat, model="no-such-model")).encode()
    headers["Authorization"] = "Bearer sama_00000000-0000-4000-8000-000000000000"
    return "POST", f"{base}/v1/chat/completions", headers, json.dumps(chat).encode()


class Tally:
    """What the clients saw: statuses by kind, request ids completed with 200, transport errors."""

    def __init__(self) -> None:
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.completed_ids: set[str] = set()
        self.transport_errors: Counter[str] = Counter()
        self.latencies: list[float] = []


async def _client(session: aiohttp.ClientSession, base: str, keys: list[str], deadline: float,
                  tally: Tally, rng: random.Random) -> None:
    kinds = [kind for weight, kind in MIX for _ in range(weight)]
    while time.monotonic() < deadline:
        kind = rng.choice(kinds)
        method, url, headers, body = _request_for(kind, rng.choice(keys), base)
        started = time.monotonic()
        try:
            async with session.request(method, url, headers=headers, data=body) as response:
                await response.read()  # a stream is read to its end
                tally.statuses[(kind, response.status)] += 1
                if response.status == 200 and kind not in ("models",):
                    request_id = response.headers.get("x-request-id")
                    if request_id:
                        tally.completed_ids.add(request_id)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            tally.transport_errors[type(exc).__name__] += 1
            continue
        tally.latencies.append(time.monotonic() - started)


async def drive_gateway(base: str, keys: list[str], clients: int, seconds: float, seed: int) -> Tally:
    """``clients`` concurrent clients for ``seconds``; what they saw."""
    tally = Tally()
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(_client(session, base, keys, deadline, tally, random.Random(seed + i))
                               for i in range(clients)))
    return tally


def browse_portal(portal: harness.Service, stop: threading.Event, statuses: Counter, index: int) -> None:
    """Sign up (and confirm) one user, then page through the portal until ``stop`` is set."""
    rng = random.Random(index)
    email = f"soak-{index}-{secrets.token_hex(3)}@example.com"
    try:
        session = sign_up(portal, email, PASSWORD)
    except (requests.RequestException, RuntimeError) as exc:
        statuses[f"signup {type(exc).__name__}"] += 1
        return
    while not stop.is_set():
        path = rng.choice(PORTAL_PAGES)
        htmx = rng.random() < 0.3
        try:
            answer = session.get(portal.url + path, timeout=30, allow_redirects=False,
                                 headers={"HX-Request": "true"} if htmx else {})
            statuses[answer.status_code] += 1
        except requests.RequestException as exc:
            statuses[type(exc).__name__] += 1
        stop.wait(rng.uniform(0.05, 0.3))


def check_database(database_url: str, account_ids: list[str], completed_ids: set[str]) -> dict:
    """Lost log rows and ledger sums, read straight from the gateway's database."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            logged: set[str] = set()
            for row in conn.execute(sa.text("SELECT request_id FROM request_log")):
                logged.add(row[0])
            mismatched = []
            for account_id in account_ids:
                balance, leased = conn.execute(sa.text(
                    "SELECT balance_micro_p, leased_micro_p FROM accounts WHERE id = :id"), {"id": account_id}).one()
                total = conn.execute(sa.text(
                    "SELECT COALESCE(SUM(amount_micro_p), 0) FROM ledger_entries WHERE account_id = :id"),
                    {"id": account_id}).scalar_one()
                if balance != total or leased != 0:
                    mismatched.append({"account": account_id, "balance": balance, "entries": total, "leased": leased})
            log_rows = conn.execute(sa.text("SELECT COUNT(*) FROM request_log")).scalar_one()
    finally:
        engine.dispose()
    lost = completed_ids - logged
    return {"log_rows": log_rows, "completed_200": len(completed_ids), "lost_rows": len(lost),
            "lost_examples": sorted(lost)[:5], "ledger_mismatches": mismatched}


def flat_memory(samples: list[float], allowed_growth: float) -> dict:
    """Median RSS of the second fifth against the last fifth of the run."""
    if len(samples) < 10:
        return {"samples": len(samples), "flat": True, "note": "too few samples to judge"}
    fifth = len(samples) // 5
    early = statistics.median(samples[fifth:2 * fifth])
    late = statistics.median(samples[-fifth:])
    growth = (late - early) / early if early else 0.0
    return {"samples": len(samples), "min_mb": round(min(samples), 1), "max_mb": round(max(samples), 1),
            "early_median_mb": round(early, 1), "late_median_mb": round(late, 1),
            "growth": round(growth, 3), "flat": growth <= allowed_growth}


ARENA_ALIGN = 64 * 2**20  # glibc's HEAP_MAX_SIZE on 64-bit: every thread arena starts on such a boundary


def memory_breakdown(pid: int) -> dict[str, float]:
    """Where ``pid``'s (and its children's) resident memory lies, in MB, from /proc/PID/smaps.

    ``heap`` is the brk heap (glibc's main arena), ``thread_arenas`` the anonymous mappings
    that start on a 64 MB boundary (glibc's per-thread arenas), ``other_anon`` every other
    anonymous mapping (pymalloc's 1 MB arenas, large mmap'd blocks, thread stacks),
    ``db_files`` the database file and its WAL/shm mappings, ``other_files`` code and
    libraries. ``anonymous`` and ``private_dirty`` are the kernel's own sums.
    """
    out = dict.fromkeys(("rss", "anonymous", "private_dirty", "heap", "thread_arenas", "other_anon",
                         "db_files", "other_files"), 0.0)
    for each in harness.process_tree(pid):
        try:
            text = Path(f"/proc/{each}/smaps").read_text()
        except OSError:
            continue
        kind = "other_anon"
        for line in text.splitlines():
            head = line.split(None, 1)[0]
            if "-" in head and not head.endswith(":"):  # a mapping's header line: start-end perms ... [path]
                fields = line.split(None, 5)
                path = fields[5].strip() if len(fields) > 5 else ""
                start = int(head.split("-")[0], 16)
                if path == "[heap]":
                    kind = "heap"
                elif not path:
                    kind = "thread_arenas" if start % ARENA_ALIGN == 0 else "other_anon"
                elif ".db" in path:
                    kind = "db_files"
                elif path.startswith("["):
                    kind = "other_anon"  # [stack], [vdso], [anon:…]
                else:
                    kind = "other_files"
            elif head == "Rss:":
                kb = int(line.split()[1]) / 1024
                out["rss"] += kb
                out[kind] += kb
            elif head == "Anonymous:":
                out["anonymous"] += int(line.split()[1]) / 1024
            elif head == "Private_Dirty:":
                out["private_dirty"] += int(line.split()[1]) / 1024
    return {k: round(v, 2) for k, v in out.items()}


def writer_backlog(gateway: harness.Service) -> int | None:
    """Requests the gateway has answered but not yet written (``queue_depth`` of its health)."""
    try:
        _, health = harness.http_json("GET", gateway.info["internal_url"] + "/internal/health",
                                      token=gateway.info["token"], timeout=10)
        return health.get("queue_depth")
    except (OSError, ValueError, AttributeError):
        return None


def _sample_rss(pids: dict[str, int], stop: threading.Event, interval: float, out: dict[str, list[float]],
                breakdown: list[dict], gateway: harness.Service) -> None:
    started = time.monotonic()
    while not stop.is_set():
        for name, pid in pids.items():
            out[name].append(harness.rss_mb(pid))
        breakdown.append({"t": round(time.monotonic() - started, 1), **memory_breakdown(pids["gateway"]),
                          "backlog": writer_backlog(gateway)})
        stop.wait(interval)


def slope_mb_per_min(samples: list[dict], field: str, from_s: float) -> float | None:
    """Least-squares slope of ``field`` over the samples taken at or after ``from_s`` seconds, MB/min."""
    points = [(s["t"], s[field]) for s in samples if s["t"] >= from_s]
    if len(points) < 3:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return round(cov / var * 60, 3) if var else None


def breakdown_summary(samples: list[dict], slope_from_s: float) -> dict:
    """Each category's median in the second and the last fifth of the run, and its late slope."""
    if len(samples) < 10:
        return {}
    fifth = len(samples) // 5
    summary = {}
    for field in samples[0]:
        if field in ("t", "backlog"):
            continue
        early = statistics.median(s[field] for s in samples[fifth:2 * fifth])
        late = statistics.median(s[field] for s in samples[-fifth:])
        summary[field] = {"early_mb": round(early, 1), "late_mb": round(late, 1), "growth_mb": round(late - early, 1),
                          "slope_mb_per_min": slope_mb_per_min(samples, field, slope_from_s)}
    return summary


def mallinfo_lines(log_path: Path) -> list[dict]:
    """glibc's malloc totals and SQLite's memory, as the gateway logged them (``--mallocstats``)."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [{k: round(v, 2) if isinstance(v, float) else v for k, v in json.loads(line.split(" ", 1)[1]).items()}
            for line in lines if line.startswith("bench-mallinfo ")]


def malloc_arenas(log_path: Path) -> list[dict]:
    """pymalloc's arena counts from the ``sys._debugmallocstats`` dumps in a gateway log (``--mallocstats``)."""
    dumps: list[dict] = []
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return dumps
    current: dict = {}
    for line in lines:
        if line.startswith("# arenas allocated total"):
            current = {"allocated_total": int(line.split("=")[-1].replace(",", ""))}
        elif line.startswith("# arenas reclaimed") and current:
            current["reclaimed"] = int(line.split("=")[-1].replace(",", ""))
        elif line.startswith("# arenas highwater mark") and current:
            current["highwater"] = int(line.split("=")[-1].replace(",", ""))
        elif line.startswith("# arenas allocated current") and current:
            current["current"] = int(line.split("=")[-1].replace(",", ""))
            dumps.append(current)
            current = {}
    return dumps


def backlog_summary(samples: list[dict]) -> dict:
    """The writer's backlog over the run: median and largest seen, and the last fifth's median."""
    seen = [s["backlog"] for s in samples if s.get("backlog") is not None]
    if not seen:
        return {}
    return {"median": statistics.median(seen), "max": max(seen),
            "last_fifth_median": statistics.median(seen[-max(1, len(seen) // 5):])}


def memory_table(summary: dict, slope_from: float) -> str:
    """The gateway's memory by kind as a Markdown table."""
    lines = [f"| gateway memory | second fifth MB | last fifth MB | growth MB | slope from {slope_from / 60:g} min, MB/min |",
             "|---|---:|---:|---:|---:|"]
    for field, row in summary.items():
        lines.append(f"| {field} | {row['early_mb']} | {row['late_mb']} | {row['growth_mb']:+} | {row['slope_mb_per_min']} |")
    return "\n".join(lines)


TRACEMALLOC_DIR = harness.RESULTS_DIR / "soak-tracemalloc"


def heap_growth(directory: Path, top: int = 15) -> str:
    """Where the gateway's traced heap grew between its second snapshot (after warm-up) and its last."""
    import tracemalloc

    paths = sorted(directory.glob("*.snapshot"))
    if len(paths) < 3:
        return "tracemalloc: fewer than three snapshots, nothing to compare"
    first, last = tracemalloc.Snapshot.load(str(paths[1])), tracemalloc.Snapshot.load(str(paths[-1]))
    total = lambda snap: sum(stat.size for stat in snap.statistics("filename")) / 2**20  # noqa: E731
    lines = [f"traced heap: {total(first):.1f} MB at {paths[1].stem} → {total(last):.1f} MB at {paths[-1].stem}",
             "", "| growth KB | blocks | where |", "|---:|---:|---|"]
    for stat in last.compare_to(first, "lineno")[:top]:
        frame = stat.traceback[0]
        lines.append(f"| {stat.size_diff / 1024:,.0f} | {stat.count_diff:+,} | `{frame.filename}:{frame.lineno}` |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--browsers", type=int, default=4)
    parser.add_argument("--database-url", default=None, help="gateway database (default: a scratch SQLite file)")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--rss-growth", type=float, default=0.25, help="allowed relative RSS growth")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tracemalloc", action="store_true",
                        help="heap snapshots of the gateway every minute; the growth by line is printed at the end")
    parser.add_argument("--collect-before-snapshot", action="store_true",
                        help="a full garbage collection before each snapshot: only what is still reachable")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the gateway (e.g. MALLOC_ARENA_MAX=2, PYTHONMALLOC=malloc)")
    parser.add_argument("--mallocstats", action="store_true",
                        help="the gateway logs sys._debugmallocstats() every minute (pymalloc arenas) and glibc's "
                             "mallinfo2() with SQLite's sqlite3_memory_used() every 30 s")
    parser.add_argument("--slope-after-minutes", type=float, default=None,
                        help="fit the memory slope from this minute on (default: the last two thirds)")
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    args = parser.parse_args(argv)

    harness.raise_fd_limit()
    harness.warn_if_busy()
    seconds = args.minutes * 60
    fast_port, paced_port = harness.free_port(), harness.free_port()
    services: list[harness.Service] = []
    try:
        services.append(harness.start_fake_upstream(fast_port, name="soak_fast"))
        services.append(harness.start_fake_upstream(paced_port, chunks=8, chunk_interval_ms=50, name="soak_paced"))
        providers = harness.providers_file(fast_port, paced_port)
        extra_env = {}
        if args.tracemalloc:
            shutil.rmtree(TRACEMALLOC_DIR, ignore_errors=True)
            extra_env = {"BENCH_TRACEMALLOC_DIR": str(TRACEMALLOC_DIR),
                         "BENCH_TRACEMALLOC_COLLECT": "1" if args.collect_before_snapshot else "0"}
        if args.mallocstats:
            extra_env["BENCH_MALLOCSTATS_SECONDS"] = "60"
            extra_env["BENCH_MALLINFO_SECONDS"] = "30"
        if args.tracemalloc or args.mallocstats:
            extra_env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent / "tracemalloc_hook"),
                                                       str(harness.REPO_DIR), os.environ.get("PYTHONPATH", "")])
        for pair in args.gateway_env:
            name, _, value = pair.partition("=")
            extra_env[name] = value
        gateway = harness.start_gateway(harness.free_port(), providers, args.database_url,
                                        name="gateway-soak" + (f"-{args.tag}" if args.tag else ""),
                                        extra_env=extra_env)
        services.append(gateway)
        database_url = args.database_url or f"sqlite:///{gateway.workdir / 'gateway.db'}"
        portal = harness.start_portal(harness.free_port(), gateway,
                                      name="portal-soak" + (f"-{args.tag}" if args.tag else ""))
        services.append(portal)
        account_ids, keys = [], []
        for index in range(ACCOUNTS):
            account_id, access = harness.prepare_account(gateway, f"soak-{index}-{secrets.token_hex(3)}")
            account_ids.append(account_id)
            keys.extend(a.key for a in access)

        print(f"soak: {args.clients} clients, {args.browsers} portal browsers, {args.minutes:g} min", flush=True)
        rss: dict[str, list[float]] = {"gateway": [], "portal": []}
        breakdown: list[dict] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(
            {"gateway": gateway.pid, "portal": portal.pid}, stop, args.sample_seconds, rss, breakdown, gateway),
            daemon=True)
        sampler.start()
        portal_statuses: Counter = Counter()
        browsers = [threading.Thread(target=browse_portal, args=(portal, stop, portal_statuses, i), daemon=True)
                    for i in range(args.browsers)]
        for thread in browsers:
            thread.start()
        machine = harness.machine_description()  # the load average at the start of the traffic
        slope_from = (args.slope_after_minutes * 60 if args.slope_after_minutes is not None else seconds / 3)
        started = time.monotonic()
        tally = asyncio.run(drive_gateway(gateway.url, keys, args.clients, seconds, args.seed))
        elapsed = time.monotonic() - started
        stop.set()
        for thread in browsers:
            thread.join(60)
        sampler.join(10)

        # SIGTERM: the server stops taking requests, the writer flushes, leases go back.
        gateway.proc.send_signal(15)
        gateway.proc.wait(90)
        checks = check_database(database_url, account_ids, tally.completed_ids)
        by_status = Counter()
        for (kind, status), count in tally.statuses.items():
            by_status[status] += count
        total = sum(tally.statuses.values())
        latencies = sorted(tally.latencies)
        result = {
            "minutes": args.minutes, "clients": args.clients, "browsers": args.browsers,
            "database": "postgresql" if database_url.startswith("postgresql") else "sqlite",
            "elapsed_s": round(elapsed, 1), "requests": total, "requests_per_s": round(total / elapsed, 1),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1) if latencies else None,
            "by_status": dict(sorted(by_status.items())),
            "by_kind": {f"{k} {s}": c for (k, s), c in sorted(tally.statuses.items())},
            "transport_errors": dict(tally.transport_errors),
            "portal_pages": {str(k): v for k, v in portal_statuses.items()},
            **checks,
            "rss_gateway": flat_memory(rss["gateway"], args.rss_growth),
            "rss_portal": flat_memory(rss["portal"], args.rss_growth),
            "gateway_env": args.gateway_env,
            "gateway_memory": breakdown_summary(breakdown, slope_from),
            "writer_backlog": backlog_summary(breakdown),
            "slope_from_s": slope_from,
            "load_at_end": [round(x, 2) for x in os.getloadavg()],
            "machine": machine,
        }
        if args.mallocstats:
            result["pymalloc_arenas"] = malloc_arenas(gateway.log_path)
            result["mallinfo"] = mallinfo_lines(gateway.log_path)
        result_path = harness.write_result("soak" + (f"-{args.tag}" if args.tag else ""), result)
        result_path.with_name(result_path.stem + "-memory.json").write_text(json.dumps(breakdown))
        failures = []
        if checks["lost_rows"]:
            failures.append(f"{checks['lost_rows']} completed requests missing from the log")
        if checks["ledger_mismatches"]:
            failures.append(f"{len(checks['ledger_mismatches'])} accounts whose balance is not the sum of entries")
        if any(status >= 500 for status in by_status):
            failures.append("the gateway answered 5xx")
        if any(isinstance(k, int) and k >= 500 for k in portal_statuses) or \
                any(not isinstance(k, int) for k in portal_statuses):
            failures.append(f"portal errors: {dict(portal_statuses)}")
        for name in ("rss_gateway", "rss_portal"):
            if not result[name]["flat"]:
                failures.append(f"{name} grew by {result[name]['growth']:.0%}")
        if tally.transport_errors:
            failures.append(f"transport errors: {dict(tally.transport_errors)}")
        print(json.dumps({k: v for k, v in result.items() if k not in ("by_kind", "machine", "gateway_memory")},
                         indent=2))
        print(memory_table(result["gateway_memory"], slope_from))
        if args.tracemalloc:
            print(heap_growth(TRACEMALLOC_DIR))
        print("soak: " + ("OK" if not failures else "FAILED: " + "; ".join(failures)), flush=True)
        return 1 if failures else 0
    finally:
        for service in reversed(services):
            service.stop()


if __name__ == "__main__":
    sys.exit(main())
