"""Routes: /quickstart, /docs, /models (catalogue by provider) and /pricing."""

from __future__ import annotations

from flask import Blueprint, current_app
from flask_login import current_user, login_required

from ..teams.selection import selected_account
from ..catalog_view import load_catalog
from ..gateway_client import gateway
from ..gateway_views import calling_gateway
from ..htmx import render
from .agent_setups import agent_setups_for
from .cache_billing import cache_example
from .examples import ENDPOINTS, ERRORS, KEY_PATTERN, build_examples, key_hint

bp = Blueprint("docs", __name__)


def _key_prefix() -> str | None:
    """The prefix of the customer's newest active key, to show where the key goes."""
    if not current_user.is_authenticated:
        return None
    with calling_gateway() as call:
        selection = selected_account()
        keys = gateway().list_keys(selection.account_id, member_id=selection.member_filter)
        if selection.member_filter is not None:
            keys = [k for k in keys if k.get("member_id") == selection.member_filter]
    if call.failed:
        return None
    active = [k for k in keys if k.get("status") == "active"]
    active.sort(key=lambda k: k.get("created_at") or "", reverse=True)
    return active[0].get("prefix") if active else None


def _examples(catalog, key: str | None = None):
    model = catalog.example_model() if catalog else "deepseek-v3.2"
    claude = "claude-sonnet-4.5"
    if catalog and not any(m["id"] == claude for m in catalog.chat_models()):
        claude = model
    return build_examples(current_app.config["GATEWAY_PUBLIC_URL"], key or key_hint(_key_prefix()), model, claude)


def _agent_setups(catalog, key: str):
    fallback = catalog.example_model() if catalog else "deepseek-v3.2"
    ids = [m["id"] for m in catalog.chat_models()] if catalog else []
    return agent_setups_for(current_app.config["GATEWAY_PUBLIC_URL"], key, ids, fallback)


@bp.route("/quickstart")
@login_required
def quickstart():
    """Examples filled with the customer's Base URL and key prefix."""
    catalog = load_catalog()
    key = key_hint(_key_prefix())
    return render("docs/quickstart.html", examples=_examples(catalog, key), agent_setups=_agent_setups(catalog, key),
                  catalog=catalog)


@bp.route("/docs")
def api_docs():
    """The public API reference; Supported Models come from the live catalogue."""
    catalog = load_catalog()
    key = key_hint(_key_prefix())
    return render("docs/api_docs.html", examples=_examples(catalog, key), catalog=catalog,
                  endpoints=ENDPOINTS, errors=ERRORS, key_pattern=KEY_PATTERN,
                  cache_example=cache_example(catalog.models if catalog else []),
                  agent_setups=_agent_setups(catalog, key))


@bp.route("/models")
@login_required
def models():
    """The catalogue grouped by provider, with prices."""
    return render("docs/models.html", catalog=load_catalog())


@bp.route("/pricing")
def pricing():
    """Public prices grouped Chinese / International, in P and USD per 1M tokens."""
    return render("docs/pricing.html", catalog=load_catalog())
