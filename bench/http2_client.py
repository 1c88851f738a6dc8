"""The upstream leg over HTTP/2 against HTTP/1.1: client CPU per proxied request.

    python bench/http2_client.py [--duration 5] [--concurrency 1,64] [--repeat 3]

The gateway's upstream client is aiohttp (HTTP/1.1, pooled keep-alive connections). This
measures what the same non-streamed request costs the calling process with each client:

* ``aiohttp-h1``: ``aiohttp.ClientSession`` as the gateway uses it (one session, a
  TCPConnector without a cap, ``raise_for_status`` off, the answer read whole);
* ``httpx-h1``: ``httpx.AsyncClient`` over HTTP/1.1;
* ``httpx-h2``: ``httpx.AsyncClient(http1=False, http2=True)``, HTTP/2 with prior knowledge
  over cleartext (h2c), every request a stream on one multiplexed connection;
* ``pyreqwest-h1``: pyreqwest's async ``Client`` (Rust: reqwest and hyper on a Tokio
  runtime thread of its own, single-threaded as by default), HTTP/1.1 only, pooled
  keep-alive connections, no cap on requests in flight, the answer read whole with
  ``Response.bytes()``;
* ``pyreqwest-h2``: the same client built with ``http2_prior_knowledge()`` (h2c).

All five talk to the same upstream, hypercorn serving a trivial ASGI app (one chat
completion, the fake upstream's answer) on 127.0.0.1, which speaks both protocols; it
keeps a connection open for any number of requests (hypercorn's default closes it after
1,000, which pyreqwest's HTTP/2 does not survive). The request is the gateway's shape:
``POST /v1/chat/completions`` with a bearer key and a JSON body, either a small chat
(``small``, 124 B) or a recorded coding-agent request (``agent``, 49 KB, from
tests/gateway/fixtures). ``--concurrency`` tasks run for ``--duration`` seconds on uvloop;
the client's CPU (user + kernel, this process and all its threads, the Tokio runtime's
included, from /proc via ``os.times``) divided by the requests completed is the figure,
the least of ``--repeat`` runs. The server's CPU is not counted. Figures land in
bench/results/http2_client.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import httpx
import orjson
import pyreqwest
import uvloop
from pyreqwest.client import ClientBuilder

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

AGENT_FIXTURE = harness.REPO_DIR / "tests/gateway/fixtures/claude_code/claude_code_2.1.332_deepseek_v3_2_tool_turn.json"


def request_bodies() -> dict[str, bytes]:
    """The two request shapes: a small chat and a recorded coding-agent request."""
    small = {"model": "deepseek-v3.2-upstream", "max_tokens": 32,
             "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}
    agent = json.loads(AGENT_FIXTURE.read_text())["body"]
    return {"small": orjson.dumps(small), "agent": orjson.dumps(agent)}


def start_upstream(port: int) -> subprocess.Popen:
    """hypercorn serving ``h2_upstream:app`` (HTTP/1.1 and h2c), waiting until it accepts connections."""
    harness.LOG_DIR.mkdir(parents=True, exist_ok=True)
    # hypercorn closes a connection after 1,000 requests by default (on HTTP/2 with a
    # GOAWAY); pyreqwest's HTTP/2 then fails the requests in flight instead of retrying
    # them. Connections to a real upstream live as long as both ends keep them.
    config = harness.LOG_DIR / "h2-upstream.toml"
    config.write_text("keep_alive_max_requests = 1000000000\n")
    argv = [sys.executable, "-m", "hypercorn", "--config", str(config), "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "--log-level", "warning", "h2_upstream:app"]
    log = open(harness.LOG_DIR / f"h2-upstream-{port}.log", "w")
    proc = subprocess.Popen(argv, cwd=Path(__file__).resolve().parent, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    harness.wait_http(f"http://127.0.0.1:{port}/health", 30, proc)
    return proc


def cpu_now() -> float:
    times = os.times()
    return times.user + times.system


async def drive(send, concurrency: int, seconds: float) -> int:
    """``concurrency`` tasks calling ``send()`` until ``seconds`` have passed; requests completed."""
    done = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await send()
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def run_client(kind: str, url: str, body: bytes, concurrency: int, seconds: float) -> dict:
    """One measured run (after a one-second warm-up) of one client kind; CPU µs per request."""
    headers = {"Authorization": "Bearer fake-upstream-key", "Content-Type": "application/json"}
    if kind == "aiohttp-h1":
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), raise_for_status=False)

        async def send() -> None:
            async with session.post(url, data=body, headers=headers) as response:
                payload = await response.read()
                assert response.status == 200 and payload

        close = session.close
    elif kind.startswith("pyreqwest"):
        builder = ClientBuilder().max_connections(None).timeout(timedelta(seconds=60))
        client = (builder.http2_prior_knowledge() if kind == "pyreqwest-h2" else builder.http1_only()).build()
        version = "HTTP/2.0" if kind == "pyreqwest-h2" else "HTTP/1.1"

        async def send() -> None:
            response = await client.post(url).headers(headers).body_bytes(body).build().send()
            payload = await response.bytes()
            assert response.status == 200 and payload
            assert response.version == version, response.version

        close = client.close
    else:
        client = httpx.AsyncClient(http1=kind == "httpx-h1", http2=kind == "httpx-h2",
                                   limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
                                   timeout=60)

        async def send() -> None:
            response = await client.post(url, content=body, headers=headers)
            assert response.status_code == 200 and response.content
            assert response.http_version == ("HTTP/2" if kind == "httpx-h2" else "HTTP/1.1")

        close = client.aclose
    try:
        await drive(send, concurrency, 1.0)
        cpu_before, started = cpu_now(), time.monotonic()
        requests = await drive(send, concurrency, seconds)
        cpu, wall = cpu_now() - cpu_before, time.monotonic() - started
    finally:
        await close()
    return {"requests": requests, "req_per_s": requests / wall, "cpu_us_per_req": cpu / requests * 1e6}


def main(argv: list[str] | None = None) -> None:
    """Start the upstream, measure every client × body × concurrency, print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", default="aiohttp-h1,httpx-h1,httpx-h2,pyreqwest-h1,pyreqwest-h2")
    parser.add_argument("--bodies", default="small,agent")
    args = parser.parse_args(argv)
    harness.warn_if_busy()
    machine = harness.machine_description()
    port = harness.free_port()
    upstream = start_upstream(port)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    bodies = request_bodies()
    rows = []
    try:
        uvloop.install()
        for body_name in args.bodies.split(","):
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                for kind in args.clients.split(","):
                    runs = [asyncio.run(run_client(kind, url, bodies[body_name], concurrency, args.duration))
                            for _ in range(args.repeat)]
                    best = min(runs, key=lambda r: r["cpu_us_per_req"])
                    rows.append({"client": kind, "body": body_name, "body_bytes": len(bodies[body_name]),
                                 "concurrency": concurrency, **best,
                                 "all_cpu_us_per_req": [round(r["cpu_us_per_req"], 1) for r in runs],
                                 "load_1min": round(os.getloadavg()[0], 2)})
                    print(f"{kind} {body_name} c={concurrency}: {best['cpu_us_per_req']:.1f} µs/req "
                          f"({best['req_per_s']:.0f} req/s)", flush=True)
    finally:
        upstream.terminate()
        upstream.wait(10)
    print()
    print("| client | body | conc. | client CPU µs/req (least of runs) | all runs | req/s | load |")
    print("|---|---|---:|---:|---|---:|---:|")
    for row in rows:
        print(f"| {row['client']} | {row['body']} ({row['body_bytes']:,} B) | {row['concurrency']} "
              f"| {row['cpu_us_per_req']:.1f} | {', '.join(map(str, row['all_cpu_us_per_req']))} "
              f"| {row['req_per_s']:,.0f} | {row['load_1min']} |")
    harness.write_result("http2_client", {"machine": machine, "rows": rows, "args": vars(args),
                                          "versions": {"aiohttp": aiohttp.__version__, "httpx": httpx.__version__,
                                                       "pyreqwest": pyreqwest.__version__}})


if __name__ == "__main__":
    main()
