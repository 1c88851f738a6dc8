"""Claude Code (npm, run with ``claude -p``) through the gateway, on every priced chat model.

The fake model behind the gateway asks for a shell command whose output only a real run
can produce; the answer Claude Code prints must quote it, and the account must be charged
exactly the price of the usage the fake reported, request by request.
"""

from __future__ import annotations

import pytest
from agent_runs import ONE_P, chat_models, expected_cost, new_customer, nonce_prompt, priced_charges, run_claude

# portal/billing/models.py: a cent buys 10 P.
FIFTY_CENTS = 50 * 10 * ONE_P


@pytest.mark.parametrize("model_id", chat_models())
def test_claude_code_answers_and_runs_a_tool_on_each_priced_model(model_id, claude_cli, agent_upstream,
                                                                  agent_gateway, agent_catalog, tmp_path):
    model = agent_catalog.resolve(model_id)
    if not model.priced:
        pytest.skip(f"{model_id} has no price in the catalogue, so the gateway refuses it by design")
    customer = new_customer(agent_gateway)
    start = customer.balance()
    prompt, tool_output = nonce_prompt()

    run = run_claude(claude_cli, agent_upstream, agent_gateway.url, customer.key, model_id, prompt, tmp_path)

    assert run.returncode == 0, run.describe()
    assert tool_output in run.stdout, run.describe()
    finals = [s for s in run.seen if s.action == "final"]
    assert any(s.tool_output == tool_output for s in finals), f"the model never saw the tool's output\n{run.describe()}"
    assert any(s.action == "tool_call" for s in run.seen), run.describe()
    answered = [s for s in run.seen if s.action != "count"]
    log = customer.log(len(run.seen))
    charged = priced_charges(log)
    one = expected_cost(agent_catalog, model_id)
    assert [row["model"] for row in charged] == [model_id] * len(answered), log
    assert [row["cost_micro_p"] for row in charged] == [one] * len(answered), log
    assert customer.balance() == start - one * len(answered)


def test_a_fifty_cent_account_runs_a_claude_code_turn_on_sonnet_and_never_goes_below_zero(
        claude_cli, agent_upstream, agent_gateway, agent_catalog, tmp_path):
    # $0.50 is 500 P. Claude Code asks max_tokens 32000 of claude-sonnet-4.5, whose worst case
    # (32000 x 15,000 micro-P, plus the prompt) is about as much as the whole balance.
    customer = new_customer(agent_gateway, balance_micro_p=FIFTY_CENTS)
    prompt, tool_output = nonce_prompt()

    run = run_claude(claude_cli, agent_upstream, agent_gateway.url, customer.key, "claude-sonnet-4.5", prompt, tmp_path)

    assert run.returncode == 0, run.describe()
    assert tool_output in run.stdout, run.describe()
    asked = [s for s in run.seen if s.action != "count"]
    assert asked, run.describe()
    # Served, with the output bound lowered to what the balance covers instead of refused.
    assert all(1024 <= s.body["max_tokens"] < 32000 for s in asked), [s.body["max_tokens"] for s in asked]
    # Anthropic refuses a thinking budget that is not below max_tokens; it was lowered with it.
    budgets = [(s.body["thinking"].get("budget_tokens"), s.body["max_tokens"]) for s in asked if "thinking" in s.body]
    assert all(budget is None or budget < bound for budget, bound in budgets), budgets
    charged = priced_charges(customer.log(len(run.seen)))
    cost = sum(row["cost_micro_p"] for row in charged)
    assert cost == expected_cost(agent_catalog, "claude-sonnet-4.5") * len(asked)
    assert 0 < cost < 20 * ONE_P
    assert customer.balance() == FIFTY_CENTS - cost >= 0
