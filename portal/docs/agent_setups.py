"""Copy-paste set-ups for the coding-agent CLIs (Claude Code, Codex CLI) with the customer's Base URL."""

from __future__ import annotations

from .examples import Example, anthropic_base

CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"
CODEX_PACKAGE = "@openai/codex"
# The variable the Codex config reads the key from (the name the other examples use).
CODEX_KEY_ENV = "SAMA_API_KEY"


def claude_code_env(base_url: str, key: str, model: str, small_model: str) -> dict[str, str]:
    """The environment that points Claude Code at the gateway, in the order the Quick Start shows it.

    Claude Code asks for its own model ids unless told otherwise, and sends side requests
    (titles, summaries) to a small model, so both are named.
    """
    return {
        "ANTHROPIC_BASE_URL": anthropic_base(base_url),
        "ANTHROPIC_AUTH_TOKEN": key,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": small_model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": small_model,
    }


def claude_code_setup(base_url: str, key: str, model: str, small_model: str) -> Example:
    """Claude Code's set-up: its environment, then how to start it."""
    lines = [f"# npm install -g {CLAUDE_CODE_PACKAGE}"]
    for name, value in claude_code_env(base_url, key, model, small_model).items():
        note = "   # or ANTHROPIC_API_KEY" if name == "ANTHROPIC_AUTH_TOKEN" else ""
        lines.append(f'export {name}="{value}"{note}')
    lines += ["", f"claude --model {model}", f'claude -p "Explain this repository" --model {model}   # one prompt, no UI']
    return Example("claude-code", "Claude Code", "bash", "\n".join(lines))


def codex_config(base_url: str, model: str) -> Example:
    """The Codex CLI's ``config.toml``: a model provider for the gateway on the Responses API."""
    code = (
        "# ~/.codex/config.toml\n"
        f'model = "{model}"\n'
        'model_provider = "samalink"\n\n'
        "[model_providers.samalink]\n"
        'name = "SAMALink"\n'
        f'base_url = "{base_url}"\n'
        f'env_key = "{CODEX_KEY_ENV}"\n'
        'wire_api = "responses"'
    )
    return Example("codex-config", "Codex CLI: config.toml", "toml", code)


def codex_run(key: str, model: str, other_model: str) -> Example:
    """Running the Codex CLI with the key in the variable its config names."""
    code = (
        f"# npm install -g {CODEX_PACKAGE}\n"
        f'export {CODEX_KEY_ENV}="{key}"\n\n'
        "codex\n"
        'codex exec "Explain this repository"            # one prompt, no UI\n'
        f"codex --model {other_model}                  # any chat model of the catalogue"
    )
    return Example("codex-run", "Codex CLI: run", "bash", code)


def build_agent_setups(base_url: str, key: str, claude_model: str, small_model: str, codex_model: str,
                       other_model: str) -> list[Example]:
    """The Quick Start's coding-agent set-ups, in the order they are shown."""
    return [claude_code_setup(base_url, key, claude_model, small_model), codex_config(base_url, codex_model),
            codex_run(key, codex_model, other_model)]


def _first_present(wanted: tuple[str, ...], present: set[str], fallback: str) -> str:
    return next((model for model in wanted if model in present), fallback)


def agent_setups_for(base_url: str, key: str, chat_model_ids: list[str], fallback_model: str) -> list[Example]:
    """The set-ups with models the catalogue has: Claude ones for Claude Code, GPT for Codex."""
    present = set(chat_model_ids)
    claude = _first_present(("claude-sonnet-4.5", "claude-4.6-opus"), present, fallback_model)
    small = _first_present(("claude-haiku-4.5",), present, claude)
    codex = _first_present(("gpt-5.2",), present, fallback_model)
    other = _first_present(("deepseek-v3.2",), present, fallback_model)
    return build_agent_setups(base_url, key, claude, small, codex, other)
