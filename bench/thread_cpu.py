"""The gateway's CPU per request, thread by thread, with its batch writer on or off.

    python bench/thread_cpu.py [--concurrency 64] [--duration 8] [--repeat 2] [--writer-off]
        [--gateway-env NAME=VALUE ...]

One gateway process (SQLite) in front of the fake that answers at once, loaded by wrk
with non-streamed chat completions after a 2 s warm-up. Each thread's user and kernel
CPU is read from /proc/<pid>/task/*/stat before and after the run and divided by the
requests served: the event loop's thread, and the database threads the batch writer,
the key cache and the leases run their transactions on; the gateway's child processes
(the writer process, ``GATEWAY_WRITER_PROCESS``) are counted apart. ``--writer-off`` starts the
gateway with ``bench/tracemalloc_hook`` and ``BENCH_WRITER_OFF=1`` (as ``compare.py
--writer-off``): what is left is the gateway without its database writes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from load import chat_body, run_wrk  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def thread_times(pid: int) -> dict[int, tuple[float, float]]:
    """(user, kernel) CPU seconds of every thread of ``pid``, by thread id."""
    times = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        times[int(tid)] = (int(fields[11]) / TICK, int(fields[12]) / TICK)
    return times


def children_seconds(pid: int) -> dict[int, float]:
    """User plus kernel CPU seconds of each child process of ``pid`` (the writer process)."""
    seconds = {}
    for child in harness.process_tree(pid)[1:]:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[child] = (int(fields[11]) + int(fields[12])) / TICK
    return seconds


def one_run(args: argparse.Namespace, env: dict[str, str]) -> dict:
    """Start the fake and a gateway, load it, and split its CPU per request by thread."""
    fast_port, paced_port = harness.free_port(), harness.free_port()
    fast = harness.start_fake_upstream(fast_port, name="fake_fast")
    paced = harness.start_fake_upstream(paced_port, chunks=8, name="fake_paced")
    try:
        gateway = harness.start_gateway(harness.free_port(), harness.providers_file(fast_port, paced_port),
                                        name="gateway-threads", extra_env=env)
        try:
            _, access = harness.prepare_account(gateway, f"threads-{int(time.time())}")
            headers = {"Authorization": f"Bearer {access[0].key}"}
            url = gateway.url + "/v1/chat/completions"
            body = chat_body("deepseek-v3.2", False)
            run_wrk("warm-up", url, body, headers, args.concurrency, 2)
            before, children_before = thread_times(gateway.pid), children_seconds(gateway.pid)
            load = run_wrk("gateway", url, body, headers, args.concurrency, args.duration)
            after, children_after = thread_times(gateway.pid), children_seconds(gateway.pid)
        finally:
            gateway.stop()
    finally:
        fast.stop()
        paced.stop()
    requests = max(1, load.requests)
    per_thread = {}
    for tid, (user, kernel) in after.items():
        user0, kernel0 = before.get(tid, (0.0, 0.0))
        per_thread[tid] = ((user - user0) / requests * 1e6, (kernel - kernel0) / requests * 1e6)
    # The event loop runs on the process's first thread, whose id is the pid.
    loop_user, loop_kernel = per_thread.pop(gateway.pid, (0.0, 0.0))
    other_user = sum(user for user, _ in per_thread.values())
    other_kernel = sum(kernel for _, kernel in per_thread.values())
    children = sum(seconds - children_before.get(pid, 0.0) for pid, seconds in children_after.items())
    total = loop_user + loop_kernel + other_user + other_kernel
    return {"rps": load.rps, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms, "loop_user": loop_user,
            "loop_kernel": loop_kernel, "other_user": other_user, "other_kernel": other_kernel,
            "total": total, "children": children / requests * 1e6}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--writer-off", action="store_true", help="the batch writer writes nothing")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the gateway (repeatable)")
    args = parser.parse_args(argv)
    harness.raise_fd_limit()
    harness.warn_if_busy()
    env = dict(item.split("=", 1) for item in args.gateway_env)
    hook = str(harness.BENCH_DIR / "tracemalloc_hook")
    env["PYTHONPATH"] = os.pathsep.join([hook, str(harness.REPO_DIR), os.environ.get("PYTHONPATH", "")])
    if args.writer_off:
        env["BENCH_WRITER_OFF"] = "1"
    print("| run | req/s | p50 ms | p99 ms | loop thread user µs/req | loop thread kernel | other threads user | "
          "other threads kernel | serving process µs/req | child processes µs/req |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for index in range(args.repeat):
        row = one_run(args, env)
        print(f"| {index + 1} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['loop_user']:.1f} | "
              f"{row['loop_kernel']:.1f} | {row['other_user']:.1f} | {row['other_kernel']:.1f} | {row['total']:,.1f} | "
              f"{row['children']:,.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
