"""Fixtures of the gateway tests beyond the shared ones: the fake upstream per channel."""

from channel_upstream import channel_upstream  # noqa: F401 - a fixture, registered for this folder
