"""Hold 2,000 streams open through one gateway process; report its peak RSS and how many completed.

    python bench/streams.py [--streams 2000] [--chunks 20] [--chunk-interval-ms 100] [--workers 1]

A paced fake upstream sends each stream's chunks ``--chunk-interval-ms`` apart, so a
stream lasts about ``chunks × interval`` and all of them overlap. A stream counts as
completed when it answered 200, carried every content chunk and ended with
``data: [DONE]``. The gateway's resident memory is sampled from /proc every 50 ms
(its whole process tree when it runs several workers), and the connections the
gateway holds open to the fake are counted from /proc/net/tcp.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from load import chat_body, format_table, percentile  # noqa: E402


async def run_streams(url: str, key: str, count: int, chunks: int, ramp: float) -> dict:
    """Open ``count`` streams over ``ramp`` seconds and read each to its end."""
    body = chat_body("paced-stream", stream=True)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    outcomes: Counter[str] = Counter()
    ttfts: list[float] = []
    open_now = 0
    peak_open = 0
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600, sock_connect=60)

    async def one(session: aiohttp.ClientSession, delay: float) -> None:
        nonlocal open_now, peak_open
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
                done = False
                first = True
                async for line in resp.content:
                    if first:
                        ttfts.append(time.perf_counter() - start)
                        first = False
                    if line.startswith(b"data: [DONE]"):
                        done = True
                    elif b'"content":"Hello there"' in line:
                        content_chunks += 1
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
    return {"outcomes": dict(outcomes), "peak_open": peak_open, "seconds": time.perf_counter() - began,
            "ttft_p50_ms": percentile(ttfts, 50) * 1000, "ttft_p99_ms": percentile(ttfts, 99) * 1000}


def main(argv: list[str] | None = None) -> None:
    """Command line: start a paced fake and a gateway, run the streams, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--chunk-interval-ms", type=float, default=100.0)
    parser.add_argument("--ramp-seconds", type=float, default=1.0, help="spread the stream starts over this")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--gateway-database-url", default=None)
    args = parser.parse_args(argv)
    harness.raise_fd_limit()
    harness.warn_if_busy()
    fast_port, paced_port = harness.free_port(), harness.free_port()
    fast = harness.start_fake_upstream(fast_port, name="fake_fast")
    paced = harness.start_fake_upstream(paced_port, chunks=args.chunks, chunk_interval_ms=args.chunk_interval_ms,
                                        name="fake_paced")
    gateway = None
    try:
        gateway = harness.start_gateway(harness.free_port(), harness.providers_file(fast_port, paced_port),
                                        args.gateway_database_url, workers=args.workers, name="gateway-streams")
        _, access = harness.prepare_account(gateway, f"streams-{int(time.time())}")
        idle_mb = harness.rss_mb(gateway.pid)
        with harness.RssSampler(gateway.pid) as sampler, harness.ConnectionSampler(paced_port) as upstream:
            outcome = asyncio.run(run_streams(gateway.url + "/v1/chat/completions", access[0].key,
                                              args.streams, args.chunks, args.ramp_seconds))
        hwm_mb = harness.peak_rss_mb(gateway.pid)
    finally:
        if gateway is not None:
            gateway.stop()
        fast.stop()
        paced.stop()
    completed = outcome["outcomes"].get("completed", 0)
    row = {"streams": args.streams, "completed": completed, "peak_open": outcome["peak_open"],
           "seconds": outcome["seconds"], "idle_rss_mb": idle_mb, "peak_rss_mb": sampler.peak_mb,
           "hwm_rss_mb": hwm_mb, "ttft_p50_ms": outcome["ttft_p50_ms"], "ttft_p99_ms": outcome["ttft_p99_ms"],
           "workers": args.workers, "upstream_open": upstream.peak}
    harness.write_result("streams", {"row": row, "outcomes": outcome["outcomes"], "args": vars(args)})
    print(format_table([row], [
        ("workers", "gateway workers"), ("streams", "streams"), ("completed", "completed"),
        ("peak_open", "client streams open at once"), ("upstream_open", "upstream streams open at once"),
        ("seconds", "wall s"), ("idle_rss_mb", "idle RSS MB"),
        ("peak_rss_mb", "peak RSS MB (sampled)"), ("hwm_rss_mb", "VmHWM MB"),
        ("ttft_p50_ms", "TTFT p50 ms"), ("ttft_p99_ms", "TTFT p99 ms")]))
    failures = {k: v for k, v in outcome["outcomes"].items() if k != "completed"}
    if failures:
        print("not completed:", ", ".join(f"{k}: {v}" for k, v in failures.items()))
    ok = completed == args.streams and sampler.peak_mb < 300
    print(f"target (all {args.streams:,} completed, peak RSS < 300 MB): {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
