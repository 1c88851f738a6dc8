"""The Codex CLI (npm, run with ``codex exec``) through the gateway's Responses API.

Each run uses the ``config.toml`` the Quick Start gives customers. Codex speaks only
``POST /v1/responses``: passed through for gpt-5.2 (OpenAI's provider speaks it),
translated to chat completions for deepseek-v3.2 and to Messages for claude-sonnet-4.5.
The fake model asks for a shell command whose output only a real run
can produce; Codex's answer must quote it, and the charge must be exactly the price of
the usage the fake reported.
"""

from __future__ import annotations

import pytest
from agent_runs import assert_charged_exactly, new_customer, nonce_prompt, run_codex

# Which wire the fake model must have been reached on for each model.
CODEX_MODELS = {
    "gpt-5.2": "/openai/responses",
    "deepseek-v3.2": "/deepseek/chat/completions",
    "claude-sonnet-4.5": "/anthropic/v1/messages",
}


@pytest.mark.parametrize("model_id", list(CODEX_MODELS))
def test_codex_answers_and_runs_a_tool(model_id, codex_cli, agent_upstream, agent_gateway, agent_catalog, tmp_path):
    customer = new_customer(agent_gateway)
    start = customer.balance()
    prompt, tool_output = nonce_prompt()

    run = run_codex(codex_cli, agent_upstream, agent_gateway.url, customer.key, model_id, prompt, tmp_path)

    assert run.returncode == 0, run.describe()
    assert tool_output in run.stdout, run.describe()
    assert {s.path for s in run.seen} == {CODEX_MODELS[model_id]}, run.describe()
    assert any(s.action == "tool_call" for s in run.seen), run.describe()
    assert any(s.action == "final" and s.tool_output == tool_output for s in run.seen), \
        f"the model never saw the tool's output\n{run.describe()}"
    assert {row["model"] for row in customer.log(len(run.seen))} == {model_id}
    assert_charged_exactly(customer, agent_catalog, run, start)
