"""The batch writer's CPU per flush and per record, phase by phase.

    python bench/writer_cost.py [--database-url URL] [--sizes 1,10,50,200,500] [--flushes 100]

Each flush is one ``write_batch`` transaction, as ``BatchWriter.flush`` commits it, of
records shaped like real traffic (``load_requests.generate``: one account, one key, the
models' mix, cache reads, errors) made safe by ``normalise`` first. A flush's cost is a
fixed part (one statement or more per phase whatever the batch holds) and a part per
record (the rows themselves); at a few requests per flush the fixed part is nearly all of
it. The figure is this process's CPU (``time.process_time``: user and kernel, the
database's own work included on SQLite), per flush and per record, with each phase's
share. The default database is a scratch SQLite file, emptied first.

A second table is what a writer in a process of its own would add to the serving
process per record instead: pickling (record, reservation) and sending it down a pipe to
a reading process, one by one and in groups of 50 (the sender's CPU only).
"""

from __future__ import annotations

import argparse
import multiprocessing
import pickle
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

from gateway.accounting import metering  # noqa: E402
from gateway.accounting.leases import Reservation  # noqa: E402
from gateway.db import Database  # noqa: E402
from load_requests import ensure_account, generate  # noqa: E402

PHASES = ["_unwritten", "_insert_log_rows", "_insert_attempts", "debit_usage", "settle_reservations",
          "_add_key_use", "_add_usage_sums"]
SCRATCH = BENCH_DIR / "results" / "data" / "writer_cost.db"


def timed_phases(spent: dict[str, float]) -> None:
    """Wrap each phase ``write_batch`` calls so its CPU time adds up in ``spent``."""
    for name in PHASES:
        original = getattr(metering, name)

        def timed(*args, _original=original, _name=name, **kwargs):
            started = time.process_time()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_name] = spent.get(_name, 0.0) + time.process_time() - started

        setattr(metering, name, timed)


def _drain(pipe) -> None:
    """The receiving end: unpickle every message until the empty one."""
    while message := pipe.recv_bytes():
        pickle.loads(message)


def handoff_cost(records: list, group: int) -> float:
    """CPU µs per record, in this process, to pickle records in ``group``s and send them to another process."""
    sending, receiving = multiprocessing.Pipe()
    reader = multiprocessing.Process(target=_drain, args=(receiving,))
    reader.start()
    items = [(record, Reservation(record.account_id, 10_000, "holder", key_id=record.key_id)) for record in records]
    started = time.process_time()
    for start in range(0, len(items), group):
        sending.send_bytes(pickle.dumps(items[start:start + group], protocol=pickle.HIGHEST_PROTOCOL))
    spent = time.process_time() - started
    sending.send_bytes(b"")
    reader.join()
    return spent / len(items) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="CPU per flush and per record of the batch writer's transaction.")
    parser.add_argument("--database-url", default=None, help="default: a scratch SQLite file")
    parser.add_argument("--sizes", default="1,10,50,200,500", help="records per flush, comma-separated")
    parser.add_argument("--flushes", type=int, default=100, help="flushes per size")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    url = args.database_url
    if url is None:
        SCRATCH.parent.mkdir(parents=True, exist_ok=True)
        SCRATCH.unlink(missing_ok=True)
        url = f"sqlite:///{SCRATCH}"
    db = Database(url, threads=1)
    db.upgrade()
    account_id, key_ids = ensure_account(db, "writer-cost", credit_micro_p=10**15)
    now = datetime.now(timezone.utc)
    needed = sum(sizes) * args.flushes
    label = f"writer-cost-{int(now.timestamp())}"  # fresh request ids on a reused database
    records = [metering.normalise(record)
               for record in generate(label, account_id, key_ids[:1], needed, 1, now, seed=1)]
    spent: dict[str, float] = {}
    timed_phases(spent)
    print("| records per flush | CPU ms per flush | CPU µs per record | " + " | ".join(PHASES) + " |")
    print("|---:|---:|---:|" + "---:|" * len(PHASES))
    position = 0
    try:
        for size in sizes:
            spent.clear()
            started = time.process_time()
            for _ in range(args.flushes):
                batch = [(record, None) for record in records[position:position + size]]
                position += size
                db.transaction_sync(metering.write_batch, batch)
            total = time.process_time() - started
            per_flush = total / args.flushes
            shares = " | ".join(f"{spent.get(name, 0.0) / args.flushes * 1e3:.2f}" for name in PHASES)
            print(f"| {size} | {per_flush * 1e3:.2f} | {per_flush / size * 1e6:.1f} | {shares} |", flush=True)
    finally:
        db.close()
    print("(phase columns: CPU ms per flush)")
    print()
    print("| hand-over to another process | sender CPU µs per record |")
    print("|---|---:|")
    for group in (1, 50):
        print(f"| pickled and sent {'one by one' if group == 1 else f'in groups of {group}'} | "
              f"{handoff_cost(records[:10_000], group):.1f} |")


if __name__ == "__main__":
    main()
