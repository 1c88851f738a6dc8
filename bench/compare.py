"""One command, one table: the fake upstream direct, through SAMALink, LiteLLM and Portkey's gateway.

    python bench/compare.py [--duration 10] [--concurrency 1,16,64] [--workers 1,2]
        [--upstream-latency-ms 0] [--repeat 1] [--skip-litellm] [--skip-portkey]
        [--litellm-database-url postgresql://...]

For every target and concurrency, wrk drives non-streaming chat completions and
reports p50/p99 latency and throughput; "added" is the target's percentile minus the
direct call's at the same concurrency. Streams (a paced fake: first chunk at once,
then 8 chunks 5 ms apart) are driven by the asyncio client for time to first token.
Targets run one after another, so only one proxy competes with the client and the
fake for the machine's cores. Every row carries its ratios to the direct call at the
same concurrency (throughput and server CPU per request). Portkey's gateway
(``@portkey-ai/gateway`` from npm, run with node; installed into bench/.portkey on first
use) is sent to the fakes with its ``x-portkey-provider`` / ``x-portkey-custom-host``
headers. Figures land in bench/results/compare[-TAG].json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from load import LoadResult, chat_body, format_table, run_python, run_wrk, wrk_available  # noqa: E402

STREAM_CHUNK_INTERVAL_MS = 5.0
DEFAULT_LITELLM_DB = os.environ.get(
    "LITELLM_DATABASE_URL", "postgresql://samalink:samalink@127.0.0.1/litellm_bench")


def measure_target(label: str, base_url: str, headers: dict[str, str], model: str, stream_model: str,
                   args: argparse.Namespace, pid: int, stream_base_url: str | None = None,
                   skipped: dict[str, str] | None = None, stream_headers: dict[str, str] | None = None) -> dict:
    """Run every concurrency level (wrk) and the stream runs (asyncio client) against one target.

    ``pid`` is the serving process (the fake itself for "direct"): its peak RSS and the
    CPU it spent per request are recorded beside the latencies. A target whose first
    stream fails has its streams left out, the reason recorded in ``skipped``.
    ``stream_headers`` replace ``headers`` for the streams.
    """
    url = base_url + "/chat/completions"
    body = chat_body(model, stream=False)
    rows = []
    for concurrency in args.concurrency:
        # Warm-up: connections, caches, first leases; not counted.
        run_load(label, url, body, headers, concurrency, min(2.0, args.duration), args)
        runs = []
        with harness.RssSampler(pid) as sampler:
            for _ in range(args.repeat):
                cpu_before = harness.cpu_seconds(pid)
                result = run_load(label, url, body, headers, concurrency, args.duration, args)
                runs.append((result, harness.cpu_seconds(pid) - cpu_before))
        # On a shared machine the least disturbed of several runs is the one with the most
        # requests; all of its figures are kept together.
        result, cpu = max(runs, key=lambda run: run[0].rps)
        row = result.as_dict()
        row["rss_mb"] = round(sampler.peak_mb, 1)
        row["cpu_us_per_request"] = cpu / result.requests * 1e6 if result.requests else None
        rows.append(row)
        print(f"  {label:<28} c={concurrency:<3} {row['rps']:>9,.0f} req/s  p50 {row['p50_ms']:.2f} ms  "
              f"p99 {row['p99_ms']:.2f} ms  errors {row['errors']}  "
              f"cpu {row['cpu_us_per_request'] or 0:.0f} us/req", flush=True)
    streams = []
    stream_url = (stream_base_url or base_url) + "/chat/completions"
    stream_body = chat_body(stream_model, stream=True)
    headers = stream_headers or headers
    problem = stream_problem(stream_url, stream_body, headers)
    if problem:
        if skipped is not None:
            skipped[f"{label}, streamed"] = problem
        print(f"  {label:<28} streams not measured: {problem}", flush=True)
        return {"label": label, "rows": rows, "streams": streams}
    for concurrency in (1, 16):
        result = run_python(label, stream_url, stream_body, headers, concurrency,
                            requests=args.stream_requests * (2 if concurrency > 1 else 1), stream=True, warmup=1.0)
        streams.append(result.as_dict())
        print(f"  {label:<28} stream c={concurrency:<3} TTFT p50 {result.ttft_p50_ms:.2f} ms  "
              f"p99 {result.ttft_p99_ms:.2f} ms  errors {result.errors}", flush=True)
    return {"label": label, "rows": rows, "streams": streams}


def stream_problem(url: str, body: bytes, headers: dict[str, str]) -> str | None:
    """Why one stream through the target fails (its status and body), or None when it ends with [DONE]."""
    request = urllib.request.Request(url, data=body, headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode(errors="replace")
            status = response.status
    except urllib.error.HTTPError as exc:
        text, status = exc.read().decode(errors="replace"), exc.code
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    if status == 200 and "data: [DONE]" in text:
        return None
    return f"HTTP {status}: {' '.join(text.split())[:200]}"


def run_load(label: str, url: str, body: bytes, headers: dict[str, str], concurrency: int, duration: float,
             args: argparse.Namespace) -> LoadResult:
    """One measured run: wrk when available (and not disabled), else the asyncio client."""
    if args.engine == "wrk":
        return run_wrk(label, url, body, headers, concurrency, duration)
    return run_python(label, url, body, headers, concurrency, duration=duration, warmup=0)


def _added(rows: list[dict], direct: dict) -> None:
    for row in rows:
        base = direct.get(row["concurrency"])
        if base:
            row["added_p50_ms"] = row["p50_ms"] - base["p50_ms"]
            row["added_p99_ms"] = row["p99_ms"] - base["p99_ms"]
            row["rps_vs_direct"] = row["rps"] / base["rps"] if base["rps"] else None
            if row.get("cpu_us_per_request") and base.get("cpu_us_per_request"):
                row["cpu_vs_direct"] = row["cpu_us_per_request"] / base["cpu_us_per_request"]


def build_report(results: list[dict], skipped: dict[str, str], machine: dict, args: argparse.Namespace) -> str:
    """The Markdown tables and the target checks."""
    direct = {r["concurrency"]: r for r in results[0]["rows"]}
    direct_streams = {s["concurrency"]: s for s in results[0]["streams"]}
    table_rows = []
    stream_rows = []
    for target in results:
        _added(target["rows"], direct)
        table_rows.extend({**r, "label": target["label"]} for r in target["rows"])
        for s in target["streams"]:
            base = direct_streams.get(s["concurrency"])
            overhead = (s["ttft_p50_ms"] - base["ttft_p50_ms"]) if base else None
            overhead99 = (s["ttft_p99_ms"] - base["ttft_p99_ms"]) if base else None
            stream_rows.append({**s, "label": target["label"], "ttft_overhead_p50_ms": overhead,
                                "ttft_overhead_p99_ms": overhead99})
    lines = [f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['memory_gb']} GB, "
             f"Python {machine['python']}, kernel {machine['kernel']}, load {machine['load_1min_at_start']} at start; "
             f"client {args.engine}, "
             f"{args.duration:g} s per point, best of {args.repeat}; fake upstream latency {args.upstream_latency_ms:g} ms.", "",
             format_table(table_rows, [
                 ("label", "target"), ("concurrency", "conc."), ("requests", "requests"), ("errors", "errors"),
                 ("rps", "req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("added_p50_ms", "added p50 ms"),
                 ("added_p99_ms", "added p99 ms"), ("rps_vs_direct", "req/s ÷ direct"),
                 ("cpu_us_per_request", "server CPU µs/req"), ("cpu_vs_direct", "CPU ÷ direct"),
                 ("rss_mb", "server peak RSS MB")]),
             "", "Streaming (paced fake, asyncio client): time to first token", "",
             format_table(stream_rows, [
                 ("label", "target"), ("concurrency", "conc."), ("requests", "streams"), ("errors", "errors"),
                 ("ttft_p50_ms", "TTFT p50 ms"), ("ttft_p99_ms", "TTFT p99 ms"),
                 ("ttft_overhead_p50_ms", "TTFT overhead p50 ms"), ("ttft_overhead_p99_ms", "TTFT overhead p99 ms"),
                 ("p50_ms", "whole stream p50 ms")])]
    for name, reason in skipped.items():
        lines += ["", f"{name}: not measured — {reason}"]
    lines += ["", "Targets:"] + check_targets(results)
    return "\n".join(lines)


def check_targets(results: list[dict]) -> list[str]:
    """PASS/FAIL lines for the issue's latency and throughput targets."""
    by_label = {t["label"]: {r["concurrency"]: r for r in t["rows"]} for t in results}
    gateway = by_label.get("samalink (1 worker)")
    direct = by_label.get("direct")
    litellm = by_label.get("litellm (no db)")
    out = []
    if gateway and direct:
        if 1 in gateway:
            added = gateway[1].get("added_p50_ms")
            out.append(f"- added p50 at c=1 ≤ 0.5 ms: {added:.2f} ms — {'PASS' if added <= 0.5 else 'FAIL'}")
        if 64 in gateway:
            added = gateway[64].get("added_p99_ms")
            out.append(f"- added p99 at c=64 ≤ 5 ms: {added:.2f} ms — {'PASS' if added <= 5 else 'FAIL'}")
            ratio = gateway[64]["rps"] / direct[64]["rps"]
            out.append(f"- throughput at c=64 ≥ ½ direct: {ratio:.2f}× direct — {'PASS' if ratio >= 0.5 else 'FAIL'}")
            if litellm and 64 in litellm and litellm[64]["rps"]:
                ratio = gateway[64]["rps"] / litellm[64]["rps"]
                out.append(f"- throughput at c=64 ≥ 5× LiteLLM: {ratio:.1f}× — {'PASS' if ratio >= 5 else 'FAIL'}")
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: start everything, measure each target in turn, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured point")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--workers", default="1,2", help="gateway worker counts to measure")
    parser.add_argument("--upstream-latency-ms", type=float, default=0.0,
                        help="fixed delay of the fake before each answer (first chunk for streams)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per point; the one with the highest throughput is reported")
    parser.add_argument("--tag", default="", help="suffix of the results file name")
    parser.add_argument("--stream-requests", type=int, default=300, help="streams per TTFT run at c=1")
    parser.add_argument("--gateway-database-url", default=None, help="default: a scratch SQLite file")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--skip-portkey", action="store_true")
    parser.add_argument("--litellm-database-url", default=DEFAULT_LITELLM_DB,
                        help="PostgreSQL for LiteLLM's spend tracking ('' to skip that run)")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the gateway (e.g. GATEWAY_FLUSH_INTERVAL=3600)")
    parser.add_argument("--writer-off", action="store_true",
                        help="the gateway's batch writer queues nothing (bench/tracemalloc_hook): what a writer "
                             "in its own process could save at most")
    parser.add_argument("--engine", choices=("wrk", "python"), default="wrk" if wrk_available() else "python")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    workers = [int(w) for w in args.workers.split(",") if w]
    harness.raise_fd_limit()
    harness.warn_if_busy()
    machine = harness.machine_description()
    fast_port, paced_port = harness.free_port(), harness.free_port()
    fast = harness.start_fake_upstream(fast_port, latency_ms=args.upstream_latency_ms, name="fake_fast")
    paced = harness.start_fake_upstream(paced_port, latency_ms=args.upstream_latency_ms, chunks=8,
                                        chunk_interval_ms=STREAM_CHUNK_INTERVAL_MS, name="fake_paced")
    providers = harness.providers_file(fast_port, paced_port)
    results: list[dict] = []
    skipped: dict[str, str] = {}
    try:
        print("direct (fake upstream)", flush=True)
        # Through a proxy the stream model lives on the paced fake; direct streams go there too.
        results.append(measure_target("direct", fast.url, {}, "deepseek-v3.2-upstream", "paced-stream-upstream",
                                      args, pid=fast.pid, stream_base_url=paced.url))
        for count in workers:
            label = f"samalink ({count} worker{'s' if count > 1 else ''})"
            print(label, flush=True)
            gateway = harness.start_gateway(harness.free_port(), providers, args.gateway_database_url,
                                            workers=count, name=f"gateway-w{count}", extra_env=gateway_env(args))
            try:
                _, access = harness.prepare_account(gateway, f"speed-w{count}-{int(time.time())}")
                headers = {"Authorization": f"Bearer {access[0].key}"}
                results.append(measure_target(label, gateway.url + "/v1", headers, "deepseek-v3.2",
                                              "paced-stream", args, pid=gateway.pid))
                results[-1]["processes"] = len(harness.process_tree(gateway.pid))
            finally:
                gateway.stop()
        if not args.skip_litellm:
            runs = [("litellm (no db)", None)]
            if args.litellm_database_url:
                runs.append(("litellm (db + spend tracking)", args.litellm_database_url))
            for label, db_url in runs:
                print(label, flush=True)
                try:
                    proxy = harness.start_litellm(harness.free_port(), fast_port, paced_port, db_url,
                                                  name="litellm-db" if db_url else "litellm")
                except RuntimeError as exc:
                    skipped[label] = summarise_failure(str(exc))
                    print(f"  could not start: {skipped[label]}", flush=True)
                    continue
                try:
                    headers = {"Authorization": f"Bearer {harness.LITELLM_MASTER_KEY}"}
                    results.append(measure_target(label, proxy.url + "/v1", headers, "deepseek-v3.2",
                                                  "paced-stream", args, pid=proxy.pid))
                finally:
                    proxy.stop()
        if not args.skip_portkey:
            label = f"portkey {harness.PORTKEY_VERSION}"
            print(label, flush=True)
            try:
                proxy = harness.start_portkey()
            except RuntimeError as exc:
                skipped[label] = summarise_failure(str(exc))
                print(f"  could not start: {skipped[label]}", flush=True)
            else:
                try:
                    results.append(measure_target(
                        label, proxy.url + "/v1", portkey_headers(fast.url), "deepseek-v3.2-upstream",
                        "paced-stream-upstream", args, pid=proxy.pid, skipped=skipped,
                        stream_headers=portkey_headers(paced.url)))
                finally:
                    proxy.stop()
    finally:
        fast.stop()
        paced.stop()
    report = build_report(results, skipped, machine, args)
    harness.write_result("compare" + (f"-{args.tag}" if args.tag else ""), {"machine": machine, "results": results, "skipped": skipped,
                                                "args": {k: v for k, v in vars(args).items()}})
    print()
    print(report)


def gateway_env(args: argparse.Namespace) -> dict[str, str]:
    """The gateway's extra environment from ``--gateway-env`` and ``--writer-off``."""
    env = dict(pair.partition("=")[::2] for pair in args.gateway_env)
    if args.writer_off:
        env["BENCH_WRITER_OFF"] = "1"
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent / "tracemalloc_hook"),
                                             str(harness.REPO_DIR), os.environ.get("PYTHONPATH", "")])
    return env


def portkey_headers(fake_url: str) -> dict[str, str]:
    """Headers that route a Portkey gateway request to the fake (an OpenAI-compatible provider)."""
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": fake_url,
            "Authorization": "Bearer fake-upstream-key"}


def summarise_failure(text: str) -> str:
    """The most telling line of a start-up failure (the error itself, without log prefixes)."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    for marker in ("Error:", "error", "exited with code"):
        for line in lines:
            if marker in line:
                return line[line.index(marker):][:400]
    return " ".join(lines)[:400]


if __name__ == "__main__":
    main()
