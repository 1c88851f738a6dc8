"""Load generator: latency percentiles, throughput and time to first token.

Two engines measure the same thing:

* ``wrk`` (C, from Debian's package) for non-streaming latency and throughput;
  it costs the machine much less CPU than a Python client, which matters on a
  small machine where client and servers share the cores.
* an asyncio client (aiohttp, pooled keep-alive connections) for streams, where
  it records the time to the first token (TTFT: the first event carrying content, not
  the role-only event the fake sends first, which the gateway holds back with the
  response until content comes so that it can still fail over) as well as the total.

    python bench/load.py http://127.0.0.1:8001/v1/chat/completions --key sama_... \
        --model deepseek-v3.2 --concurrency 16 --duration 10 [--stream] [--engine python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import orjson

# What the fake's content events carry (fake_upstream.CONTENT_PIECE), however a proxy
# re-serialises them: the first token.
FIRST_TOKEN = b"Hello there"
PROMPT = "Summarise the plot of a short story about a lighthouse keeper in two sentences."


@dataclass
class LoadResult:
    """What one load run measured; times in milliseconds."""

    label: str
    engine: str
    concurrency: int
    stream: bool
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    error_sample: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        """A JSON-friendly copy, throughput included."""
        data = asdict(self)
        data["rps"] = round(self.rps, 1)
        return data


def chat_body(model: str, stream: bool, max_tokens: int = 32) -> bytes:
    """The request body every target receives."""
    body = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile of ``values`` (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _lua_string(text: str) -> str:
    level = "=" * 4
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrk_available() -> bool:
    """True when the ``wrk`` binary is on PATH."""
    return shutil.which("wrk") is not None


def run_wrk(label: str, url: str, body: bytes, headers: dict[str, str], concurrency: int,
            duration: float, threads: int = 1) -> LoadResult:
    """Drive ``url`` with wrk at ``concurrency`` open connections for ``duration`` seconds."""
    script = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body.decode())}"]
    for name, value in {"Content-Type": "application/json", **headers}.items():
        script.append(f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}")
    script.append(WRK_DONE)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write("\n".join(script))
        lua = f.name
    try:
        proc = subprocess.run(
            ["wrk", "-t", str(min(threads, concurrency)), "-c", str(concurrency), "-d", f"{duration:g}s",
             "--timeout", "30s", "-s", lua, url],
            capture_output=True, text=True, timeout=duration + 60)
    finally:
        Path(lua).unlink(missing_ok=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result for {label}: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    data = json.loads(line[len("WRKJSON "):])
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        label=label, engine="wrk", concurrency=concurrency, stream=False,
        requests=data["requests"] - data["status"], errors=errors,
        seconds=data["duration_us"] / 1e6, p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000,
        error_sample=[f"{k}={data[k]}" for k in ("connect", "read", "write", "status", "timeout") if data[k]],
    )


async def _one_request(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
                       stream: bool) -> tuple[float, float | None, str | None]:
    start = time.perf_counter()
    first: float | None = None
    async with session.post(url, data=body, headers=headers) as resp:
        if stream:
            seen = b""
            async for chunk in resp.content.iter_any():
                if first is None:
                    # Kept whole until the token shows, in case a read splits it.
                    seen += chunk
                    if FIRST_TOKEN in seen:
                        first = time.perf_counter() - start
        else:
            await resp.read()
        error = None if resp.status == 200 else f"HTTP {resp.status}"
    return time.perf_counter() - start, first, error


async def run_python_async(label: str, url: str, body: bytes, headers: dict[str, str], concurrency: int,
                           duration: float | None = None, requests: int | None = None,
                           stream: bool = False, warmup: float = 0.5) -> LoadResult:
    """Drive ``url`` from ``concurrency`` asyncio workers for ``duration`` s or ``requests`` requests."""
    headers = {"Content-Type": "application/json", **headers}
    latencies: list[float] = []
    ttfts: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.perf_counter() + warmup
        while time.perf_counter() < deadline:
            await asyncio.gather(*(_one_request(session, url, body, headers, stream)
                                   for _ in range(min(concurrency, 64))), return_exceptions=True)
        remaining = [requests if requests is not None else -1]
        stop_at = time.perf_counter() + duration if duration else None

        async def worker() -> None:
            while True:
                if stop_at is not None and time.perf_counter() >= stop_at:
                    return
                if stop_at is None:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                try:
                    total, first, error = await _one_request(session, url, body, headers, stream)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    errors.append(type(exc).__name__)
                    continue
                if error:
                    errors.append(error)
                    continue
                latencies.append(total)
                if first is not None:
                    ttfts.append(first)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    result = LoadResult(
        label=label, engine="python", concurrency=concurrency, stream=stream,
        requests=len(latencies), errors=len(errors), seconds=seconds,
        p50_ms=percentile(latencies, 50) * 1000, p99_ms=percentile(latencies, 99) * 1000,
        error_sample=sorted(set(errors))[:5],
    )
    if stream:
        result.ttft_p50_ms = percentile(ttfts, 50) * 1000
        result.ttft_p99_ms = percentile(ttfts, 99) * 1000
    return result


def run_python(*args, **kwargs) -> LoadResult:
    """Synchronous wrapper around :func:`run_python_async`."""
    return asyncio.run(run_python_async(*args, **kwargs))


def format_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A GitHub-flavoured Markdown table of ``rows`` with ``(key, heading)`` columns."""
    def cell(value) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    lines = ["| " + " | ".join(h for _, h in columns) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(k)) for k, _ in columns) + " |")
    return "\n".join(lines)


RESULT_COLUMNS = [("label", "target"), ("engine", "client"), ("concurrency", "conc."), ("requests", "requests"),
                  ("errors", "errors"), ("rps", "req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
                  ("ttft_p50_ms", "TTFT p50 ms"), ("ttft_p99_ms", "TTFT p99 ms")]


def main(argv: list[str] | None = None) -> None:
    """Command line: one load run against one URL, printed as a table."""
    parser = argparse.ArgumentParser(description="Drive one OpenAI-compatible endpoint and print a table.")
    parser.add_argument("url")
    parser.add_argument("--key", default="", help="bearer key (never printed)")
    parser.add_argument("--model", default="deepseek-v3.2")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--engine", choices=("wrk", "python"), default="wrk" if wrk_available() else "python")
    args = parser.parse_args(argv)
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    body = chat_body(args.model, args.stream)
    if args.stream or args.engine == "python":
        result = run_python(args.url, args.url, body, headers, args.concurrency, duration=args.duration,
                            stream=args.stream)
    else:
        result = run_wrk(args.url, args.url, body, headers, args.concurrency, args.duration)
    print(format_table([result.as_dict()], RESULT_COLUMNS))
    if result.error_sample:
        print("errors:", ", ".join(result.error_sample))


if __name__ == "__main__":
    main()
