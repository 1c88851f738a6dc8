"""Time helpers: the portal stores naive UTC datetimes and shows them in the user's zone."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


def utcnow() -> datetime:
    """Current time as a naive UTC datetime (the form every portal table stores)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def zone(name: str | None) -> ZoneInfo:
    """The ``ZoneInfo`` for ``name``, falling back to UTC for unknown or empty names."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def is_valid_zone(name: str) -> bool:
    """True when ``name`` is an IANA zone this machine knows."""
    return bool(name) and name in _zone_names()


_ZONES: list[str] = []


def _zone_names() -> list[str]:
    if not _ZONES:
        _ZONES.extend(sorted(z for z in available_timezones() if "/" in z or z == "UTC"))
    return _ZONES


def zone_choices() -> list[str]:
    """Every selectable IANA zone, sorted."""
    return list(_zone_names())


def parse_iso(value: str | None) -> datetime | None:
    """Parse the gateway's ISO 8601 UTC timestamps into aware datetimes."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def as_aware(value: datetime) -> datetime:
    """Treat a naive datetime as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def today_in(tz_name: str | None) -> date:
    """Today's date in the given zone."""
    return datetime.now(zone(tz_name)).date()
