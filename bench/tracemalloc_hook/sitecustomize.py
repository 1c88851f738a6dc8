"""Heap snapshots of a benchmarked process, taken from inside it (``soak.py --tracemalloc``).

Python imports ``sitecustomize`` at start when its directory is on PYTHONPATH. With
``BENCH_TRACEMALLOC_DIR`` set, this starts ``tracemalloc`` and a daemon thread that
writes a snapshot there every ``BENCH_TRACEMALLOC_SECONDS`` (default 60), named by the
process id and the seconds since start. Without the variable it does nothing.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc


def _snapshots(directory: str, every: float) -> None:
    started = time.monotonic()
    while True:
        time.sleep(every)
        elapsed = int(time.monotonic() - started)
        path = os.path.join(directory, f"{os.getpid()}-{elapsed:05d}.snapshot")
        tracemalloc.take_snapshot().dump(path)


_DIRECTORY = os.environ.get("BENCH_TRACEMALLOC_DIR")
if _DIRECTORY:
    os.makedirs(_DIRECTORY, exist_ok=True)
    tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "4")))
    threading.Thread(target=_snapshots, args=(_DIRECTORY, float(os.environ.get("BENCH_TRACEMALLOC_SECONDS", "60"))),
                     daemon=True, name="bench-tracemalloc").start()
