"""Profile one gateway process under load with py-spy and print where its time goes.

    python bench/profile_gateway.py [--duration 15] [--concurrency 64] [--stream]
        [--all-threads] [--upstream-latency-ms 0] [--chunks 8] [--chunk-interval-ms 5]

wrk (or, for ``--stream``, the asyncio client) drives the gateway while
``py-spy record`` samples it; the raw stacks are kept in
``bench/results/profile-*.txt`` and a flame graph in ``bench/results/profile-*.svg``.
The table lists functions by own time ("self") and by time including callees
("total"), as shares of the samples in which a gateway thread held the GIL.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from load import chat_body, run_python, run_wrk, wrk_available  # noqa: E402


def summarise(raw: Path, top: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]], int]:
    """Self and total shares per frame from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        samples += count
        own[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames}:
            total[frame] += count
    to_share = lambda c: [(name, n / samples * 100) for name, n in c.most_common(top)]  # noqa: E731
    return to_share(own), to_share(total), samples


# First rule whose marker appears anywhere in a stack names the stack's category.
CATEGORIES = [
    ("batch writer: request log, ledger, roll-ups (SQLAlchemy, own thread)", ("write_batch", "BatchWriter")),
    ("key cache and leases (database thread)", ("KeyCache", "Reserver", "_read_changes")),
    ("upstream call: aiohttp client send + read", ("ClientSession._request", "read_json", "ClientResponse",
                                                    "ResponseHandler", "client_proto", "client_reqrep")),
    ("response to the client: aiohttp writer", ("finish_response", "write_eof", "http_writer")),
    ("gateway logic: auth, validation, plan, token estimate, metering", ("gateway/",)),
    ("aiohttp server: parse, route, request objects", ("web_protocol", "web_app", "web_request",
                                                        "web_urldispatcher", "http_parser")),
]


def categorise(raw: Path) -> list[tuple[str, float]]:
    """Share of samples per category of work (see ``CATEGORIES``); the rest is the event loop."""
    shares: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        # The entry frames (runpy, serve, run_app) are on every stack: match below them.
        frames = stack.split(";")
        inner = ";".join(f for f in frames if not f.startswith(("<module>", "_run_", "main ", "serve ", "run_worker",
                                                                  "run_app")))
        for name, markers in CATEGORIES:
            if any(marker in inner for marker in markers):
                shares[name] += count
                break
        else:
            shares["event loop, scheduling, other"] += count
    return [(name, n / samples * 100) for name, n in shares.most_common()] if samples else []


def _short(frame: str) -> str:
    """``func (path/to/module.py:12)`` → ``func (module.py:12)`` with site-packages cut."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for cut in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if cut in where:
            where = where.split(cut, 1)[1]
    return f"{name} ({where})" if where else name


def main(argv: list[str] | None = None) -> None:
    """Command line: start fakes and a gateway, load it, record, print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--stream", action="store_true", help="profile streaming requests")
    parser.add_argument("--all-threads", action="store_true",
                        help="sample every thread, idle ones too (default: only the one holding the GIL)")
    parser.add_argument("--upstream-latency-ms", type=float, default=0.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--chunks", type=int, default=8, help="content chunks per stream (--stream)")
    parser.add_argument("--chunk-interval-ms", type=float, default=5.0, help="gap between stream chunks (--stream)")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        sys.exit("py-spy is not installed: pip install -e '.[bench]'")
    harness.raise_fd_limit()
    harness.warn_if_busy()
    fast_port, paced_port = harness.free_port(), harness.free_port()
    fast = harness.start_fake_upstream(fast_port, latency_ms=args.upstream_latency_ms, name="fake_fast")
    paced = harness.start_fake_upstream(paced_port, latency_ms=args.upstream_latency_ms, chunks=args.chunks,
                                        chunk_interval_ms=args.chunk_interval_ms, name="fake_paced")
    kind = "stream" if args.stream else "json"
    raw = harness.RESULTS_DIR / f"profile-{kind}-c{args.concurrency}.txt"
    svg = raw.with_suffix(".svg")
    harness.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        gateway = harness.start_gateway(harness.free_port(), harness.providers_file(fast_port, paced_port),
                                        name="gateway-profile")
        try:
            _, access = harness.prepare_account(gateway, f"profile-{int(time.time())}")
            headers = {"Authorization": f"Bearer {access[0].key}"}
            url = gateway.url + "/v1/chat/completions"
            results = {}

            def drive() -> None:
                if args.stream or not wrk_available():
                    results["load"] = run_python("gateway", url, chat_body("paced-stream" if args.stream else
                                                                           "deepseek-v3.2", args.stream),
                                                 headers, args.concurrency, duration=args.duration + 2,
                                                 stream=args.stream, warmup=0)
                else:
                    results["load"] = run_wrk("gateway", url, chat_body("deepseek-v3.2", False), headers,
                                              args.concurrency, args.duration + 2)

            driver = threading.Thread(target=drive)
            driver.start()
            time.sleep(1.0)
            # --gil: only the thread holding the interpreter lock counts, which is what
            # bounds a one-process Python server; --nonblocking: do not pause the gateway.
            common = ["--pid", str(gateway.pid), "--duration", str(int(args.duration)), "--rate", "200",
                      "--nonblocking", "--function"]
            if args.all_threads:
                common.append("--idle")
            else:
                common.append("--gil")
            # One recording, two renderings: the raw stacks for the table, then the SVG from them.
            subprocess.run([py_spy, "record", *common, "--format", "raw", "--output", str(raw)],
                           check=True, capture_output=True)
            driver.join()
        finally:
            gateway.stop()
    finally:
        fast.stop()
        paced.stop()
    flamegraph(raw, svg)
    own, total, samples = summarise(raw, args.top)
    load = results.get("load")
    if load is not None:
        print(f"load during the profile: {load.rps:,.0f} req/s, p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms, "
              f"errors {load.errors}")
    print(f"{samples:,} samples; raw stacks in {raw}")
    print("\n| share % | where the GIL time goes |\n|---:|---|")
    for name, share in categorise(raw):
        print(f"| {share:.1f} | {name} |")
    print("\n| self % | function |\n|---:|---|")
    for name, share in own:
        print(f"| {share:.1f} | `{name}` |")
    print("\n| total % | function |\n|---:|---|")
    for name, share in total:
        print(f"| {share:.1f} | `{name}` |")


def flamegraph(raw: Path, svg: Path) -> None:
    """Render collapsed stacks as an SVG when the flamegraph tool is around; else skip quietly."""
    tool = shutil.which("flamegraph.pl") or shutil.which("inferno-flamegraph")
    if tool is None:
        return
    with open(svg, "w") as out:
        subprocess.run([tool, str(raw)], stdout=out, check=False)


if __name__ == "__main__":
    main()
