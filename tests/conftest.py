"""Shared fixtures: each area's fixtures live in tests/fixtures/ and load here."""

pytest_plugins = [
    "fixtures.upstream",
    "fixtures.gateway",
    "fixtures.portal",
    "fixtures.stripe",
]
