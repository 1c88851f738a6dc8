"""The public listener's floor: the server's CPU per request with no gateway logic.

    python bench/server_floor.py [--duration 5] [--concurrency 1,64] [--repeat 3]
        [--servers aiohttp,granian-rsgi,granian-asgi] [--bodies small,agent]

The gateway's public listener is aiohttp's web server. This measures what the server
alone costs per non-streamed request when the handler does only what the gateway's edge
does before its own logic: read the POST body whole, parse it with orjson, and answer a
chat completion of about 1 KB encoded with orjson. Three servers run the same handler:

* ``aiohttp``: ``web.AppRunner`` and ``web.TCPSite`` as ``gateway/serve.py`` sets them up
  (uvloop, access log off, backlog 1,024, the gateway's body and header limits from
  ``gateway/app.py``), one process;
* ``granian-rsgi``: granian (Rust: hyper on a Tokio runtime) with its own interface,
  RSGI, 1 worker, uvloop, HTTP/1.1, access log off;
* ``granian-asgi``: the same with the ASGI interface.

Every server gets the gateway's collector tuning (``gateway.serve._tune_gc``) once its
app is built. The load is wrk (``bench/load.py``) with the bodies of
``http2_client.py``: a small chat (124 B) or a recorded coding-agent request (49 KB),
``--concurrency`` open connections for ``--duration`` seconds after a warm-up. The
figure is the CPU (user + kernel, from /proc) of every process in the server's tree,
every thread included, divided by the requests answered; the run with the least CPU
per request of ``--repeat`` is kept whole (its req/s and latencies with it), every
run's CPU recorded. The client's CPU is not counted. Figures land in
bench/results/server_floor.json; one Markdown table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from h2_upstream import lifespan  # noqa: E402

CONTENT = ("The keeper climbed the ninety-one steps each evening, trimmed the wick and wound the clockwork "
           "that turned the lens, and each morning wrote the weather, the ships and the hours of the light "
           "into the log. ") * 4
USAGE = {"prompt_tokens": 412, "completion_tokens": 188, "total_tokens": 600,
         "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}
JSON_HEADERS = [("content-type", "application/json")]


def answer(body: bytes) -> tuple[int, bytes]:
    """The whole handler: parse the request, answer a chat completion (about 1 KB) or a 400."""
    try:
        request = orjson.loads(body)
        model = request["model"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return 400, b'{"error":{"message":"bad request","type":"invalid_request_error"}}'
    return 200, orjson.dumps({
        "id": "chatcmpl-floor", "object": "chat.completion", "created": 1764072000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": CONTENT},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": USAGE, "system_fingerprint": "fp_floor"})


def aiohttp_app():
    """The handler on aiohttp's server, with the gateway's limits."""
    from aiohttp import web

    from gateway.api.guards import PARSER_LIMITS
    from gateway.config import Settings

    async def chat(request: web.Request) -> web.Response:
        status, payload = answer(await request.read())
        return web.Response(status=status, body=payload, content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=Settings.max_body_bytes, handler_args=PARSER_LIMITS)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    return app


def serve_aiohttp(port: int) -> None:
    """Serve the aiohttp app the way ``gateway/serve.py`` does, until SIGTERM."""
    import uvloop
    from aiohttp import web

    from gateway.serve import _tune_gc

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = aiohttp_app()
    _tune_gc()

    async def serve() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())


async def _rsgi_app(scope, protocol) -> None:
    if scope.method == "POST":
        status, payload = answer(await protocol())
        protocol.response_bytes(status, JSON_HEADERS, payload)
    else:
        protocol.response_bytes(200, [("content-type", "text/plain")], b"ok")


async def _asgi_app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        status, payload = answer(b"".join(chunks))
    else:
        status, payload = 200, b"ok"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def rsgi_factory():
    """granian's target (``--factory``) for RSGI: the collector tuned as the gateway's, the app."""
    from gateway.serve import _tune_gc

    _tune_gc()
    return _rsgi_app


def asgi_factory():
    """granian's target (``--factory``) for ASGI: the collector tuned as the gateway's, the app."""
    from gateway.serve import _tune_gc

    _tune_gc()
    return _asgi_app


def server_argv(kind: str, port: int) -> list[str]:
    """The command that serves ``kind`` on ``port``."""
    if kind == "aiohttp":
        return [harness.PYTHON, str(Path(__file__).resolve()), "--serve-aiohttp", str(port)]
    interface = kind.removeprefix("granian-")
    return [harness.PYTHON, "-m", "granian", "--interface", interface, "--factory", "--workers", "1",
            "--runtime-threads", "1", "--loop", "uvloop", "--http", "1", "--no-access-log", "--log-level", "warning",
            "--host", "127.0.0.1", "--port", str(port), "--backlog", "1024",
            "--working-dir", str(harness.BENCH_DIR), f"server_floor:{interface}_factory"]


def start_server(kind: str) -> harness.Service:
    """Start one server in a process group of its own and wait until it answers."""
    port = harness.free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(harness.BENCH_DIR), str(harness.REPO_DIR), env.get("PYTHONPATH", "")])
    proc, log_path = harness._spawn(f"server-floor-{kind}-{port}", server_argv(kind, port), env, harness.BENCH_DIR)
    service = harness.Service(kind, proc, f"http://127.0.0.1:{port}", log_path)
    try:
        harness.wait_http(service.url + "/health", 30, proc)
    except RuntimeError:
        tail = service.log_tail()
        service.stop()
        raise RuntimeError(f"{kind} did not start:\n{tail}") from None
    return service


def tree_shape(pid: int) -> tuple[int, int]:
    """(processes, threads) in ``pid``'s tree, from /proc."""
    pids = harness.process_tree(pid)
    threads = 0
    for p in pids:
        try:
            threads += len(os.listdir(f"/proc/{p}/task"))
        except OSError:
            continue
    return len(pids), threads


