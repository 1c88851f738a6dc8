"""The batch writer's transactions, in a process of their own.

In the serving process the writer's transactions (SQLAlchemy building the parameters,
the driver, SQLite itself) held the interpreter lock the event loop needs: 80–170 µs of
CPU per request, and the loop waiting for the lock at every system call while a flush
ran (bench/README.md, "The batch writer in its own process"). Here a child process
commits each batch (``metering.commit_batch``) and answers with its ``FlushOutcome``;
the queue, the retries, the leases and the key cache stay in the serving process.

The child ignores SIGINT and SIGTERM: a Ctrl-C reaches the whole process group and
systemd signals the whole control group, and the serving process still has its final
flush to make. It ends when its pipe is closed: by ``close`` after that flush, or by the
kernel when the serving process is gone. A child that dies is a transient flush
failure: the batch is kept and retried in a new child, and a commit that did land is
recognised by its request ids.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import signal
from multiprocessing.connection import Connection

from ..db import Database
from ..logs import configure_logging
from .metering import Batch, FlushOutcome, commit_batch

log = logging.getLogger("samalink.gateway.metering")

_CONTEXT = multiprocessing.get_context("spawn")
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def in_memory(database_url: str) -> bool:
    """True for a SQLite database that lives in one process's memory (no other process can write it)."""
    url = database_url.split("?", 1)[0]
    return url.startswith("sqlite") and url.split("://", 1)[-1] in ("", "/", "/:memory:")


class WriterProcess:
    """A child process that commits the batches handed to ``commit``, one at a time."""

    def __init__(self, database_url: str, log_format: str = "text") -> None:
        self.database_url = database_url
        self.log_format = log_format
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self.started = 0  # children started, restarts included

    @property
    def pid(self) -> int | None:
        """The current child's process id."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start a child (blocking for the fork and exec only, not for its imports)."""
        parent_end, child_end = _CONTEXT.Pipe()
        # Blocked in the starting thread, the stop signals stay blocked in the child from
        # its first instruction until it has set them to be ignored.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            process = _CONTEXT.Process(target=_serve_batches, args=(child_end, self.database_url, self.log_format),
                                       name="samalink-writer", daemon=True)
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        child_end.close()
        self._conn, self._process = parent_end, process
        self.started += 1
        if self.started == 1:
            # Before multiprocessing's own exit handler, which waits for the child: the
            # child ends only once this pipe is closed.
            atexit.register(self.close)

    def commit(self, batch: Batch) -> FlushOutcome:
        """Commit ``batch`` in the child (blocking; one call at a time)."""
        if self._conn is None:
            self.start()
        try:
            self._conn.send(batch)
            return self._conn.recv()
        except Exception as exc:  # noqa: BLE001 - the child died or the pipe broke: a transient failure
            exitcode = self._stop_child()
            log.warning("the writer process ended (exit code %s, %s); a new one takes the batch", exitcode,
                        type(exc).__name__)
            return FlushOutcome(error=f"the writer process ended (exit code {exitcode})")

    def close(self) -> None:
        """End the child once it has finished the batch it holds (blocking)."""
        self._stop_child()

    def _stop_child(self) -> int | None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        process.join(timeout=30)
        if process.is_alive():
            log.error("the writer process did not end within 30 s of its pipe closing; killed")
            process.kill()
            process.join()
        return process.exitcode


def _serve_batches(conn: Connection, database_url: str, log_format: str) -> None:
    """The child: commit each batch that comes down ``conn``, until it is closed."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    configure_logging(log_format)
    db = Database(database_url, threads=1)
    try:
        while True:
            try:
                batch = conn.recv()
            except (EOFError, OSError):
                return
            outcome = commit_batch(db, batch)
            try:
                conn.send(outcome)
            except OSError:
                return
    finally:
        db.close()
