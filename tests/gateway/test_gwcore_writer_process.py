"""The writer process: the batch writer's commits in a child, which outlives no one and loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from gateway.accounting.leases import Reserver
from gateway.accounting.metering import BatchWriter
from gateway.accounting.writer_process import WriterProcess, in_memory
from test_gwcore_metering import counts, record, setup_account


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(") ", 1)[1].startswith("Z"):
                    return True  # ended, not yet reaped
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def process(gateway_db):
    process = WriterProcess(gateway_db.url)
    process.start()
    yield process
    process.close()


def test_the_child_charges_and_the_leases_in_this_process_follow(gateway_db, process):
    account_id, key_id = setup_account(gateway_db, 100_000)

    async def main():
        reserver = Reserver(gateway_db)
        writer = BatchWriter(gateway_db, reserver, commit=process.commit)
        reservations = [await reserver.reserve(account_id, 30_000) for _ in range(3)]
        for reservation in reservations:
            writer.settle(record(account_id, key_id, 10_000), reservation)
        assert await writer.flush() is True
        # The child's commit shrank the lease rows; the reservations here are settled, so
        # all that is left of the balance can be reserved again at once.
        assert all(reservation.done for reservation in reservations)
        whole = await reserver.reserve(account_id, 70_000)
        reserver.release(whole)
        await reserver.close()

    asyncio.run(main())
    assert counts(gateway_db, account_id) == (3, 3, 70_000)
    assert process.pid != os.getpid() and process.started == 1


def test_a_child_that_dies_costs_one_retry_and_nothing_else(gateway_db, process):
    account_id, key_id = setup_account(gateway_db, 1_000_000)

    async def main():
        writer = BatchWriter(gateway_db, None, commit=process.commit)
        writer.settle(record(account_id, key_id, 1_000), None)
        assert await writer.flush() is True
        os.kill(process.pid, signal.SIGKILL)
        assert _gone(process.pid)
        for _ in range(4):
            writer.settle(record(account_id, key_id, 2_000), None)
        assert await writer.flush() is False  # the dead child's pipe: kept for the retry
        assert writer.queue_depth == 4
        assert await writer.flush() is True  # in a new child
        assert writer.queue_depth == 0

    asyncio.run(main())
    assert process.started == 2
    assert counts(gateway_db, account_id) == (5, 5, 1_000_000 - 9_000)


def test_stop_signals_do_not_reach_the_child(gateway_db, process):
    """A Ctrl-C reaches the whole process group: the child must still take the final flush."""
    account_id, key_id = setup_account(gateway_db, 1_000_000)

    async def main():
        writer = BatchWriter(gateway_db, None, commit=process.commit)
        assert await writer.flush() is True  # the child is up and has set its signals
        child = process.pid
        os.kill(child, signal.SIGINT)
        os.kill(child, signal.SIGTERM)
        await writer.start()
        for _ in range(3):
            writer.settle(record(account_id, key_id, 1_000), None)
        await writer.close()
        return child

    child = asyncio.run(main())
    assert process.pid == child and process.started == 1
    assert counts(gateway_db, account_id) == (3, 3, 1_000_000 - 3_000)
    process.close()
    assert _gone(child), "the child must end once its pipe is closed"


def test_a_database_in_memory_stays_in_the_serving_process():
    assert in_memory("sqlite://") and in_memory("sqlite:///:memory:")
    assert not in_memory("sqlite:////var/lib/samalink/gateway.db")
    assert not in_memory("sqlite:///instance/gateway.db")
    assert not in_memory("postgresql+psycopg://samalink@db/samalink")
