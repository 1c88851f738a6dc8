"""The key cache: new keys at once, revocation and suspension within 2 s, bounded misses."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import sqlalchemy as sa

from gateway.auth import KeyCache, create_key, generate_key, hash_key, key_prefix, key_suffix, masked_key
from gateway.db import api_keys, utcnow
from gateway.accounting.ledger import create_account, set_account_status


def new_key(db, **kw) -> tuple[str, str, str]:
    def work(conn):
        account, _ = create_account(conn, None, None)
        key, row = create_key(conn, account.id, "cache test", **kw)
        return account.id, row.id, key

    return db.transaction_sync(work)


async def wait_for(predicate, within: float) -> float:
    """Seconds until ``predicate()`` (awaited) is true; fails after ``within``."""
    start = time.monotonic()
    while not await predicate():
        if time.monotonic() - start > within:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def test_key_format_and_display_forms():
    key = generate_key()
    assert key.startswith("sama_") and len(key) == 41
    assert key_prefix(key) == key[:9] and key_suffix(key) == key[-4:]
    assert masked_key(key_prefix(key), key_suffix(key)) == f"{key[:9]}…{key[-4:]}"
    assert hash_key(key) != key and len(hash_key(key)) == 64


def test_key_created_after_start_works_immediately_and_is_stored_hashed(gateway_db):
    async def main():
        cache = KeyCache(gateway_db, refresh_interval=60)  # no poll will help
        await cache.start()
        account_id, key_id, key = new_key(gateway_db)
        info = await cache.lookup(key)
        await cache.close()
        return account_id, key_id, key, info

    account_id, key_id, key, info = asyncio.run(main())
    assert info is not None and info.key_id == key_id and info.account_id == account_id
    assert info.refusal() is None
    stored = gateway_db.read_sync(lambda conn: conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one())
    assert key not in [str(v) for v in stored]
    assert stored.key_hash == hash_key(key)


def test_revocation_reaches_another_process_cache_within_two_seconds(gateway_db):
    account_id, key_id, key = new_key(gateway_db)

    async def main():
        caches = [KeyCache(gateway_db, refresh_interval=0.5) for _ in range(2)]
        for cache in caches:
            await cache.start()
            assert (await cache.lookup(key)).revoked is False
        now = utcnow()
        await gateway_db.transaction(
            lambda conn: conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now, updated_at=now))
        )
        for cache in caches:
            async def revoked(cache=cache):
                info = await cache.lookup(key)
                return info.refusal() == "revoked"

            await wait_for(revoked, within=2.0)
            await cache.close()

    asyncio.run(main())


def test_suspension_and_expiry_are_refused(gateway_db):
    soon = utcnow() + timedelta(minutes=5)
    account_id, key_id, key = new_key(gateway_db, expires_at=soon)

    async def main():
        cache = KeyCache(gateway_db, refresh_interval=0.2)
        await cache.start()
        info = await cache.lookup(key)
        assert info.refusal() is None
        assert info.refusal(soon + timedelta(seconds=1)) == "expired"
        await gateway_db.transaction(set_account_status, account_id, "suspended")

        async def suspended():
            return (await cache.lookup(key)).refusal() == "suspended"

        await wait_for(suspended, within=2.0)
        await cache.close()

    asyncio.run(main())


def test_unknown_keys_reach_the_database_once_and_the_miss_cache_is_bounded(gateway_db):
    async def main():
        cache = KeyCache(gateway_db, refresh_interval=60, negative_ttl=0.3, negative_max=10)
        await cache.start()
        unknown = generate_key()
        answers = await asyncio.gather(*[cache.lookup(unknown) for _ in range(100)])
        assert answers == [None] * 100
        assert cache.db_misses == 1
        for _ in range(20):
            assert await cache.lookup(unknown) is None
        assert cache.db_misses == 1
        # Malformed keys never reach the database.
        for bad in ["", "sama_", "sk-123", "sama_not-a-uuid", "x" * 5000, unknown.upper()]:
            assert await cache.lookup(bad) is None
        assert cache.db_misses == 1
        # After the short negative lifetime the key is looked up again.
        await asyncio.sleep(0.35)
        assert await cache.lookup(unknown) is None
        assert cache.db_misses == 2
        for _ in range(50):
            await cache.lookup(generate_key())
        assert len(cache._negative) <= 10
        await cache.close()

    asyncio.run(main())


def test_spend_limit_is_refused_once_reached(gateway_db):
    account_id, key_id, key = new_key(gateway_db, spend_limit_micro_p=5_000)

    async def main():
        cache = KeyCache(gateway_db, refresh_interval=60)
        await cache.start()
        assert (await cache.lookup(key)).refusal() is None
        cache.note_spent(key_id, 5_000)
        refusal = (await cache.lookup(key)).refusal()
        await cache.close()
        return refusal

    assert asyncio.run(main()) == "spend_limit"


def test_a_poll_that_read_before_a_revocation_cannot_undo_it(gateway_db):
    import threading

    account_id, key_id, key = new_key(gateway_db)

    async def main():
        cache = KeyCache(gateway_db, refresh_interval=60)
        await cache.start()
        assert (await cache.lookup(key)).revoked is False
        read_changes, read_done, release = cache._read_changes, threading.Event(), threading.Event()

        def held_once(since):
            rows = read_changes(since)
            if not read_done.is_set():
                # The poll's read is made; it hands its rows over only after the revocation's refresh.
                read_done.set()
                release.wait(10)
            return rows

        cache._read_changes = held_once
        poll = asyncio.create_task(cache.refresh())
        await asyncio.get_running_loop().run_in_executor(None, read_done.wait, 10)
        now = utcnow()
        await gateway_db.transaction(
            lambda conn: conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now, updated_at=now)))
        await cache.refresh()  # what the internal API does after a change, for this process
        assert (await cache.lookup(key)).refusal() == "revoked"
        release.set()
        await poll
        refusal = (await cache.lookup(key)).refusal()
        await cache.close()
        return refusal

    assert asyncio.run(main()) == "revoked"
