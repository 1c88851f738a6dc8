"""The gateway's model catalogue arranged for pages: by provider and by region group."""

from __future__ import annotations

from dataclasses import dataclass, field

from .gateway_client import gateway
from .gateway_views import calling_gateway

GROUP_ORDER = ("Chinese Models", "International Models")


@dataclass
class CatalogView:
    """Models as the gateway lists them, plus groupings used by the templates."""

    models: list[dict] = field(default_factory=list)
    providers: list[dict] = field(default_factory=list)

    def by_provider(self) -> list[tuple[str, list[dict]]]:
        """(provider name, its models) in catalogue order."""
        groups: dict[str, list[dict]] = {}
        for model in self.models:
            groups.setdefault(model.get("provider_name") or model["provider"], []).append(model)
        return list(groups.items())

    def by_group(self) -> list[tuple[str, list[dict]]]:
        """("Chinese Models" / "International Models", models) in that order."""
        groups: dict[str, list[dict]] = {name: [] for name in GROUP_ORDER}
        for model in self.models:
            groups.setdefault(model.get("group") or "International Models", []).append(model)
        return [(name, models) for name, models in groups.items() if models]

    def chat_models(self) -> list[dict]:
        """Models callable through the chat endpoints."""
        return [m for m in self.models if m.get("kind") == "chat"]

    def example_model(self) -> str:
        """A priced chat model to put in code examples."""
        for model in self.chat_models():
            if model.get("priced"):
                return model["id"]
        return "deepseek-v3.2"


def load_catalog() -> CatalogView | None:
    """The catalogue, or None (and the page's notice set) when the gateway is down."""
    with calling_gateway() as call:
        data = gateway().catalog()
    if call.failed:
        return None
    return CatalogView(models=list(data.get("models") or []), providers=list(data.get("providers") or []))
