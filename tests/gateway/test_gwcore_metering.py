"""The batch writer: one transaction per flush, retries without loss or double charge."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import uuid
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.auth import create_key
from gateway.catalog import Model, load_catalog
from gateway.db import accounts, api_keys, dead_letters, ledger_entries, request_log, usage_days, usage_key_days, usage_rollups
from gateway.accounting.leases import InsufficientBalance, Reserver
from gateway.accounting.ledger import create_account, get_account, ledger_sum, post_entry
from gateway.accounting.metering import (
    MAX_COST_MICRO_P, MAX_TOKENS, BatchWriter, RequestRecord, bucket_start, normalise,
)
from gateway.accounting.pricing import TokenUsage, cost_micro_p, price_tier, saved_micro_p
from gateway.accounting.writer_process import WriterProcess
from gateway.accounting.requestlog import CSV_COLUMNS, RequestFilter, csv_rows, query_requests, request_csv_values, request_dict
from fixtures.gateway import SHIPPED_PROVIDERS


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


@pytest.fixture(params=["thread", "process"])
def committer(request, gateway_db):
    """How the writer commits: on a database thread of this process, or in a writer process."""
    if request.param == "thread":
        yield None
        return
    process = WriterProcess(gateway_db.url)
    process.start()
    yield process.commit
    process.close()


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
    assert cost_micro_p(model, TokenUsage(input_tokens=1_000_000)) == 280_000_000  # 280 P per 1M tokens
    assert cost_micro_p(model, TokenUsage(input_tokens=3, output_tokens=7)) == 3 * 280 + 7 * 420
    unpriced = Model("x", "p", "u", "chat", "International Models", None, None, 8192, 128000)
    try:
        cost_micro_p(unpriced, TokenUsage(input_tokens=1, output_tokens=1))
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


def test_a_backlog_goes_in_bounded_transactions_and_a_failed_one_keeps_those_before_it(gateway_db):
    account_id, key_id = setup_account(gateway_db, 1_000_000)

    class SecondFails(FlakyDatabase):
        def transaction_sync(self, fn, *args):
            self.fail_before_commit = 1 if self.attempts == 1 else 0
            return super().transaction_sync(fn, *args)

    flaky = SecondFails(gateway_db)

    async def main():
        writer = BatchWriter(flaky, None, flush_interval=3600, transaction_limit=3)
        for _ in range(7):
            writer.settle(record(account_id, key_id, 1_000), None)
        assert await writer.flush() is False
        # The first three committed; the failed three and the one never tried wait together.
        assert counts(gateway_db, account_id) == (3, 3, 997_000)
        assert writer.queue_depth == 4
        assert await writer.flush() is True
        assert writer.queue_depth == 0

    asyncio.run(main())
    assert flaky.attempts == 4  # 3 | 3 (failed) || 3 | 1
    assert counts(gateway_db, account_id) == (7, 7, 993_000)


def test_flushes_of_every_size_reuse_a_few_statements(gateway_db):
    """Each length of an IN list is a statement of its own in the driver's cache (128 per
    connection): flushes of 1 to 40 accounts run each IN query in at most four lengths."""
    customers = [setup_account(gateway_db, 1_000_000) for _ in range(40)]
    lengths: dict[str, set[int]] = {}

    in_list = r" IN \(((?:[^()]|%\(\w+\)s)*)\)"  # PostgreSQL's placeholders are %(name)s

    def seen(conn, cursor, statement, parameters, context, executemany):
        for values in re.findall(in_list, statement):
            template = re.sub(in_list, " IN (…)", statement)
            lengths.setdefault(template, set()).add(values.count(",") + 1)

    async def main():
        writer = BatchWriter(gateway_db, None, flush_interval=3600)
        for size in range(1, 41):
            for account_id, key_id in customers[:size]:
                writer.settle(record(account_id, key_id, 1_000), None)
            assert await writer.flush() is True

    sa.event.listen(gateway_db.engine, "before_cursor_execute", seen)
    try:
        asyncio.run(main())
    finally:
        sa.event.remove(gateway_db.engine, "before_cursor_execute", seen)
    assert len(lengths) >= 3  # the logged ids, the accounts' zones and thresholds, the keys' budgets
    assert {template: sorted(found) for template, found in lengths.items() if len(found) > 4} == {}
    assert counts(gateway_db, customers[0][0]) == (40, 40, 960_000)


def test_new_requests_wait_while_the_backlog_is_over_its_bound(gateway_db):
    account_id, key_id = setup_account(gateway_db, 1_000_000)

    async def main():
        writer = BatchWriter(gateway_db, None, flush_interval=3600, backlog_limit=3)
        for _ in range(2):
            writer.settle(record(account_id, key_id, 1_000), None)
        assert await writer.room(0) is True
        writer.settle(record(account_id, key_id, 1_000), None)
        assert await writer.room(0.05) is False
        waiting = asyncio.create_task(writer.room(10))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert await writer.flush() is True
        assert await asyncio.wait_for(waiting, 1) is True
        assert await writer.room(0) is True

    asyncio.run(main())
    assert counts(gateway_db, account_id) == (3, 3, 997_000)


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


def test_close_flushes_everything_queued(gateway_db, committer):
    account_id, key_id = setup_account(gateway_db, 1_000_000)

    async def main():
        # A flush interval far longer than the test: only the shutdown flush can write.
        writer = BatchWriter(gateway_db, None, flush_interval=3600, commit=committer)
        await writer.start()
        for _ in range(25):
            writer.settle(record(account_id, key_id, 1_000), None)
        await asyncio.sleep(0.05)
        assert counts(gateway_db, account_id)[0] == 0
        await writer.close()

    asyncio.run(main())
    assert counts(gateway_db, account_id) == (25, 25, 1_000_000 - 25_000)


def test_failed_request_is_logged_without_ledger_entry_and_frees_its_reservation(gateway_db, committer):
    account_id, key_id = setup_account(gateway_db, 100_000)

    async def main():
        reserver = Reserver(gateway_db)
        writer = BatchWriter(gateway_db, reserver, commit=committer)
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


def test_what_a_request_did_not_spend_is_free_before_its_commit(gateway_db, committer):
    """An agent's next turn follows the last answer within milliseconds, before any flush."""
    account_id, key_id = setup_account(gateway_db, 100_000)

    async def main():
        reserver = Reserver(gateway_db)
        writer = BatchWriter(gateway_db, reserver, flush_interval=3600, commit=committer)
        first = await reserver.reserve(account_id, 100_000)  # a worst case as large as the balance
        writer.settle(record(account_id, key_id, 10_000), first)
        second = await reserver.reserve(account_id, 90_000)
        writer.settle(record(account_id, key_id, 20_000), second)
        assert await writer.flush() is True
        assert first.done and second.done
        rest = await reserver.reserve(account_id, 70_000)
        with pytest.raises(InsufficientBalance):
            await reserver.reserve(account_id, 1)
        reserver.release(rest)
        await reserver.close()

    asyncio.run(main())
    assert counts(gateway_db, account_id) == (2, 2, 70_000)
    leased = gateway_db.read_sync(lambda conn: conn.execute(
        sa.select(accounts.c.leased_micro_p).where(accounts.c.id == account_id)).scalar_one())
    assert leased == 0


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


