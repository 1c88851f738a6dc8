"""Repeated page parts are drawn by one macro each, so they cannot drift apart between pages."""

from __future__ import annotations

from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
PAGES = sorted(p for p in TEMPLATES.rglob("*.html") if p.parent.name != "partials")

# Markup that only its macro in templates/partials/ may write.
OWNED = {'class="filters"': "filter_bar", 'class="load-more-row"': "load_more"}


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_filter_bars_and_load_more_rows_come_from_their_macros(path):
    text = path.read_text(encoding="utf-8")
    assert [macro for markup, macro in OWNED.items() if markup in text] == []


def test_the_pages_with_filter_bars_and_further_pages_use_the_macros():
    uses = {name: (TEMPLATES / name).read_text(encoding="utf-8")
            for name in ("requests_log/requests.html", "operator/traffic.html", "operator/customers.html")}
    assert all("filter_bar(" in text for text in uses.values())
    assert "log_filter_fields(" in uses["requests_log/requests.html"] and "log_filter_fields(" in uses["operator/traffic.html"]
    assert "load_more(" in uses["requests_log/requests.html"] and "load_more(" in uses["operator/traffic.html"]
