"""The scripted fake model reads what the real CLIs sent (the recorded bodies) as intended.

Runs without the CLIs: if a future client names its shell tool differently or carries
tool results in a new shape, this shows it before the slower CLI runs do.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from agent_upstream import NO_OUTPUT_ANSWER, decide

FIXTURES = Path(__file__).resolve().parents[1] / "gateway" / "fixtures"
RECORDED = sorted(FIXTURES.glob("*/recorded_*.json"))
# The recordings' prompt asked for the check of samalink-nonce-ab12cd.
TOOL_OUTPUT = "samalink-tool-ab12cd"
SHELL_TOOL = {"claude_code": "Bash", "codex": "exec_command"}


def test_there_are_recordings_of_both_clients():
    assert {path.parent.name for path in RECORDED} == set(SHELL_TOOL)


@pytest.mark.parametrize("path", [p for p in RECORDED if p.stem.endswith("_first")], ids=lambda p: p.name)
def test_a_first_request_is_answered_with_a_call_of_the_clients_shell_tool(path):
    body = orjson.loads(path.read_bytes())["body"]
    turn = decide(body, orjson.dumps(body))
    assert turn.action == "tool_call"
    assert turn.tool["name"] == SHELL_TOOL[path.parent.name]
    assert TOOL_OUTPUT not in turn.command  # only running it can produce the output


@pytest.mark.parametrize("path", [p for p in RECORDED if p.stem.endswith("_tool_turn")], ids=lambda p: p.name)
def test_a_tool_turn_is_answered_with_the_tool_output_it_carries(path):
    body = orjson.loads(path.read_bytes())["body"]
    turn = decide(body, orjson.dumps(body))
    assert (turn.action, turn.tool_output) == ("final", TOOL_OUTPUT)
    assert TOOL_OUTPUT in turn.text


def test_a_tool_result_without_the_output_is_not_taken_for_it():
    body = {"messages": [{"role": "user", "content": "samalink-nonce-ab12cd"},
                         {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "denied"}]}],
            "tools": [{"name": "Bash", "input_schema": {"properties": {"command": {"type": "string"}}}}]}
    turn = decide(body, orjson.dumps(body))
    assert (turn.action, turn.text) == ("final", NO_OUTPUT_ANSWER)
