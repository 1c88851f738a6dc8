"""Claude Code (npm, run with ``claude -p``) through the gateway, on every priced chat model.

Each run uses the environment the Quick Start gives customers. The fake model behind the
gateway asks for a shell command whose output only a real run can produce; the answer
Claude Code prints must quote it, and the account must be charged exactly the price of the
usage the fake reported, request by request.
"""

from __future__ import annotations

import pytest
from agent_runs import ONE_P, assert_charged_exactly, priced_chat_models, new_customer, nonce_prompt, run_claude

from portal.billing.models import MICRO_P_PER_CENT
from portal.docs.agent_setups import claude_code_env

FIFTY_CENTS = 50 * MICRO_P_PER_CENT


@pytest.mark.parametrize("model_id", priced_chat_models())
def test_claude_code_answers_and_runs_a_tool_on_each_priced_model(model_id, claude_cli, agent_upstream,
                                                                  agent_gateway, agent_catalog, tmp_path):
    customer = new_customer(agent_gateway)
    start = customer.balance()
    prompt, tool_output = nonce_prompt()
    # The Quick Start's set-up (a bearer token), with this model in every slot.
    setup = claude_code_env(f"{agent_gateway.url}/v1", customer.key, model_id, model_id)

    run = run_claude(claude_cli, agent_upstream, setup, model_id, prompt, tmp_path)

    assert run.returncode == 0, run.describe()
    assert tool_output in run.stdout, run.describe()
    assert any(s.action == "tool_call" for s in run.seen), run.describe()
    assert any(s.action == "final" and s.tool_output == tool_output for s in run.seen), \
        f"the model never saw the tool's output\n{run.describe()}"
    assert {row["model"] for row in customer.log(len(run.seen))} == {model_id}
    assert_charged_exactly(customer, agent_catalog, run, start)


def test_a_fifty_cent_account_runs_a_claude_code_turn_on_sonnet_and_never_goes_below_zero(
        claude_cli, agent_upstream, agent_gateway, agent_catalog, tmp_path):
    # $0.50 is 500 P. Claude Code asks max_tokens 32000 of claude-sonnet-4.5, whose worst case
    # (32000 x 15,000 micro-P, plus the prompt) is about as much as the whole balance.
    customer = new_customer(agent_gateway, balance_micro_p=FIFTY_CENTS)
    prompt, tool_output = nonce_prompt()
    # The other way to give the key: ANTHROPIC_API_KEY (sent as x-api-key).
    setup = claude_code_env(agent_gateway.url, "unused", "claude-sonnet-4.5", "claude-haiku-4.5")
    del setup["ANTHROPIC_AUTH_TOKEN"]
    setup["ANTHROPIC_API_KEY"] = customer.key

    run = run_claude(claude_cli, agent_upstream, setup, "claude-sonnet-4.5", prompt, tmp_path)

    assert run.returncode == 0, run.describe()
    assert tool_output in run.stdout, run.describe()
    asked = [s for s in run.seen if s.action != "count"]
    assert asked, run.describe()
    # Served, with the output bound lowered to what the balance covers instead of refused.
    assert all(1024 <= s.body["max_tokens"] < 32000 for s in asked), [s.body["max_tokens"] for s in asked]
    # Anthropic refuses a thinking budget that is not below max_tokens; it was lowered with it.
    budgets = [(s.body["thinking"].get("budget_tokens"), s.body["max_tokens"]) for s in asked if "thinking" in s.body]
    assert all(budget is None or budget < bound for budget, bound in budgets), budgets
    cost = assert_charged_exactly(customer, agent_catalog, run, FIFTY_CENTS)
    assert 0 < cost < 20 * ONE_P
    assert customer.balance() == FIFTY_CENTS - cost >= 0
