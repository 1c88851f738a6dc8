"""Hold 2,000 streams open through one gateway process; report its peak RSS and how many completed.

    python bench/streams.py [--streams 2000] [--chunks 20] [--chunk-interval-ms 100] [--workers 1]
        [--slope-chunks 120]

A paced fake upstream sends each stream's chunks ``--chunk-interval-ms`` apart, so a
stream lasts about ``chunks × interval`` and all of them overlap. A stream counts as
completed when it answered 200, carried every content chunk and ended with
``data: [DONE]``. The gateway's resident memory is sampled from /proc every 50 ms
(its whole process tree when it runs several workers), and the connections the
gateway holds open to the fake are counted from /proc/net/tcp.

The gateway's CPU time (user + system, from /proc, which does not grow when other
work shares the cores) is read before and after the run, less what the idle gateway
spends on its timers over the same wall time (measured for two seconds before the
run): "CPU µs/event" divides it by the events the clients received, so it still
includes each stream's own request handling. ``--slope-chunks N`` repeats the run
with N content chunks per stream; the difference in CPU divided by the difference
in events is the cost of relaying one more event, without the per-stream part.

Each client also times the gap between consecutive content chunks of its stream: the
fake spaces them ``--chunk-interval-ms`` apart, so what a gap exceeds that by is what
the path added between two events ("inter-event added", p50 and p99 over every gap).
TTFT is the time to the first content event (the first token), as in load.py.
``--target direct`` runs the same clients against the paced fake itself, the baseline
for TTFT and the gaps (its CPU columns are then the fake's).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from load import FIRST_TOKEN, chat_body, format_table, percentile  # noqa: E402


async def run_streams(url: str, key: str, count: int, chunks: int, ramp: float) -> dict:
    """Open ``count`` streams over ``ramp`` seconds and read each to its end."""
    body = chat_body("paced-stream", stream=True)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    outcomes: Counter[str] = Counter()
    ttfts: list[float] = []
    gaps: list[float] = []
    open_now = 0
    peak_open = 0
    events = 0
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600, sock_connect=60)

    async def one(session: aiohttp.ClientSession, delay: float) -> None:
        nonlocal open_now, peak_open, events
        await asyncio.sleep(delay)
        start = time.perf_counter()
        open_now += 1
        peak_open = max(peak_open, open_now)
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    await resp.read()
                    outcomes[f"HTTP {resp.status}"] += 1
                    return
                content_chunks = 0
                seen_events = 0
                done = False
                first = True
                last_chunk_at = None
                async for line in resp.content:
                    if line.startswith(b"data:"):
                        seen_events += 1
                    if line.startswith(b"data: [DONE]"):
                        done = True
                    elif FIRST_TOKEN in line:
                        content_chunks += 1
                        now = time.perf_counter()
                        if first:
                            ttfts.append(now - start)
                            first = False
                        if last_chunk_at is not None:
                            gaps.append(now - last_chunk_at)
                        last_chunk_at = now
                events += seen_events
                if done and content_chunks == chunks:
                    outcomes["completed"] += 1
                else:
                    outcomes[f"incomplete ({content_chunks}/{chunks} chunks, done={done})"] += 1
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            outcomes[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
        finally:
            open_now -= 1

    began = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(one(session, ramp * i / count) for i in range(count)))
    return {"outcomes": dict(outcomes), "peak_open": peak_open, "events": events, "seconds": time.perf_counter() - began,
            "ttft_p50_ms": percentile(ttfts, 50) * 1000, "ttft_p99_ms": percentile(ttfts, 99) * 1000,
            "gap_p50_ms": percentile(gaps, 50) * 1000, "gap_p99_ms": percentile(gaps, 99) * 1000}


IDLE_SECONDS = 2.0


def measure(args: argparse.Namespace, chunks: int) -> tuple[dict, dict]:
    """One run with ``chunks`` content chunks per stream: its table row and the clients' outcomes."""
    fast_port, paced_port = harness.free_port(), harness.free_port()
    fast = harness.start_fake_upstream(fast_port, name="fake_fast")
    paced = harness.start_fake_upstream(paced_port, chunks=chunks, chunk_interval_ms=args.chunk_interval_ms,
                                        name="fake_paced")
    gateway = None
    try:
        if args.target == "direct":
            relay, key = paced, "none"
        elif args.target == "gateway":
            gateway = harness.start_gateway(harness.free_port(), harness.providers_file(fast_port, paced_port),
                                            args.gateway_database_url, workers=args.workers, name="gateway-streams",
                                            extra_env=dict(item.split("=", 1) for item in args.gateway_env))
            _, access = harness.prepare_account(gateway, f"streams-{int(time.time())}")
            relay, key = gateway, access[0].key
        else:
            gateway = harness.start_relay_floor(harness.free_port(), paced_port, args.target.split("-", 1)[1])
            relay, key = gateway, "none"
        idle_mb = harness.rss_mb(relay.pid)
        idle_start = harness.cpu_seconds(relay.pid)
        time.sleep(IDLE_SECONDS)
        idle_rate = (harness.cpu_seconds(relay.pid) - idle_start) / IDLE_SECONDS
        with harness.RssSampler(relay.pid) as sampler, harness.ConnectionSampler(paced_port) as upstream:
            user_start, system_start = harness.cpu_times(relay.pid)
            outcome = asyncio.run(run_streams(relay.url + "/v1/chat/completions", key,
                                              args.streams, chunks, args.ramp_seconds))
            user_end, system_end = harness.cpu_times(relay.pid)
            user, system = user_end - user_start, system_end - system_start
            cpu = user + system
        hwm_mb = harness.peak_rss_mb(relay.pid)
    finally:
        if gateway is not None:
            gateway.stop()
        fast.stop()
        paced.stop()
    completed = outcome["outcomes"].get("completed", 0)
    busy_cpu = max(0.0, cpu - idle_rate * outcome["seconds"])
    events = max(1, outcome["events"])
    row = {"target": args.target, "streams": args.streams, "chunks": chunks, "completed": completed, "peak_open": outcome["peak_open"],
           "seconds": outcome["seconds"], "idle_rss_mb": idle_mb, "peak_rss_mb": sampler.peak_mb,
           "hwm_rss_mb": hwm_mb, "ttft_p50_ms": outcome["ttft_p50_ms"], "ttft_p99_ms": outcome["ttft_p99_ms"],
           "gap_p50_ms": outcome["gap_p50_ms"], "gap_p99_ms": outcome["gap_p99_ms"],
           "gap_added_p99_ms": outcome["gap_p99_ms"] - args.chunk_interval_ms,
           "workers": args.workers, "upstream_open": upstream.peak, "events": outcome["events"],
           "cpu_s": cpu, "user_s": user, "system_s": system, "idle_cpu_per_s": idle_rate, "busy_cpu_s": busy_cpu,
           "cpu_us_per_stream": busy_cpu / max(1, args.streams) * 1e6, "cpu_us_per_event": busy_cpu / events * 1e6,
           "system_share": system / cpu * 100 if cpu else 0.0, "load_avg": os.getloadavg()[0]}
    return row, outcome["outcomes"]


