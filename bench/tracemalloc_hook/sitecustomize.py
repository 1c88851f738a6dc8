"""Heap snapshots of a benchmarked process, taken from inside it (``soak.py --tracemalloc``).

Python imports ``sitecustomize`` at start when its directory is on PYTHONPATH. With
``BENCH_TRACEMALLOC_DIR`` set, this starts ``tracemalloc`` and a daemon thread that
writes a snapshot there every ``BENCH_TRACEMALLOC_SECONDS`` (default 60), named by the
process id and the seconds since start. With ``BENCH_TRACEMALLOC_COLLECT=1`` a full
garbage collection runs first, so the snapshot holds only what is still reachable (not
cyclic garbage waiting for the collector). With ``BENCH_MALLOCSTATS_SECONDS`` set (``soak.py
--mallocstats``) a daemon thread prints ``sys._debugmallocstats()`` (pymalloc's arenas and
pools) to the process's stderr that often. With ``BENCH_MALLINFO_SECONDS`` it prints glibc's
``mallinfo2()`` and SQLite's ``sqlite3_memory_used()`` as one JSON line. With ``BENCH_SQLITE_SOFT_HEAP_MB`` SQLite's soft heap
limit is set (``sqlite3_soft_heap_limit64``). With
``BENCH_WRITER_OFF=1`` (``compare.py --writer-off``) the gateway's batch writer queues
nothing. ``BENCH_SWITCH_INTERVAL`` sets the interpreter's thread switch interval (seconds,
``sys.setswitchinterval``). ``BENCH_MALLOC_TRIM_SECONDS`` calls glibc's ``malloc_trim(0)``
that often, and ``BENCH_TYPECOUNTS_SECONDS`` prints the commonest object types the
collector tracks. Without these variables it does nothing.
"""

from __future__ import annotations

import gc
import os
import sys
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


def _mallocstats(every: float) -> None:
    # sys._debugmallocstats writes to the C-level stderr, which the harness sends to the log.
    while True:
        time.sleep(every)
        sys._debugmallocstats()


_MALLOCSTATS = os.environ.get("BENCH_MALLOCSTATS_SECONDS")
if _MALLOCSTATS:
    threading.Thread(target=_mallocstats, args=(float(_MALLOCSTATS),), daemon=True, name="bench-mallocstats").start()


def _mallinfo(every: float) -> None:
    # glibc's own account of malloc (all arenas): bytes in use against bytes free but kept,
    # beside SQLite's count of what it holds from malloc (page caches, statements, schema).
    import ctypes
    import json

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    try:
        sqlite = ctypes.CDLL("libsqlite3.so.0")
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    except OSError:
        sqlite = None
    started = time.monotonic()
    while True:
        time.sleep(every)
        info = libc.mallinfo2()
        line = {"t": round(time.monotonic() - started), "arena_mb": info.arena / 2**20, "mmap_mb": info.hblkhd / 2**20,
                "in_use_mb": info.uordblks / 2**20, "free_kept_mb": info.fordblks / 2**20,
                "free_chunks": info.ordblks, "sqlite_mb": sqlite.sqlite3_memory_used() / 2**20 if sqlite else None}
        print("bench-mallinfo " + json.dumps(line), file=sys.stderr, flush=True)


_MALLINFO = os.environ.get("BENCH_MALLINFO_SECONDS")
if _MALLINFO:
    threading.Thread(target=_mallinfo, args=(float(_MALLINFO),), daemon=True, name="bench-mallinfo").start()


_SQLITE_HEAP_MB = os.environ.get("BENCH_SQLITE_SOFT_HEAP_MB")
if _SQLITE_HEAP_MB:
    # Caps what SQLite keeps from malloc in this process (page caches above all); the
    # library shrinks its caches to stay under it. Same libsqlite3 as the sqlite3 module.
    import ctypes

    _sqlite = ctypes.CDLL("libsqlite3.so.0")
    _sqlite.sqlite3_soft_heap_limit64.argtypes = [ctypes.c_int64]
    _sqlite.sqlite3_soft_heap_limit64.restype = ctypes.c_int64
    _sqlite.sqlite3_soft_heap_limit64(int(float(_SQLITE_HEAP_MB) * 2**20))


if os.environ.get("BENCH_WRITER_OFF") == "1":
    # The most a writer in its own process could save (compare.py --writer-off): a settled
    # request is normalised, counted and queued as usual, then taken off the queue again
    # with its reservation given back, so nothing is written on this process's threads.
    # The hand-over to another process is not counted.
    from gateway.accounting import metering

    _queue_as_usual = metering.BatchWriter.settle

    def _settle_elsewhere(self, record, reservation) -> None:
        before = len(self._queue)
        _queue_as_usual(self, record, reservation)
        if len(self._queue) > before:
            _, queued_reservation = self._queue.pop()
            if queued_reservation is not None and self.reserver is not None:
                self.reserver.release(queued_reservation)

    metering.BatchWriter.settle = _settle_elsewhere


_SWITCH_INTERVAL = os.environ.get("BENCH_SWITCH_INTERVAL")
if _SWITCH_INTERVAL:
    # How long a thread may hold the interpreter lock while another waits for it (5 ms
    # by default): the event loop waits up to this for the batch writer's thread.
    sys.setswitchinterval(float(_SWITCH_INTERVAL))


def _malloc_trim(every: float) -> None:
    # glibc's malloc_trim(0) walks every arena and gives whole free pages back to the
    # kernel, also between live chunks (MALLOC_TRIM_THRESHOLD_ only trims an arena's top).
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    while True:
        time.sleep(every)
        libc.malloc_trim(0)


_MALLOC_TRIM = os.environ.get("BENCH_MALLOC_TRIM_SECONDS")
if _MALLOC_TRIM:
    threading.Thread(target=_malloc_trim, args=(float(_MALLOC_TRIM),), daemon=True, name="bench-malloc-trim").start()


def _type_counts(every: float) -> None:
    # The 25 commonest types among the objects the collector tracks, with how many of each:
    # what grows between two lines is what a backlog or a leak is made of.
    import collections
    import json

    started = time.monotonic()
    while True:
        time.sleep(every)
        counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
        line = {"t": round(time.monotonic() - started), "objects": sum(counts.values()),
                "top": counts.most_common(25)}
        print("bench-types " + json.dumps(line), file=sys.stderr, flush=True)


_TYPE_COUNTS = os.environ.get("BENCH_TYPECOUNTS_SECONDS")
if _TYPE_COUNTS:
    threading.Thread(target=_type_counts, args=(float(_TYPE_COUNTS),), daemon=True, name="bench-types").start()
