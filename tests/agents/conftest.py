"""Fixtures for the real agent CLIs: the scripted fake model, a gateway pointed at it, the CLIs.

The CLIs come from npm (``tests/package.json``, installed by ``npm ci --prefix tests``);
without them these tests skip, except in CI, where they fail.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from agent_runs import Cli, installed_cli
from agent_upstream import AgentUpstream

from fixtures.gateway import start_gateway
from fixtures.upstream import UNCONFIGURED_KEY_ENV, UPSTREAM_KEYS, write_providers_file
from gateway.catalog import Catalog, load_catalog


@pytest.fixture(scope="session")
def claude_cli() -> Cli:
    """Claude Code from tests/node_modules."""
    return installed_cli("claude")


@pytest.fixture(scope="session")
def codex_cli() -> Cli:
    """The Codex CLI from tests/node_modules."""
    return installed_cli("codex")


@pytest.fixture(scope="session")
def agent_upstream():
    """The scripted fake model, serving every provider of the catalogue."""
    server = AgentUpstream()
    server.start()
    yield server
    server.stop()


def agent_providers_file(path: Path, base_url: str) -> Path:
    """The shipped catalogue pointed at the agent fake, OpenAI marked as speaking the Responses API."""
    write_providers_file(path, base_url)
    if "responses" not in tomllib.loads(path.read_text())["providers"]["openai"]:
        path.write_text(path.read_text().replace("[providers.openai]\n", "[providers.openai]\nresponses = true\n", 1))
    return path


@pytest.fixture(scope="session")
def agent_catalog(agent_gateway) -> Catalog:
    """The catalogue the agents' gateway serves."""
    return load_catalog(Path(agent_gateway.env["PROVIDERS_FILE"]))


@pytest.fixture(scope="session")
def agent_gateway(agent_upstream, gateway_database_url, tmp_path_factory):
    """A gateway process whose every provider (MiniMax too) is the agent fake; shared by every model's run."""
    providers = agent_providers_file(tmp_path_factory.mktemp("agent-providers") / "providers.toml", agent_upstream.url)
    handle = start_gateway({
        "PROVIDERS_FILE": str(providers), **UPSTREAM_KEYS, UNCONFIGURED_KEY_ENV: "sk-minimax-test-5d6e7f8a9b0c",
        "GATEWAY_DATABASE_URL": gateway_database_url,
        "GATEWAY_FLUSH_INTERVAL": "0.05",
        "SAMALINK_INSTANCE_DIR": str(tmp_path_factory.mktemp("agent-gateway")),
    })
    yield handle
    handle.stop()

