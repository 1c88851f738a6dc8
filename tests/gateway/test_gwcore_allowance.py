"""The allowance rule in-process: reservations under two limits, lowered output bounds,
and the checks every upstream usage report passes before it is charged."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from gateway.accounting.leases import BALANCE, KEY_LIMIT, InsufficientBalance, KeyLimitReached, Reserver
from gateway.accounting.ledger import create_account, post_entry
from gateway.accounting.pricing import TokenUsage, affordable_output_tokens, cost_micro_p, worst_case_micro_p
from gateway.auth import create_key
from gateway.catalog import Catalog, Model, Provider
from gateway.proxy.call import MESSAGES, CHAT, plan_request
from gateway.proxy.usage_checks import check_usage

ANTHROPIC = Provider("anthropic", "Anthropic", "https://api.anthropic.test", "ANTHROPIC_API_KEY", "anthropic")
OPENAI = Provider("openai", "OpenAI", "https://api.openai.test/v1", "OPENAI_API_KEY", "openai")
DEEPSEEK = Provider("deepseek", "DeepSeek", "https://api.deepseek.test/v1", "DEEPSEEK_API_KEY", "openai")
SONNET = Model("claude-sonnet-4.5", "anthropic", "claude-sonnet-4-5", "chat", "International Models",
               3000, 15000, 64000, 200000, long_context_window=1_000_000)
GPT = Model("gpt-5.2", "openai", "gpt-5.2", "chat", "International Models", 1750, 14000, 32768, 400000)
DEEPSEEK_CHAT = Model("deepseek-v3.2", "deepseek", "deepseek-chat", "chat", "Chinese Models", 280, 420, 8192, 128000)
HELLO = [{"role": "user", "content": "hello"}]


def funded_key(db, balance: int, limit: int | None) -> tuple[str, str]:
    def work(conn):
        account, _ = create_account(conn, None, None)
        post_entry(conn, account.id, "credit", balance, f"fund:{account.id}")
        _, key = create_key(conn, account.id, "limited", limit, None)
        return account.id, key.id

    return db.transaction_sync(work)


def test_a_reservation_is_the_smallest_of_balance_and_key_limit(gateway_db):
    async def scenario():
        account_id, key_id = funded_key(gateway_db, balance=1_000_000, limit=300_000)
        reserver = Reserver(gateway_db)
        try:
            first = await reserver.reserve_up_to(account_id, 500_000, 100_000, key_id)
            assert first.amount_micro_p == 300_000
            with pytest.raises(KeyLimitReached):
                await reserver.reserve_up_to(account_id, 500_000, 1, key_id)
            # The balance was not kept for the refused request.
            assert reserver.held(account_id)[1] == 300_000
            assert reserver.held(key_id, KEY_LIMIT)[1] == 300_000
            reserver.release(first)
            assert reserver.held(account_id)[1] == 0
            again = await reserver.reserve_up_to(account_id, 200_000, 200_000, key_id)
            assert again.amount_micro_p == 200_000
            with pytest.raises(InsufficientBalance):
                await reserver.reserve_up_to(account_id, 2_000_000, 1_500_000)
        finally:
            await reserver.close()

    asyncio.run(scenario())


def test_two_processes_share_one_key_limit(gateway_db):
    async def scenario():
        account_id, key_id = funded_key(gateway_db, balance=100_000_000, limit=50_000_000)
        first, second = Reserver(gateway_db), Reserver(gateway_db)
        try:
            outcomes = await asyncio.gather(
                *[(first if i % 2 else second).reserve(account_id, 7_000_000, key_id) for i in range(20)],
                return_exceptions=True,
            )
            held = [o.amount_micro_p for o in outcomes if not isinstance(o, Exception)]
            assert sum(held) <= 50_000_000
            assert len(held) == 7
            assert all(isinstance(o, KeyLimitReached) for o in outcomes if isinstance(o, Exception)), [repr(o) for o in outcomes]
        finally:
            await first.close()
            await second.close()

    asyncio.run(scenario())


def test_a_database_error_after_the_key_limit_was_taken_gives_it_back(gateway_db):
    """The balance's lease cannot be extended once (the database failed): the request fails,
    and the key's limit it had already set aside serves the next request whole."""
    async def scenario():
        account_id, key_id = funded_key(gateway_db, balance=1_000_000, limit=300_000)
        reserver = Reserver(gateway_db)
        extend = reserver._extend_lease
        failures = [OperationalError("UPDATE accounts", {}, Exception("the server closed the connection"))]

        def failing_once(conn, pool, owner_id, need, minimum):
            if pool is BALANCE and failures:
                raise failures.pop()
            return extend(conn, pool, owner_id, need, minimum)

        reserver._extend_lease = failing_once
        try:
            with pytest.raises(OperationalError):
                await reserver.reserve_up_to(account_id, 300_000, 300_000, key_id)
            assert reserver.held(key_id, KEY_LIMIT)[1] == 0
            again = await reserver.reserve_up_to(account_id, 300_000, 300_000, key_id)
            assert again.amount_micro_p == 300_000
        finally:
            await reserver.close()

    asyncio.run(scenario())