# --- poison records: nothing a record holds may stop the writer ---------------------------

NASTY_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["x\u0000y", "\u0000", "\ud800", "tail \udfff", "\x1b[31mred", "a\r\nb", "é" * 500,
                     "m" * 1_000_000, "\u0000" * 1_000_000, ""]),
)
NASTY_INT = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 10**17, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**40]),
)
NASTY_STATUS = st.one_of(NASTY_INT, st.sampled_from([200, 404, 502, 99, 600]))


@st.composite
def nasty_records(draw, account_id: str, key_id: str) -> RequestRecord:
    """A record with hostile values in any field; the account is the real one."""
    return RequestRecord(
        # Unique before any cut: 32 hex characters, then whatever else.
        request_id=uuid.uuid4().hex + draw(NASTY_TEXT),
        account_id=account_id,
        key_id=draw(st.sampled_from([key_id, "", None])) if draw(st.booleans()) else draw(NASTY_TEXT),
        model=draw(NASTY_TEXT), provider=draw(NASTY_TEXT), endpoint=draw(NASTY_TEXT),
        stream=draw(st.booleans()),
        input_tokens=draw(NASTY_INT), output_tokens=draw(NASTY_INT), cost_micro_p=draw(NASTY_INT),
        latency_ms=draw(NASTY_INT), ttft_ms=draw(st.one_of(st.none(), NASTY_INT)), status=draw(NASTY_STATUS),
        error_class=draw(st.one_of(st.none(), NASTY_TEXT)), estimated=draw(st.booleans()),
        created_at=datetime.now(timezone.utc),
        cache_read_tokens=draw(NASTY_INT), cache_write_tokens=draw(NASTY_INT), cache_write_1h_tokens=draw(NASTY_INT),
        reasoning_tokens=draw(NASTY_INT), price_tier=draw(st.one_of(st.none(), NASTY_INT)),
        saved_micro_p=draw(NASTY_INT),
    )