def measure(service: harness.Service, body: bytes, concurrency: int, args: argparse.Namespace) -> dict:
    """Warm up, then ``--repeat`` wrk runs; the one with the least server CPU per request, whole."""
    from load import run_wrk

    url = service.url + "/v1/chat/completions"
    headers = {"Authorization": "Bearer floor-key"}
    run_wrk(service.name, url, body, headers, concurrency, min(2.0, args.duration))
    runs = []
    for _ in range(args.repeat):
        cpu_before = harness.cpu_seconds(service.pid)
        result = run_wrk(service.name, url, body, headers, concurrency, args.duration)
        cpu = harness.cpu_seconds(service.pid) - cpu_before
        if result.errors or not result.requests:
            raise RuntimeError(f"{service.name}: {result.errors} errors ({', '.join(result.error_sample)})")
        runs.append((result, cpu / result.requests * 1e6))
    result, cpu_us = min(runs, key=lambda run: run[1])
    return {**result.as_dict(), "cpu_us_per_req": round(cpu_us, 1),
            "all_cpu_us_per_req": [round(run[1], 1) for run in runs],
            "all_runs": ", ".join(f"{run[1]:,.0f}" for run in runs)}


def main(argv: list[str] | None = None) -> None:
    """Start each server, measure every body × concurrency against it, print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--servers", default="aiohttp,granian-rsgi,granian-asgi")
    parser.add_argument("--bodies", default="small,agent")
    parser.add_argument("--serve-aiohttp", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_aiohttp:
        serve_aiohttp(args.serve_aiohttp)
        return
    from http2_client import request_bodies
    from load import format_table, wrk_available

    import aiohttp
    import granian

    if not wrk_available():
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    harness.warn_if_busy()
    harness.raise_fd_limit()
    machine = harness.machine_description()
    bodies = request_bodies()
    rows = []
    for kind in args.servers.split(","):
        service = start_server(kind)
        try:
            for body_name in args.bodies.split(","):
                for concurrency in (int(c) for c in args.concurrency.split(",")):
                    row = measure(service, bodies[body_name], concurrency, args)
                    processes, threads = tree_shape(service.pid)
                    row.update({"server": kind, "body": f"{body_name} ({len(bodies[body_name]):,} B)",
                                "processes": processes, "threads": threads,
                                "load_1min": round(os.getloadavg()[0], 2)})
                    rows.append(row)
                    print(f"{kind} {body_name} c={concurrency}: {row['cpu_us_per_req']:.1f} µs/req, "
                          f"{row['rps']:,.0f} req/s, p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms "
                          f"({processes} processes, {threads} threads)", flush=True)
                    time.sleep(0.5)
        finally:
            service.stop()
    print()
    print(format_table(rows, [("server", "server"), ("body", "body"), ("concurrency", "conc."), ("rps", "req/s"),
                              ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("cpu_us_per_req", "server CPU µs/req"),
                              ("all_runs", "all runs"), ("threads", "threads"), ("load_1min", "load")]))
    harness.write_result("server_floor", {"machine": machine, "rows": rows, "args": vars(args),
                                          "versions": {"aiohttp": aiohttp.__version__,
                                                       "granian": granian.__version__}})


if __name__ == "__main__":
    main()