def test_the_upstream_is_sent_the_bound_the_reservation_assumed():
    plan = plan_request(CHAT, {"model": "gpt-5.2", "messages": HELLO}, GPT, OPENAI, "secret", None)
    assert plan.body["max_completion_tokens"] == 32768
    plan = plan_request(CHAT, {"model": "deepseek-v3.2", "messages": HELLO, "n": 2}, DEEPSEEK_CHAT, DEEPSEEK, "s", None)
    assert plan.body["max_tokens"] == 8192 and plan.max_output == 2 * 8192
    plan.lower_output_bound(5000)
    assert plan.body["max_tokens"] == 2500 and plan.max_output == 5000
    plan.lower_output_bound(10**9)  # never raised again
    assert plan.body["max_tokens"] == 2500
    plan = plan_request(CHAT, {"model": "deepseek-v3.2", "messages": HELLO, "max_completion_tokens": 300},
                        DEEPSEEK_CHAT, DEEPSEEK, "s", None)
    assert plan.body["max_completion_tokens"] == 300 and "max_tokens" not in plan.body


@pytest.mark.parametrize("bound, thinking", [
    (20_000, {"type": "enabled", "budget_tokens": 16_000}),
    (10_000, {"type": "enabled", "budget_tokens": 9_999}),
    (1_025, {"type": "enabled", "budget_tokens": 1_024}),
    (1_024, None),
])
def test_a_lower_bound_lowers_the_thinking_budget_or_turns_it_off(bound, thinking):
    body = {"model": "claude-sonnet-4.5", "max_tokens": 32_000, "messages": HELLO,
            "thinking": {"type": "enabled", "budget_tokens": 16_000}}
    plan = plan_request(MESSAGES, body, SONNET, ANTHROPIC, "secret", None)
    plan.lower_output_bound(bound)
    assert plan.body["max_tokens"] == bound
    assert plan.body.get("thinking") == thinking
    assert body["thinking"]["budget_tokens"] == 16_000  # the client's body is left alone


def test_the_long_context_beta_opens_the_larger_window():
    body = {"model": "claude-sonnet-4.5", "max_tokens": 100, "messages": HELLO}
    assert plan_request(MESSAGES, body, SONNET, ANTHROPIC, "s", None).context_window == 200_000
    beta = "context-1m-2025-08-07,interleaved-thinking-2025-05-14"
    assert plan_request(MESSAGES, body, SONNET, ANTHROPIC, "s", beta).context_window == 1_000_000


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    input_tokens=st.integers(-(10**18), 10**18),
    output_tokens=st.integers(-(10**18), 10**18),
    bound=st.integers(0, 10**6),
    window=st.integers(1, 2 * 10**6),
    estimate=st.integers(0, 10**6),
)
def test_checked_usage_is_never_negative_nor_beyond_the_request(input_tokens, output_tokens, bound, window, estimate):
    checked = check_usage(TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens), output_bound=bound,
                          context_window=window, estimated_input=estimate)
    assert 0 <= checked.input_tokens <= window
    assert 0 <= checked.output_tokens <= bound
    assert cost_micro_p(GPT, checked.usage) >= 0
    unchanged = (checked.input_tokens, checked.output_tokens) == (input_tokens, output_tokens)
    clamps = {"negative_input", "negative_output", "output_above_bound", "input_above_window"}
    assert unchanged == (not clamps & set(checked.flags))


@settings(max_examples=200, derandomize=True, deadline=None)
@given(input_tokens=st.integers(0, 10**6), amount=st.integers(0, 10**12))
def test_the_affordable_output_fits_the_amount(input_tokens, amount):
    tokens = affordable_output_tokens(GPT, input_tokens, amount)
    if tokens:
        assert worst_case_micro_p(GPT, input_tokens, tokens) <= amount
    assert worst_case_micro_p(GPT, input_tokens, tokens + 1) > amount


def test_catalog_rejects_a_bad_long_context_window():
    from gateway.catalog import parse_catalog
    from gateway.config import ConfigError

    data = {"providers": {"a": {"base_url": "http://x", "api_key_env": "A_KEY", "api": "anthropic"}},
            "models": [{"id": "m", "provider": "a", "upstream": "m", "long_context_window": -5}]}
    with pytest.raises(ConfigError, match="long_context_window"):
        parse_catalog(data)
    data["models"][0]["long_context_window"] = 1_000_000
    assert isinstance(parse_catalog(data), Catalog)
