"""The Quick Start's coding-agent set-ups: Claude Code and the Codex CLI with the customer's Base URL."""

from __future__ import annotations

import html
import re
import shlex
import tomllib

from portal.docs.agent_setups import agent_setups_for


def code_blocks(body: str) -> dict[str, str]:
    """The page's code blocks by id, as a visitor copies them."""
    return {match[0]: html.unescape(match[1])
            for match in re.findall(r'<code id="([^"]+)" class="lang-[^"]*">(.*?)</code>', body, re.S)}


def exports(script: str) -> dict[str, str]:
    """The variables a shell snippet exports, as the shell would set them."""
    found = {}
    for line in script.splitlines():
        if line.startswith("export "):
            name, _, value = shlex.split(line[len("export "):], comments=True)[0].partition("=")
            found[name] = value
    return found


def test_quickstart_shows_claude_code_with_the_base_url_and_models(logged_in_client, gateway):
    key = gateway.create_key(logged_in_client.user.account_id, name="agents")
    page = logged_in_client.get("/quickstart")
    assert page.status_code == 200
    blocks = code_blocks(page.get_data(as_text=True))

    claude = exports(blocks["agents-code-claude-code"])
    # Claude Code appends /v1/messages itself, so its Base URL is the gateway's without /v1.
    assert claude == {"ANTHROPIC_BASE_URL": gateway.url, "ANTHROPIC_AUTH_TOKEN": f"{key['prefix']}...",
                      "ANTHROPIC_MODEL": "claude-sonnet-4.5", "ANTHROPIC_SMALL_FAST_MODEL": "claude-haiku-4.5",
                      "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4.5"}
    assert "claude --model claude-sonnet-4.5" in blocks["agents-code-claude-code"]
    assert key["key"] not in page.get_data(as_text=True)


def test_quickstart_shows_a_codex_config_that_parses_and_names_the_responses_api(logged_in_client, gateway):
    key = gateway.create_key(logged_in_client.user.account_id, name="codex")
    blocks = code_blocks(logged_in_client.get("/quickstart").get_data(as_text=True))

    config = tomllib.loads(blocks["agents-code-codex-config"])
    provider = config["model_providers"][config["model_provider"]]
    assert config["model"] == "gpt-5.2"
    assert provider["base_url"] == f"{gateway.url}/v1"
    assert provider["wire_api"] == "responses"
    run = exports(blocks["agents-code-codex-run"])
    assert run == {provider["env_key"]: f"{key['prefix']}..."}
    assert "codex --model deepseek-v3.2" in blocks["agents-code-codex-run"]


def test_agent_setups_name_only_models_the_catalogue_has():
    setups = {s.id: s.code for s in agent_setups_for("https://gw.example/v1", "sama_...", ["qwen-3.5-plus"],
                                                     "qwen-3.5-plus")}
    assert exports(setups["claude-code"])["ANTHROPIC_MODEL"] == "qwen-3.5-plus"
    assert exports(setups["claude-code"])["ANTHROPIC_SMALL_FAST_MODEL"] == "qwen-3.5-plus"
    assert exports(setups["claude-code"])["ANTHROPIC_BASE_URL"] == "https://gw.example"
    assert tomllib.loads(setups["codex-config"])["model"] == "qwen-3.5-plus"


def test_api_docs_show_the_same_agent_set_ups_to_visitors(client, gateway):
    page = client.get("/docs")
    assert page.status_code == 200
    blocks = code_blocks(page.get_data(as_text=True))
    assert exports(blocks["agents-code-claude-code"])["ANTHROPIC_AUTH_TOKEN"] == "sama_..."
    assert tomllib.loads(blocks["agents-code-codex-config"])["model_providers"]["samalink"]["base_url"] == \
        f"{gateway.url}/v1"
