"""Code examples (curl, Python openai SDK, the Responses API, Anthropic format) filled with the Base URL and key."""

from __future__ import annotations

from dataclasses import dataclass

KEY_PLACEHOLDER = "sama_..."
KEY_PATTERN = r"sama_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


@dataclass(frozen=True)
class Example:
    """One tab of code."""

    id: str
    label: str
    language: str
    code: str


def anthropic_base(base_url: str) -> str:
    """The Anthropic SDK appends /v1 itself, so it takes the Base URL without it."""
    return base_url[:-3] if base_url.endswith("/v1") else base_url


def key_hint(prefix: str | None) -> str:
    """What to show where the key goes: the customer's key prefix, or a placeholder."""
    return f"{prefix}..." if prefix else KEY_PLACEHOLDER


def build_examples(base_url: str, key: str, model: str, claude_model: str = "claude-sonnet-4.5") -> list[Example]:
    """The quick start examples."""
    curl = (
        f'export SAMA_API_KEY="{key}"\n\n'
        f"curl {base_url}/chat/completions \\\n"
        '  -H "Authorization: Bearer $SAMA_API_KEY" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        "  -d '{\n"
        f'    "model": "{model}",\n'
        '    "messages": [{"role": "user", "content": "Hello!"}]\n'
        "  }'"
    )
    python = (
        "# pip install openai\n"
        "import os\n"
        "from openai import OpenAI\n\n"
        "client = OpenAI(\n"
        f'    base_url="{base_url}",\n'
        f'    api_key=os.environ["SAMA_API_KEY"],  # {key}\n'
        ")\n\n"
        "response = client.chat.completions.create(\n"
        f'    model="{model}",\n'
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(response.choices[0].message.content)"
    )
    responses = (
        "# pip install openai\n"
        "import os\n"
        "from openai import OpenAI\n\n"
        "client = OpenAI(\n"
        f'    base_url="{base_url}",\n'
        f'    api_key=os.environ["SAMA_API_KEY"],  # {key}\n'
        ")\n\n"
        "# The Responses API, streamed or not, works with every chat model.\n"
        "response = client.responses.create(\n"
        f'    model="{model}",\n'
        '    instructions="Answer in one sentence.",\n'
        '    input="Hello!",\n'
        ")\n"
        "print(response.output_text)"
    )
    anthropic = (
        "# pip install anthropic\n"
        "import os\n"
        "import anthropic\n\n"
        "client = anthropic.Anthropic(\n"
        f'    base_url="{anthropic_base(base_url)}",\n'
        f'    api_key=os.environ["SAMA_API_KEY"],  # {key}\n'
        ")\n\n"
        "message = client.messages.create(\n"
        f'    model="{claude_model}",\n'
        "    max_tokens=1024,\n"
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(message.content[0].text)"
    )
    return [
        Example("curl", "curl", "bash", curl),
        Example("python", "Python (openai)", "python", python),
        Example("responses", "Responses API", "python", responses),
        Example("anthropic", "Anthropic format", "python", anthropic),
    ]


ENDPOINTS = (
    ("POST", "/v1/chat/completions", "Chat completions in OpenAI format, streaming (SSE) or not. Every chat model."),
    ("POST", "/v1/completions", "Text completions; translated to chat where the provider has no completions API."),
    ("POST", "/v1/embeddings", "Embeddings with the embedding models."),
    ("POST", "/v1/responses", "OpenAI's Responses API (Codex CLI, openai-agents), streaming or not. Every chat "
     "model. Nothing is stored, so previous_response_id is refused; built-in tools such as web_search are left out "
     "and named in the x-samalink-omitted-tools header."),
    ("POST", "/v1/messages", "Anthropic Messages format, streaming or not. Every chat model."),
    ("POST", "/v1/messages/count_tokens", "Anthropic's token count for a Messages body. Free; every chat model."),
    ("GET", "/v1/models", "The model catalogue in OpenAI list format; your client's own model ids work too."),
)

ERRORS = (
    ("400 / 413 / 422", "The request is invalid, here or at the provider (its message is passed on)."),
    ("401", "The API key is missing, unknown, revoked or expired."),
    ("402", "Your balance is used up, or the key reached its spending limit. Top up in Billing."),
    ("404", "The model does not exist."),
    ("429", "Rate limited; retry after the retry-after header's wait."),
    ("500 / 503 / 529", "The provider failed or is overloaded (529 on /v1/messages, 503 elsewhere); retry later."),
    ("502 / 504", "The provider could not be reached, refused the gateway, or timed out. Failed calls are not charged."),
)
