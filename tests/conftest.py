"""Shared fixtures: each area's fixtures live in tests/fixtures/ and load here."""

pytest_plugins = [
    "fixtures.upstream",
    "fixtures.gateway",
    "fixtures.portal",
    "fixtures.stripe",
    "fixtures.browser",
]

BROWSER_FIXTURES = {"browser", "browser_page", "page"}


def pytest_collection_modifyitems(items):
    """Run browser tests last.

    Playwright's sync API keeps an event loop running in the main thread while a
    browser is open, and ``asyncio.run`` refuses to start beside it.
    """
    def uses_browser(item) -> bool:
        return "e2e" in item.path.parts or bool(BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())))

    items.sort(key=uses_browser)
