"""Ledger postings and the Reserver's leases, in-process against the session database."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from gateway.db import leases, ledger_entries
from gateway.accounting.leases import InsufficientBalance, Reserver
from gateway.accounting.ledger import (
    IdempotencyConflict, create_account, get_account, ledger_sum, post_entry, post_entry_async, signed_amount,
)
from gateway.accounting.metering import BatchWriter, RequestRecord


def new_account(db, balance: int = 0) -> str:
    def work(conn):
        row, _ = create_account(conn, "t@example.com", None)
        if balance:
            post_entry(conn, row.id, "credit", balance, f"seed-{uuid.uuid4()}")
        return row.id

    return db.transaction_sync(work)


def account_row(db, account_id: str):
    return db.read_sync(get_account, account_id)


def entries_sum(db, account_id: str) -> int:
    return db.read_sync(ledger_sum, account_id)


def record(account_id: str, cost: int, key_id: str = "") -> RequestRecord:
    return RequestRecord(
        request_id=f"req-{uuid.uuid4()}", account_id=account_id, key_id=key_id, model="deepseek-v3.2",
        provider="deepseek", endpoint="/v1/chat/completions", stream=False, input_tokens=10, output_tokens=5,
        cost_micro_p=cost, latency_ms=12, ttft_ms=None, status=200 if cost else 502,
        error_class=None if cost else "upstream_error", estimated=False, created_at=datetime.now(timezone.utc),
    )


def test_signed_amount_rules():
    assert signed_amount("credit", 5) == 5
    assert signed_amount("debit", 5) == -5
    assert signed_amount("refund", 5) == -5
    assert signed_amount("adjustment", -7) == -7
    for kind, amount in [("credit", 0), ("credit", -1), ("debit", -5), ("adjustment", 0), ("usage", 5)]:
        with pytest.raises(ValueError):
            signed_amount(kind, amount)


def test_replay_returns_the_same_entry_and_conflict_is_refused(gateway_db):
    account_id = new_account(gateway_db)
    key = f"topup-{uuid.uuid4()}"
    first, replayed = gateway_db.transaction_sync(post_entry, account_id, "credit", 1_000_000, key, "card")
    again, replayed_again = gateway_db.transaction_sync(post_entry, account_id, "credit", 1_000_000, key, "card")
    assert (replayed, replayed_again) == (False, True)
    assert again == first
    with pytest.raises(IdempotencyConflict):
        gateway_db.transaction_sync(post_entry, account_id, "credit", 2_000_000, key, "card")
    with pytest.raises(IdempotencyConflict):
        gateway_db.transaction_sync(post_entry, account_id, "credit", 1_000_000, key, "other description")
    assert account_row(gateway_db, account_id).balance_micro_p == 1_000_000
    assert entries_sum(gateway_db, account_id) == 1_000_000


def test_concurrent_replays_credit_once(gateway_db):
    account_id = new_account(gateway_db)
    key = f"topup-{uuid.uuid4()}"

    async def main():
        return await asyncio.gather(
            *[post_entry_async(gateway_db, account_id, "credit", 3_000_000, key, "") for _ in range(12)]
        )

    results = asyncio.run(main())
    assert sum(1 for _, replayed in results if not replayed) == 1
    assert len({entry["id"] for entry, _ in results}) == 1
    assert account_row(gateway_db, account_id).balance_micro_p == 3_000_000


def test_fifty_concurrent_reservations_fit_only_four(gateway_db):
    account_id = new_account(gateway_db, balance=4_000)

    async def main():
        reserver = Reserver(gateway_db)
        outcomes = await asyncio.gather(
            *[reserver.reserve(account_id, 1_000) for _ in range(50)], return_exceptions=True
        )
        granted = [o for o in outcomes if not isinstance(o, Exception)]
        refused = [o for o in outcomes if isinstance(o, InsufficientBalance)]
        leased = account_row(gateway_db, account_id).leased_micro_p
        await reserver.close()
        return granted, refused, leased

    granted, refused, leased = asyncio.run(main())
    assert len(granted) == 4
    assert len(refused) == 46
    assert leased <= 4_000


def test_lease_is_returned_at_close_and_released_reservations_reused(gateway_db):
    account_id = new_account(gateway_db, balance=80_000)

    async def main():
        reserver = Reserver(gateway_db)
        first = await reserver.reserve(account_id, 50_000)
        with pytest.raises(InsufficientBalance):
            await reserver.reserve(account_id, 50_000)
        reserver.release(first)
        reserver.release(first)  # idempotent: released once only
        second = await reserver.reserve(account_id, 60_000)
        assert second.amount_micro_p == 60_000
        with pytest.raises(InsufficientBalance):
            await reserver.reserve(account_id, 30_000)
        held = account_row(gateway_db, account_id).leased_micro_p
        await reserver.close()
        return held

    held = asyncio.run(main())
    assert held == 60_000  # the 50,000 lease was reused and grown by 10,000
    row = account_row(gateway_db, account_id)
    assert row.leased_micro_p == 0
    assert row.balance_micro_p == 80_000
    remaining = gateway_db.read_sync(
        lambda conn: conn.execute(sa.select(sa.func.count()).select_from(leases).where(leases.c.account_id == account_id)).scalar()
    )
    assert remaining == 0


def test_zero_balance_is_refused(gateway_db):
    account_id = new_account(gateway_db)

    async def main():
        reserver = Reserver(gateway_db)
        try:
            with pytest.raises(InsufficientBalance):
                await reserver.reserve(account_id, 0)
        finally:
            await reserver.close()

    asyncio.run(main())


def test_two_reservers_never_lease_more_than_the_balance(gateway_db):
    """Two reservers stand for two gateway processes; each runs in its own thread and loop."""
    account_id = new_account(gateway_db, balance=100_000)
    granted: list[int] = []
    lock = threading.Lock()
    # Each holds its leases until the other has asked for more (a fixed pause would not,
    # on a loaded machine: the other might start only after the leases went back).
    both_asked = threading.Barrier(2, timeout=60)

    def process():
        async def main():
            reserver = Reserver(gateway_db)
            outcomes = await asyncio.gather(
                *[reserver.reserve(account_id, 3_000) for _ in range(40)], return_exceptions=True
            )
            with lock:
                granted.extend(o.amount_micro_p for o in outcomes if not isinstance(o, Exception))
            leased = account_row(gateway_db, account_id).leased_micro_p
            await asyncio.get_running_loop().run_in_executor(None, both_asked.wait)
            await reserver.close()
            return leased

        return asyncio.run(main())

    threads = [threading.Thread(target=process) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) <= 100_000
    assert sum(granted) >= 99_000 - 3_000  # the balance is actually usable across both
    row = account_row(gateway_db, account_id)
    assert row.leased_micro_p == 0


def test_expired_lease_of_a_crashed_process_is_reclaimed(gateway_db):
    account_id = new_account(gateway_db, balance=10_000)

    async def main():
        crashed = Reserver(gateway_db, lease_ttl=0.05)
        await crashed.reserve(account_id, 10_000)  # never closed: the process "crashed"
        survivor = Reserver(gateway_db)
        with pytest.raises(InsufficientBalance):
            await survivor.reserve(account_id, 1_000)
        await asyncio.sleep(0.1)
        await survivor.renew_and_reclaim()
        reservation = await survivor.reserve(account_id, 1_000)
        await survivor.close()
        return reservation

    assert asyncio.run(main()).amount_micro_p == 1_000
    assert account_row(gateway_db, account_id).leased_micro_p == 0


def test_balance_equals_entries_after_concurrent_traffic(gateway_db):
    """Reservations, settlements (some over their reservation) and top-ups at once."""
    account_id = new_account(gateway_db, balance=5_000_000)

    async def main():
        reserver = Reserver(gateway_db)
        writer = BatchWriter(gateway_db, reserver, flush_interval=0.01, batch_size=7)
        await writer.start()

        async def request(i: int):
            try:
                reservation = await reserver.reserve(account_id, 20_000)
            except InsufficientBalance:
                return 0
            await asyncio.sleep(0)
            cost = 0 if i % 5 == 0 else 15_000 + (i % 3) * 5_000  # some cost more than reserved
            writer.settle(record(account_id, cost), reservation)
            return cost

        async def top_up(i: int):
            await post_entry_async(gateway_db, account_id, "credit", 100_000, f"t-{account_id}-{i}", "")

        results = await asyncio.gather(*[request(i) for i in range(300)], *[top_up(i) for i in range(10)])
        await writer.close()
        await reserver.close()
        return sum(r for r in results if isinstance(r, int))

    charged = asyncio.run(main())
    row = account_row(gateway_db, account_id)
    assert row.balance_micro_p == entries_sum(gateway_db, account_id)
    assert row.balance_micro_p == 5_000_000 + 10 * 100_000 - charged
    assert row.spent_micro_p == charged
    assert row.leased_micro_p == 0
    usage_entries = gateway_db.read_sync(
        lambda conn: conn.execute(
            sa.select(sa.func.count()).select_from(ledger_entries).where(
                ledger_entries.c.account_id == account_id, ledger_entries.c.kind == "usage"
            )
        ).scalar()
    )
    assert usage_entries == sum(1 for i in range(300) if i % 5 != 0)


def test_overdraw_is_bounded_by_cost_above_reservations(gateway_db):
    """Requests that cost more than reserved overdraw by at most the difference."""
    account_id = new_account(gateway_db, balance=10_000)

    async def main():
        reserver = Reserver(gateway_db)
        writer = BatchWriter(gateway_db, reserver, flush_interval=0.01)
        await writer.start()
        held = []
        for _ in range(20):
            try:
                held.append(await reserver.reserve(account_id, 2_000))
            except InsufficientBalance:
                break
        for reservation in held:
            writer.settle(record(account_id, 2_500), reservation)
        await writer.close()
        await reserver.close()
        return len(held)

    granted = asyncio.run(main())
    assert granted == 5
    row = account_row(gateway_db, account_id)
    assert row.balance_micro_p == 10_000 - 5 * 2_500
    assert -row.balance_micro_p <= 5 * (2_500 - 2_000)
    assert row.balance_micro_p == entries_sum(gateway_db, account_id)
