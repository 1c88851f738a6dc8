"""Team members' budgets in-process: one budget shared by the member's keys across two
processes, the allowance it sets, its reset at local midnight (time travel), a reset that
happens once however many writers race to it, and charges counted in the period their
request began in."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import time_machine

from gateway.accounting.budgets import add_budget_spend
from gateway.accounting.leases import MEMBER_BUDGET, InsufficientBalance, MemberBudgetExceeded, Reserver, settle_reservations
from gateway.accounting.ledger import create_account, post_entry
from gateway.accounting.member_budgets import member_budget_dict, member_budget_row, set_member_budget
from gateway.auth import create_key
from gateway.db import accounts

ONE_P = 1_000_000


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def now() -> datetime:
    return datetime.now(timezone.utc)


def member_with_budget(db, budget: int, period: str, zone: str = "UTC", balance: int = 1000 * ONE_P,
                       keys: int = 2) -> tuple[str, str, list[str]]:
    """A funded account in ``zone`` whose member "7" has ``keys`` keys and this budget:
    (account id, budget id, key ids)."""
    def work(conn):
        account, _ = create_account(conn, None, None)
        conn.execute(accounts.update().where(accounts.c.id == account.id).values(usage_tz=zone))
        post_entry(conn, account.id, "credit", balance, f"fund:{account.id}")
        key_ids = [create_key(conn, account.id, f"k{i}", member_id="7")[1].id for i in range(keys)]
        row = set_member_budget(conn, account.id, "7", budget, period, now())
        return account.id, row.id, key_ids

    return db.transaction_sync(work)


def member(db, account_id: str) -> dict:
    return db.read_sync(lambda conn: member_budget_dict(member_budget_row(conn, account_id, "7"), "7", now()))


def spend(db, reserver: Reserver, reservation, key_id: str, cost: int) -> None:
    """Settle ``reservation`` as the batch writer does, charging ``cost`` to the key."""
    def work(conn):
        settled = settle_reservations(conn, [reservation])
        add_budget_spend(conn, {key_id: [(now(), cost)]}, now())
        return settled

    for settled in db.transaction_sync(work):
        reserver.consumed(settled)


def test_two_processes_share_one_member_budget_across_the_members_keys(gateway_db):
    async def scenario():
        account_id, budget_id, key_ids = member_with_budget(gateway_db, 50 * ONE_P, "day")
        first, second = Reserver(gateway_db), Reserver(gateway_db)
        try:
            outcomes = await asyncio.gather(
                *[(first if i % 2 else second).reserve(account_id, 7 * ONE_P, member_budget_id=budget_id)
                  for i in range(20)],
                return_exceptions=True,
            )
            held = [o.amount_micro_p for o in outcomes if not isinstance(o, Exception)]
            assert sum(held) <= 50 * ONE_P
            assert len(held) == 7
            assert all(isinstance(o, MemberBudgetExceeded) for o in outcomes if isinstance(o, Exception))
            # The refused requests kept none of the balance.
            assert first.held(account_id)[1] + second.held(account_id)[1] == 49 * ONE_P
        finally:
            await first.close()
            await second.close()

    asyncio.run(scenario())


def test_the_allowance_is_the_smallest_of_balance_and_member_budget(gateway_db):
    async def scenario():
        account_id, budget_id, _ = member_with_budget(gateway_db, 3 * ONE_P, "week", balance=10 * ONE_P)
        reserver = Reserver(gateway_db)
        try:
            lowered = await reserver.reserve_up_to(account_id, 8 * ONE_P, ONE_P, member_budget_id=budget_id)
            assert lowered.amount_micro_p == 3 * ONE_P
            assert reserver.held(budget_id, MEMBER_BUDGET)[1] == 3 * ONE_P
            with pytest.raises(MemberBudgetExceeded):
                await reserver.reserve_up_to(account_id, ONE_P, 1, member_budget_id=budget_id)
            reserver.release(lowered)
            # With room in the member budget, the balance is the smaller limit.
            with pytest.raises(InsufficientBalance):
                await reserver.reserve_up_to(account_id, 20 * ONE_P, 11 * ONE_P)
        finally:
            await reserver.close()

    asyncio.run(scenario())


def test_a_daily_member_budget_resets_at_midnight_in_the_accounts_zone(gateway_db):
    # 23:30 in Berlin on 28 March 2026, half an hour before a 23-hour day.
    with time_machine.travel(utc(2026, 3, 28, 22, 30), tick=False) as clock:
        account_id, budget_id, key_ids = member_with_budget(gateway_db, 10 * ONE_P, "day", "Europe/Berlin")
        assert member(gateway_db, account_id)["resets_at"] == utc(2026, 3, 28, 23)

        async def scenario():
            reserver = Reserver(gateway_db)
            try:
                first = await reserver.reserve_up_to(account_id, 10 * ONE_P, 10 * ONE_P, member_budget_id=budget_id)
                spend(gateway_db, reserver, first, key_ids[0], 10 * ONE_P)
                with pytest.raises(MemberBudgetExceeded):
                    await reserver.reserve_up_to(account_id, ONE_P, ONE_P, member_budget_id=budget_id)
                assert member(gateway_db, account_id)["spent_micro_p"] == 10 * ONE_P
                # 00:05 in Berlin: a new day, a new budget, whichever key spends it.
                clock.move_to(utc(2026, 3, 28, 23, 5))
                assert member(gateway_db, account_id)["spent_micro_p"] == 0
                second = await reserver.reserve_up_to(account_id, 4 * ONE_P, 4 * ONE_P, member_budget_id=budget_id)
                spend(gateway_db, reserver, second, key_ids[1], 4 * ONE_P)
                row = member(gateway_db, account_id)
                assert row["spent_micro_p"] == 4 * ONE_P
                # The next reset is 23 hours later: the clocks go forward that night.
                assert row["resets_at"] == utc(2026, 3, 29, 22)
            finally:
                await reserver.close()

        asyncio.run(scenario())


def test_the_period_resets_once_however_many_writers_race_to_it(gateway_db):
    with time_machine.travel(utc(2026, 4, 30, 23, 50), tick=False) as clock:
        account_id, _, key_ids = member_with_budget(gateway_db, 100 * ONE_P, "month", keys=4)
        gateway_db.transaction_sync(lambda conn: add_budget_spend(conn, {key_ids[0]: [(now(), 60 * ONE_P)]}, now()))
        assert member(gateway_db, account_id)["spent_micro_p"] == 60 * ONE_P
        clock.move_to(utc(2026, 5, 1, 0, 10))

        def charge(i: int) -> None:
            # Each writer finds the old period ended; only the first may zero the spend.
            gateway_db.transaction_sync(
                lambda conn: add_budget_spend(conn, {key_ids[i % 4]: [(now(), ONE_P)]}, now()))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(charge, range(16)))
        row = member(gateway_db, account_id)
        assert (row["spent_micro_p"], row["resets_at"]) == (16 * ONE_P, utc(2026, 6, 1))


def test_a_charge_from_before_the_reset_is_not_counted_in_the_new_period(gateway_db):
    with time_machine.travel(utc(2026, 5, 31, 23, 59), tick=False) as clock:
        account_id, _, key_ids = member_with_budget(gateway_db, 10 * ONE_P, "month")
        started = now()
        clock.move_to(utc(2026, 6, 1, 0, 1))
        charges = {key_ids[0]: [(started, 3 * ONE_P), (now(), ONE_P)], key_ids[1]: [(now(), 2 * ONE_P)]}
        gateway_db.transaction_sync(lambda conn: add_budget_spend(conn, charges, now()))
        row = member(gateway_db, account_id)
        assert (row["spent_micro_p"], row["resets_at"]) == (3 * ONE_P, utc(2026, 7, 1))


def test_keys_of_other_members_and_accounts_do_not_spend_the_budget(gateway_db):
    account_id, _, key_ids = member_with_budget(gateway_db, 10 * ONE_P, "day")
    other_account, _, other_keys = member_with_budget(gateway_db, 10 * ONE_P, "day")

    def work(conn):
        outsider = create_key(conn, account_id, "other member", member_id="8")[1].id
        shared = create_key(conn, account_id, "no member")[1].id
        add_budget_spend(conn, {outsider: [(now(), ONE_P)], shared: [(now(), ONE_P)], other_keys[0]: [(now(), ONE_P)],
                                key_ids[0]: [(now(), 2 * ONE_P)]}, now())

    gateway_db.transaction_sync(work)
    assert member(gateway_db, account_id)["spent_micro_p"] == 2 * ONE_P
    assert member(gateway_db, other_account)["spent_micro_p"] == ONE_P