def main(argv: list[str] | None = None) -> None:
    """Command line: start a paced fake and a gateway, run the streams, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--slope-chunks", type=int, default=0,
                        help="a second run with this many chunks per stream gives the CPU of one more event")
    parser.add_argument("--chunk-interval-ms", type=float, default=100.0)
    parser.add_argument("--ramp-seconds", type=float, default=1.0, help="spread the stream starts over this")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--target", choices=("gateway", "direct", "floor-aiohttp", "floor-protocol"),
                        default="gateway",
                        help="the gateway, the paced fake itself, or bench/relay_floor.py's bare relay in that mode")
    parser.add_argument("--gateway-database-url", default=None)
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the gateway (repeatable)")
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    args = parser.parse_args(argv)
    harness.raise_fd_limit()
    harness.warn_if_busy()
    runs = [measure(args, args.chunks)]
    if args.slope_chunks:
        runs.append(measure(args, args.slope_chunks))
    rows = [row for row, _ in runs]
    result = {"rows": rows, "outcomes": [outcomes for _, outcomes in runs], "args": vars(args)}
    if len(rows) == 2 and rows[1]["events"] != rows[0]["events"]:
        extra = rows[1]["events"] - rows[0]["events"]
        result["cpu_us_per_extra_event"] = (rows[1]["busy_cpu_s"] - rows[0]["busy_cpu_s"]) / extra * 1e6
        result["user_us_per_extra_event"] = (rows[1]["user_s"] - rows[0]["user_s"]) / extra * 1e6
        result["system_us_per_extra_event"] = (rows[1]["system_s"] - rows[0]["system_s"]) / extra * 1e6
    harness.write_result("streams" + (f"-{args.tag}" if args.tag else ""), result)
    print(format_table(rows, [
        ("target", "target"), ("workers", "gateway workers"), ("streams", "streams"), ("chunks", "chunks"), ("completed", "completed"),
        ("peak_open", "client streams open at once"), ("upstream_open", "upstream streams open at once"),
        ("seconds", "wall s"), ("idle_rss_mb", "idle RSS MB"),
        ("peak_rss_mb", "peak RSS MB (sampled)"), ("hwm_rss_mb", "VmHWM MB"),
        ("ttft_p50_ms", "TTFT p50 ms"), ("ttft_p99_ms", "TTFT p99 ms"),
        ("gap_p50_ms", "inter-event p50 ms"), ("gap_p99_ms", "inter-event p99 ms"),
        ("gap_added_p99_ms", "inter-event p99 − interval ms"), ("events", "events"),
        ("busy_cpu_s", "gateway CPU s (less idle)"), ("cpu_us_per_stream", "CPU µs/stream"),
        ("cpu_us_per_event", "CPU µs/event"), ("system_share", "of it kernel %"), ("load_avg", "load avg")]))
    if "cpu_us_per_extra_event" in result:
        print(f"CPU of one more relayed event (slope between the runs): {result['cpu_us_per_extra_event']:.1f} µs "
              f"(user {result['user_us_per_extra_event']:.1f}, kernel {result['system_us_per_extra_event']:.1f}; "
              "idle timers subtracted from the total only)")
    ok = True
    for row, outcomes in runs:
        failures = {k: v for k, v in outcomes.items() if k != "completed"}
        if failures:
            print("not completed:", ", ".join(f"{k}: {v}" for k, v in failures.items()))
        ok = ok and row["completed"] == args.streams and row["peak_rss_mb"] < 300
    print(f"target (all {args.streams:,} completed, peak RSS < 300 MB): {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
