"""Heap snapshots of a benchmarked process, taken from inside it (``soak.py --tracemalloc``).

Python imports ``sitecustomize`` at start when its directory is on PYTHONPATH. With
``BENCH_TRACEMALLOC_DIR`` set, this starts ``tracemalloc`` and a daemon thread that
writes a snapshot there every ``BENCH_TRACEMALLOC_SECONDS`` (default 60), named by the
process id and the seconds since start. With ``BENCH_TRACEMALLOC_COLLECT=1`` a full
garbage collection runs first, so the snapshot holds only what is still reachable (not
cyclic garbage waiting for the collector). Without ``BENCH_TRACEMALLOC_DIR`` it does nothing.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc


def _snapshots(directory: str, every: float, collect: bool) -> None:
    started = time.monotonic()
    while True:
        time.sleep(every)
        if collect:
            gc.collect()
        elapsed = int(time.monotonic() - started)
        path = os.path.join(directory, f"{os.getpid()}-{elapsed:05d}.snapshot")
        tracemalloc.take_snapshot().dump(path)


_DIRECTORY = os.environ.get("BENCH_TRACEMALLOC_DIR")
if _DIRECTORY:
    os.makedirs(_DIRECTORY, exist_ok=True)
    tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "4")))
    threading.Thread(target=_snapshots, args=(_DIRECTORY, float(os.environ.get("BENCH_TRACEMALLOC_SECONDS", "60")),
                                              os.environ.get("BENCH_TRACEMALLOC_COLLECT") == "1"),
                     daemon=True, name="bench-tracemalloc").start()