def logged(db, account_id: str) -> dict[str, tuple]:
    """request id → (model, status, cost, usage entries for it) of every logged row of the account."""
    def work(conn):
        rows = conn.execute(sa.select(request_log).where(request_log.c.account_id == account_id)).all()
        usage = conn.execute(
            sa.select(ledger_entries.c.request_id, sa.func.count(), sa.func.sum(ledger_entries.c.amount_micro_p))
            .where(ledger_entries.c.account_id == account_id, ledger_entries.c.kind == "usage")
            .group_by(ledger_entries.c.request_id)
        ).all()
        charged = {r[0]: (r[1], -r[2]) for r in usage}
        return {r.request_id: (r.model, r.status, r.cost_micro_p, charged.get(r.request_id)) for r in rows}

    return db.read_sync(work)


@settings(max_examples=25, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(data=st.data())
def test_hostile_records_never_stop_billing_for_anyone(gateway_db, data):
    account_id, key_id = setup_account(gateway_db, 10**17)
    victim_id, victim_key = setup_account(gateway_db, 1_000_000)
    hostile = data.draw(st.lists(nasty_records(account_id, key_id), min_size=1, max_size=6))
    good = [record(victim_id, victim_key, 1_000 * (n + 1)) for n in range(3)]

    async def main():
        writer = BatchWriter(gateway_db, None, flush_interval=3600)
        for n, item in enumerate(hostile):
            writer.settle(item, None)
            if n < len(good):
                writer.settle(good[n], None)
        for item in good[len(hostile):]:
            writer.settle(item, None)
        assert await writer.flush() is True
        return writer.queue_depth

    assert asyncio.run(main()) == 0
    # Everyone else's calls: logged and charged exactly once.
    victim = logged(gateway_db, victim_id)
    assert {r.request_id for r in good} == set(victim)
    assert all(charge == (1, cost) for _, _, cost, charge in victim.values())
    assert counts(gateway_db, victim_id) == (3, 3, 1_000_000 - 6_000)
    # The hostile calls themselves: logged once, made safe, charged exactly what was logged.
    rows = logged(gateway_db, account_id)
    assert len(rows) == len(hostile)
    for model, status, cost, charge in rows.values():
        assert "\x00" not in model and len(model) <= 100
        assert 100 <= status <= 599 and cost >= 0
        assert charge == ((1, cost) if cost else None)
    charged = sum(cost for _, _, cost, _ in rows.values())
    assert gateway_db.read_sync(ledger_sum, account_id) == 10**17 - charged == counts(gateway_db, account_id)[2]


def test_normalise_bounds_every_field():
    raw = RequestRecord(
        request_id="r" * 100, account_id="a\u0000" * 30, key_id="\ud800", model="x\u0000y", provider="p\x07",
        endpoint="/v1/\udfff", stream=1, input_tokens=10**17, output_tokens=-5, cost_micro_p=10**40,
        latency_ms=2**40, ttft_ms=-(2**70), status=1000, error_class="e" * 10_000, estimated=None,
        created_at=datetime(2026, 1, 1),  # naive: replaced by now
        cache_read_tokens=-1, cache_write_tokens=10**30, cache_write_1h_tokens="many", reasoning_tokens=2.9,
        price_tier=-(10**20), saved_micro_p=-(10**40),
    )
    safe = normalise(raw)
    assert (safe.cache_read_tokens, safe.cache_write_tokens, safe.cache_write_1h_tokens) == (0, MAX_TOKENS, 0)
    assert (safe.reasoning_tokens, safe.price_tier, safe.saved_micro_p) == (2, 0, -MAX_COST_MICRO_P)
    assert normalise(RequestRecord(**{**raw.__dict__, "saved_micro_p": 10**40})).saved_micro_p == MAX_COST_MICRO_P
    assert normalise(RequestRecord(**{**raw.__dict__, "price_tier": None})).price_tier is None
    assert safe.model == "x\ufffdy" and safe.provider == "p\ufffd" and safe.key_id == "\ufffd"
    assert len(safe.request_id) == 64 and len(safe.account_id) == 36 and "\x00" not in safe.account_id
    assert safe.endpoint == "/v1/\ufffd" and len(safe.error_class) == 100
    assert (safe.input_tokens, safe.output_tokens, safe.cost_micro_p) == (MAX_TOKENS, 0, MAX_COST_MICRO_P)
    assert (safe.latency_ms, safe.ttft_ms, safe.status) == (2**31 - 1, 0, 599)
    assert safe.stream is True and safe.estimated is False and safe.created_at.tzinfo is not None
    for text in (safe.request_id, safe.account_id, safe.model, safe.endpoint, safe.error_class):
        text.encode("utf-8")  # storable: no lone surrogate left


def test_a_row_the_database_refuses_is_dead_lettered_and_the_rest_commit(gateway_db, committer):
    """Past the normaliser (a record queued as is), the writer still finds the bad rows by bisection."""
    account_id, key_id = setup_account(gateway_db, 1_000_000)
    ghost = str(uuid.uuid4())  # no such account: a foreign key refuses it
    poison = record(account_id, key_id, 1_000)
    poison.model = "bad \ud800 \u0000"
    poison.cost_micro_p = 2**70

    async def main():
        reserver = Reserver(gateway_db)
        writer = BatchWriter(gateway_db, reserver, commit=committer)
        held = await reserver.reserve(account_id, 50_000)
        lost = await reserver.reserve(account_id, 50_000)
        for n in range(7):
            writer.settle(record(account_id, key_id, 1_000), None)
            if n == 3:
                writer._queue.append((poison, held))
        writer.settle(record(ghost, "", 1_000), lost)
        assert await writer.flush() is True
        assert writer.queue_depth == 0 and writer.failed_flushes == 0
        # Both reservations are back in the lease: the whole balance can be reserved.
        assert held.done and lost.done
        whole = await reserver.reserve(account_id, 1_000_000 - 7_000)
        reserver.release(whole)
        await reserver.close()
        return writer.dead_lettered

    assert asyncio.run(main()) == 2
    assert counts(gateway_db, account_id) == (7, 7, 1_000_000 - 7_000)
    letters = gateway_db.read_sync(lambda conn: conn.execute(
        sa.select(dead_letters).where(dead_letters.c.request_id.in_([poison.request_id]) | (dead_letters.c.account_id == ghost))
    ).all())
    assert {row.account_id for row in letters} == {account_id, ghost}
    kept = next(row for row in letters if row.account_id == account_id)
    assert json.loads(kept.record)["request_id"] == poison.request_id
    assert "\x00" not in kept.record and kept.error_class and kept.message


class FailingDatabase(FlakyDatabase):
    """Every transaction fails as a lost connection would, until ``healthy`` is set."""

    healthy = False

    def transaction_sync(self, fn, *args):
        if not self.healthy:
            self.attempts += 1
            raise sa.exc.OperationalError("BEGIN", {}, Exception("connection refused"))
        return super().transaction_sync(fn, *args)

    async def read(self, fn, *args):
        return await self.db.read(fn, *args)


def test_health_is_degraded_while_flushes_keep_failing(gateway_db):
    from aiohttp.test_utils import TestClient, TestServer

    from gateway.api.internal import create_internal_app
    from gateway.appkeys import ENGINE, SETTINGS, WRITER
    from gateway.config import Settings

    account_id, key_id = setup_account(gateway_db, 1_000_000)
    token = "t" * 32
    failing = FailingDatabase(gateway_db)

    async def main():
        writer = BatchWriter(failing, None, flush_interval=3600)
        app = create_internal_app()
        app[SETTINGS] = Settings(internal_api_token=token, flush_alert_seconds=0.2)
        app[ENGINE] = failing
        app[WRITER] = writer
        async with TestClient(TestServer(app)) as client:
            async def health():
                answer = await client.get("/health", headers={"Authorization": f"Bearer {token}"})
                return answer.status, await answer.json()

            writer.settle(record(account_id, key_id, 1_000), None)
            status, body = await health()
            assert status == 200 and body["status"] == "ok" and body["queue_depth"] == 1
            assert body["failed_flushes"] == 0 and isinstance(body["dead_letters"], int)
            assert await writer.flush() is False
            assert await writer.flush() is False
            await asyncio.sleep(0.3)
            status, body = await health()
            assert (status, body["status"], body["database"]) == (503, "degraded", "ok")
            assert body["failed_flushes"] == 2 and body["queue_depth"] == 1
            failing.healthy = True
            assert await writer.flush() is True
            status, body = await health()
            assert (status, body["status"], body["failed_flushes"], body["queue_depth"]) == (200, "ok", 0, 0)

    asyncio.run(main())
    assert counts(gateway_db, account_id) == (1, 1, 999_000)


def test_cached_parts_reach_the_log_the_sums_and_the_csv(gateway_db):
    """A cached Claude turn (input 100, cache read 10,000, 5-min write 2,000, 1-h write 500) and a plain one."""
    account_id, key_id = setup_account(gateway_db, 10**12)
    when = datetime(2026, 11, 20, 10, 7, 30, tzinfo=timezone.utc)
    sonnet = load_catalog(SHIPPED_PROVIDERS).models["claude-sonnet-4.5"]
    cached = TokenUsage(input_tokens=100, cache_read_tokens=10_000, cache_write_tokens=2_000,
                        cache_write_1h_tokens=500, output_tokens=300, reasoning_tokens=120)
    turn = record(account_id, key_id, cost_micro_p(sonnet, cached), when)
    turn.input_tokens, turn.output_tokens = cached.prompt_tokens, cached.output_tokens
    turn.cache_read_tokens, turn.cache_write_tokens, turn.cache_write_1h_tokens = 10_000, 2_000, 500
    turn.reasoning_tokens, turn.price_tier = 120, price_tier(sonnet, cached.prompt_tokens)
    turn.saved_micro_p = saved_micro_p(sonnet, cached)
    plain = record(account_id, key_id, 1_000, when)

    async def main():
        writer = BatchWriter(gateway_db, None)
        writer.settle(turn, None)
        writer.settle(plain, None)
        await writer.flush()

    asyncio.run(main())

    def read(conn):
        log = conn.execute(sa.select(request_log).where(request_log.c.request_id == turn.request_id)).one()
        rows = query_requests(conn, RequestFilter(account_id=account_id), 10, None)
        sums = [conn.execute(sa.select(table).where(table.c.account_id == account_id)).one()
                for table in (usage_rollups, usage_days, usage_key_days)]
        return log, rows, sums

    log, rows, sums = gateway_db.read_sync(read)
    # 100 × 3000 + 10,000 × 300 + 2,000 × 3750 + 500 × 6000 + 300 × 15000
    assert log.cost_micro_p == 18_300_000
    assert (log.input_tokens, log.cache_read_tokens, log.cache_write_tokens, log.cache_write_1h_tokens) == (12_600, 10_000, 2_000, 500)
    assert (log.output_tokens, log.reasoning_tokens, log.price_tier) == (300, 120, None)
    assert log.saved_micro_p == 10_000 * 2700 - 2_000 * 750 - 500 * 3000
    for row in sums:
        assert (row.requests, row.input_tokens, row.cache_read_tokens, row.cache_write_tokens) == (2, 12_700, 10_000, 2_500)
        assert (row.reasoning_tokens, row.saved_micro_p, row.cost_micro_p) == (120, 24_000_000, 18_301_000)
    by_id = {row.request_id: row for row in rows}
    shown = request_dict(by_id[turn.request_id])
    assert {k: shown[k] for k in ("cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
                                  "reasoning_tokens", "price_tier")} == {
        "cache_read_tokens": 10_000, "cache_write_tokens": 2_000, "cache_write_1h_tokens": 500,
        "reasoning_tokens": 120, "price_tier": None}
    header, cached_line, plain_line = (next(csv.reader([line])) for line in csv_rows(
        [CSV_COLUMNS, request_csv_values(by_id[turn.request_id]), request_csv_values(by_id[plain.request_id])]
    ).splitlines())
    assert header[-5:] == ["cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens", "price_tier"]
    assert header[:3] == ["created_at", "request_id", "key_name"]  # the older columns keep their places
    assert cached_line[-5:] == ["10000", "2000", "500", "120", ""]
    assert plain_line[-5:] == ["0", "0", "0", "0", ""]


def test_a_long_context_turn_logs_its_tier(gateway_db):
    account_id, key_id = setup_account(gateway_db, 10**12)
    sonnet = load_catalog(SHIPPED_PROVIDERS).models["claude-sonnet-4.5"]
    usage = TokenUsage(input_tokens=1_000, cache_read_tokens=250_000, output_tokens=10)
    turn = record(account_id, key_id, cost_micro_p(sonnet, usage))
    turn.input_tokens, turn.cache_read_tokens = usage.prompt_tokens, 250_000
    turn.price_tier = price_tier(sonnet, usage.prompt_tokens)

    async def main():
        writer = BatchWriter(gateway_db, None)
        writer.settle(turn, None)
        await writer.flush()

    asyncio.run(main())
    row = gateway_db.read_sync(lambda conn: query_requests(conn, RequestFilter(account_id=account_id), 1, None))[0]
    assert request_dict(row)["price_tier"] == 200_000
    assert request_csv_values(row)[-1] == 200_000
    assert row.cost_micro_p == 1_000 * 6000 + 250_000 * 600 + 10 * 22500
