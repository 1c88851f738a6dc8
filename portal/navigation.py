"""The sidebar: every portal page in the product's order, and which are public."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NavItem:
    """One sidebar link."""

    path: str
    label: str
    icon: str
    public: bool = False


NAV_ITEMS: tuple[NavItem, ...] = (
    NavItem("/dashboard", "Dashboard", "grid"),
    NavItem("/quickstart", "Quick Start", "bolt"),
    NavItem("/models", "Available Models", "cube"),
    NavItem("/keys", "API Keys", "key"),
    NavItem("/billing", "Billing", "card"),
    NavItem("/pricing", "Pricing", "tag", public=True),
    NavItem("/usage", "Usage", "chart"),
    NavItem("/requests", "Request Log", "list"),
    NavItem("/payments", "Payment History", "receipt"),
    NavItem("/settings", "Settings", "gear"),
    NavItem("/support", "Support", "help", public=True),
    NavItem("/docs", "API Docs", "book", public=True),
)


def nav_for(path: str, signed_in: bool) -> list[tuple[NavItem, bool]]:
    """The links to show and whether each is the current page."""
    items = [item for item in NAV_ITEMS if signed_in or item.public]
    return [(item, path == item.path or path.startswith(item.path + "/")) for item in items]
