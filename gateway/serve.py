"""Running the gateway: preflight checks, the event loop, one or several workers.

Each process serves two listeners from one application (one set of resources): the
public ``/v1`` API on ``GATEWAY_HOST:GATEWAY_PORT`` and the internal and admin APIs on
``GATEWAY_INTERNAL_HOST:GATEWAY_INTERNAL_PORT``. Several workers (``GATEWAY_WORKERS``)
share both ports with SO_REUSEPORT; each is a full gateway with its own leases and key
cache, exactly like separate machines would be.

Shutdown: the first SIGINT or SIGTERM stops the listeners, lets requests in flight
finish, flushes the batch writer and returns the leases; every later signal is logged
and ignored, so a Ctrl-C that reaches the whole process group followed by a launcher's
SIGTERM cannot cut the final flush short.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import sys
import tempfile

from aiohttp import web

from .catalog import load_catalog
from .config import ConfigError, Settings
from .db import Database, safe_url
from .logs import configure_logging

log = logging.getLogger("samalink.gateway")


class StartupError(Exception):
    """The gateway cannot start; the message is one line for the operator."""


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def preflight(settings: Settings) -> None:
    """Check the catalogue and migrate the database before serving (one clear line on failure)."""
    load_catalog(settings.providers_file)
    try:
        db = Database(settings.database_url, threads=1)
    except Exception as exc:  # noqa: BLE001 - a bad URL or a missing driver
        raise StartupError(f"GATEWAY_DATABASE_URL {safe_url(settings.database_url)} is not usable: {type(exc).__name__}") from None
    try:
        db.upgrade()
    except Exception as exc:  # noqa: BLE001 - unreachable server, wrong password, bad path
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        raise StartupError(f"cannot open GATEWAY_DATABASE_URL {safe_url(settings.database_url)}: {reason}") from None
    finally:
        db.close()


def _tune_gc() -> None:
    """Spend less of each request on the cyclic garbage collector.

    Every request allocates many short-lived objects; with the default thresholds
    (700, 10, 10) the youngest generation was collected every 700 allocations and all of
    them, including every object loaded at start (modules, catalogue, caches), every
    70,000. What exists once the app is built is frozen out of the collector's sight,
    and young collections wait for 50,000 allocations. bench/compare.py at
    concurrency 64, alternating runs: 360–430 µs of CPU per request instead of 480–580,
    the same peak RSS.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


class _Stop:
    """The first stop signal starts the shutdown; the later ones are only logged."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signal: int | None = None

    def __call__(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.signal is None:
            self.signal = signum
            log.info("%s received: stopping (requests in flight finish, then the final flush)", name)
            self.event.set()
        else:
            log.warning("%s received while stopping: ignored, the final flush still runs", name)


async def _serve_app(app: web.Application, settings: Settings, reuse_port: bool) -> None:
    """Serve ``app`` on the public and the internal listener until the first stop signal."""
    loop = asyncio.get_running_loop()
    stop = _Stop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Installed before start-up and kept until the process ends: no second signal
        # can interrupt the shutdown below.
        loop.add_signal_handler(signum, stop, signum)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.drain_timeout)
    await runner.setup()
    try:
        listeners = [
            (settings.host, settings.port, "GATEWAY_HOST/GATEWAY_PORT"),
            (settings.internal_host, settings.internal_port, "GATEWAY_INTERNAL_HOST/GATEWAY_INTERNAL_PORT"),
        ]
        for host, port, names in listeners:
            # aiohttp's default backlog of 128 drops connections when thousands of streams open at once.
            site = web.TCPSite(runner, host, port, backlog=1024, reuse_port=reuse_port or None)
            try:
                await site.start()
            except OSError as exc:
                raise StartupError(f"cannot listen on {host}:{port} ({names}): {exc.strerror}") from None
        await stop.event.wait()
    finally:
        # Stops both listeners, waits for requests in flight, then the lifespan closes in
        # reverse: the batch writer's final flush, then the leases are returned.
        await runner.cleanup()
    log.info("stopped cleanly")


def run_worker(settings: Settings, reuse_port: bool = False) -> None:
    """Serve one gateway process until SIGTERM or SIGINT, then shut down cleanly."""
    from .app import create_app

    _use_uvloop()
    configure_logging(settings.log_format)
    app = create_app(settings)
    _tune_gc()
    try:
        asyncio.run(_serve_app(app, settings, reuse_port))
    finally:
        # Whatever arrives while the interpreter exits must not turn into a traceback.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


def _metrics_directory() -> None:
    """Give the workers an empty PROMETHEUS_MULTIPROC_DIR, so /metrics sums them all.

    An operator's own directory is used when set (emptied of an earlier run's files).
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))
    else:
        directory = tempfile.mkdtemp(prefix="samalink-metrics-")
    # Read by prometheus-client when each spawned worker imports it.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def serve(settings: Settings) -> None:
    """Run the gateway with ``settings.workers`` processes."""
    preflight(settings)
    listening = (f"samalink gateway listening on http://{settings.host}:{settings.port} (public /v1), "
                 f"http://{settings.internal_host}:{settings.internal_port} (internal API)")
    if settings.log_format == "json":
        configure_logging(settings.log_format)
        log.info(listening)
    else:
        print(listening, file=sys.stderr, flush=True)
    if settings.workers == 1:
        run_worker(settings)
        return
    _metrics_directory()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=run_worker, args=(settings, True), daemon=False) for _ in range(settings.workers)]
    for worker in workers:
        worker.start()
    forwarded = False

    def forward(signum: int, _frame: object) -> None:
        # Once: the workers may already have the same signal from the terminal, and each
        # ignores repeats anyway; the parent only waits for them to finish their flush.
        nonlocal forwarded
        if forwarded:
            log.warning("%s received while the workers stop: ignored", signal.Signals(signum).name)
            return
        forwarded = True
        for worker in workers:
            if worker.is_alive() and worker.pid:
                try:
                    os.kill(worker.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for worker in workers:
        worker.join()
        if worker.pid:
            from .metrics import worker_exited

            worker_exited(worker.pid)


def main() -> int:
    """Entry point of ``python -m gateway``; returns the exit status."""
    try:
        settings = Settings.from_env()
        serve(settings)
    except (ConfigError, StartupError) as exc:
        print(f"samalink gateway: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
