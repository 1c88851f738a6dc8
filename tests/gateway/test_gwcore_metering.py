"""The batch writer: one transaction per flush, retries without loss or double charge."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import sqlalchemy as sa

from gateway.auth import create_key
from gateway.catalog import Model
from gateway.db import api_keys, ledger_entries, request_log, usage_rollups
from gateway.accounting.leases import Reserver
from gateway.accounting.ledger import create_account, get_account, ledger_sum, post_entry
from gateway.accounting.metering import BatchWriter, RequestRecord, bucket_start, cost_micro_p


class FlakyDatabase:
    """The session database, except that chosen transactions fail before or after COMMIT."""

    def __init__(self, db, fail_before_commit: int = 0, fail_after_commit: int = 0) -> None:
        self.db = db
        self.engine = db.engine
        self.fail_before_commit = fail_before_commit
        self.fail_after_commit = fail_after_commit
        self.attempts = 0

    async def run(self, fn, *args):
        return await self.db.run(fn, *args)

    async def transaction(self, fn, *args):
        return await self.db.run(self.transaction_sync, fn, *args)

    def transaction_sync(self, fn, *args):
        self.attempts += 1
        with self.engine.begin() as conn:
            result = fn(conn, *args)
            if self.fail_before_commit:
                self.fail_before_commit -= 1
                raise sa.exc.OperationalError("COMMIT", {}, Exception("connection lost"))
        if self.fail_after_commit:
            self.fail_after_commit -= 1
            raise sa.exc.OperationalError("COMMIT", {}, Exception("connection lost after commit"))
        return result


def setup_account(db, balance: int) -> tuple[str, str]:
    def work(conn):
        row, _ = create_account(conn, None, None)
        post_entry(conn, row.id, "credit", balance, f"seed-{uuid.uuid4()}")
        _, key = create_key(conn, row.id, "metering test")
        return row.id, key.id

    return db.transaction_sync(work)


def record(account_id: str, key_id: str, cost: int, when: datetime | None = None, status: int = 200) -> RequestRecord:
    return RequestRecord(
        request_id=f"req-{uuid.uuid4()}", account_id=account_id, key_id=key_id, model="glm-5", provider="zhipu",
        endpoint="/v1/chat/completions", stream=True, input_tokens=100, output_tokens=40, cost_micro_p=cost,
        latency_ms=250, ttft_ms=80, status=status, error_class=None if status == 200 else "upstream_error",
        estimated=False, created_at=when or datetime.now(timezone.utc),
    )


def counts(db, account_id: str) -> tuple[int, int, int]:
    def work(conn):
        logs = conn.execute(sa.select(sa.func.count()).select_from(request_log).where(request_log.c.account_id == account_id)).scalar()
        usage = conn.execute(
            sa.select(sa.func.count()).select_from(ledger_entries).where(
                ledger_entries.c.account_id == account_id, ledger_entries.c.kind == "usage"
            )
        ).scalar()
        balance = get_account(conn, account_id).balance_micro_p
        return logs, usage, balance

    return db.read_sync(work)


def test_cost_is_integer_micro_p_per_token():
    model = Model("m", "p", "u", "chat", "Chinese Models", 280, 420, 8192, 128000)
    assert cost_micro_p(model, 1_000_000, 0) == 280_000_000  # 280 P per 1M tokens
    assert cost_micro_p(model, 3, 7) == 3 * 280 + 7 * 420
    unpriced = Model("x", "p", "u", "chat", "International Models", None, None, 8192, 128000)
    try:
        cost_micro_p(unpriced, 1, 1)
    except ValueError:
        pass
    else:
        raise AssertionError("an unpriced model must not be charged")


def test_flush_failing_before_commit_leaves_nothing_and_retries(gateway_db):
    account_id, key_id = setup_account(gateway_db, 1_000_000)
    flaky = FlakyDatabase(gateway_db, fail_before_commit=2)

    async def main():
        writer = BatchWriter(flaky, None, flush_interval=0.01)
        for cost in (1_000, 2_000, 3_000):
            writer.settle(record(account_id, key_id, cost), None)
        assert await writer.flush() is False
        # The failed transaction wrote nothing: log, ledger and balance untouched.
        assert counts(gateway_db, account_id) == (0, 0, 1_000_000)
        assert writer.queue_depth == 3
        await writer.start()
        await writer.close()
        return writer

    writer = asyncio.run(main())
    assert flaky.attempts == 3
    assert writer.queue_depth == 0
    assert counts(gateway_db, account_id) == (3, 3, 1_000_000 - 6_000)
    assert gateway_db.read_sync(ledger_sum, account_id) == 1_000_000 - 6_000


def test_flush_whose_commit_landed_is_not_charged_twice(gateway_db):
    account_id, key_id = setup_account(gateway_db, 1_000_000)
    flaky = FlakyDatabase(gateway_db, fail_after_commit=1)

    async def main():
        writer = BatchWriter(flaky, None)
        writer.settle(record(account_id, key_id, 5_000), None)
        writer.settle(record(account_id, key_id, 7_000), None)
        assert await writer.flush() is False
        assert await writer.flush() is True

    asyncio.run(main())
    assert counts(gateway_db, account_id) == (2, 2, 1_000_000 - 12_000)


def test_close_flushes_everything_queued(gateway_db):
    account_id, key_id = setup_account(gateway_db, 1_000_000)

    async def main():
        # A flush interval far longer than the test: only the shutdown flush can write.
        writer = BatchWriter(gateway_db, None, flush_interval=3600)
        await writer.start()
        for _ in range(25):
            writer.settle(record(account_id, key_id, 1_000), None)
        await asyncio.sleep(0.05)
        assert counts(gateway_db, account_id)[0] == 0
        await writer.close()

    asyncio.run(main())
    assert counts(gateway_db, account_id) == (25, 25, 1_000_000 - 25_000)


def test_failed_request_is_logged_without_ledger_entry_and_frees_its_reservation(gateway_db):
    account_id, key_id = setup_account(gateway_db, 100_000)

    async def main():
        reserver = Reserver(gateway_db)
        writer = BatchWriter(gateway_db, reserver)
        reservation = await reserver.reserve(account_id, 100_000)
        writer.settle(record(account_id, key_id, 0, status=502), reservation)
        # Released at once: the whole balance can be reserved again before any flush.
        again = await reserver.reserve(account_id, 100_000)
        reserver.release(again)
        await writer.flush()
        await reserver.close()

    asyncio.run(main())
    logs, usage, balance = counts(gateway_db, account_id)
    assert (logs, usage, balance) == (1, 0, 100_000)
    status = gateway_db.read_sync(
        lambda conn: conn.execute(sa.select(request_log.c.status, request_log.c.error_class).where(request_log.c.account_id == account_id)).one()
    )
    assert tuple(status) == (502, "upstream_error")


def test_flush_updates_key_spend_last_use_and_rollups(gateway_db):
    account_id, key_id = setup_account(gateway_db, 1_000_000)
    when = datetime(2026, 11, 20, 10, 7, 30, tzinfo=timezone.utc)

    async def main():
        writer = BatchWriter(gateway_db, None)
        writer.settle(record(account_id, key_id, 4_000, when), None)
        await writer.flush()
        writer.settle(record(account_id, key_id, 6_000, when.replace(minute=14)), None)
        await writer.flush()

    asyncio.run(main())

    def read(conn):
        key = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one()
        rollups = list(conn.execute(sa.select(usage_rollups).where(usage_rollups.c.account_id == account_id)))
        return key, rollups

    key, rollups = gateway_db.read_sync(read)
    assert key.spent_micro_p == 10_000
    assert key.last_used_at == when.replace(minute=14)
    assert len(rollups) == 1  # both fall in the 10:00-10:15 bucket: one upserted row
    row = rollups[0]
    assert row.bucket_start == bucket_start(when) == int(datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc).timestamp())
    assert (row.requests, row.input_tokens, row.output_tokens, row.cost_micro_p) == (2, 200, 80, 10_000)


def test_a_record_breaking_a_constraint_does_not_block_the_others(gateway_db):
    account_id, key_id = setup_account(gateway_db, 1_000_000)
    ghost = str(uuid.uuid4())  # no such account

    async def main():
        writer = BatchWriter(gateway_db, None)
        writer.settle(record(account_id, key_id, 1_000), None)
        writer.settle(record(ghost, "", 1_000), None)
        writer.settle(record(account_id, key_id, 2_000), None)
        assert await writer.flush() is True
        return writer.queue_depth

    assert asyncio.run(main()) == 0
    assert counts(gateway_db, account_id) == (2, 2, 1_000_000 - 3_000)
