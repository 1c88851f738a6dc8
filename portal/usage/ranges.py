"""Date ranges for the usage page, in the customer's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from samalink_common.limits import MAX_REPORT_DAYS

from ..timeutil import today_in

PRESETS = {"7d": 7, "30d": 30, "90d": 90}


class RangeError(ValueError):
    """The custom range is not usable; the message says why."""


@dataclass(frozen=True)
class DateRange:
    """Inclusive dates and the preset they came from ("custom" otherwise)."""

    start: date
    end: date
    preset: str

    @property
    def days(self) -> list[date]:
        """Every date in the range, oldest first."""
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def label(self) -> str:
        """"Nov 19 – Nov 25, 2026"."""
        if self.start.year == self.end.year:
            return f"{self.start:%b} {self.start.day} – {self.end:%b} {self.end.day}, {self.end.year}"
        return f"{self.start:%b} {self.start.day}, {self.start.year} – {self.end:%b} {self.end.day}, {self.end.year}"


def _parse(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RangeError(f"The {name} date must look like 2026-11-25.") from None


def resolve_range(preset: str | None, start: str | None, end: str | None, tz: str) -> DateRange:
    """The range asked for: a preset counted back from today in ``tz``, or custom dates."""
    today = today_in(tz)
    if preset == "custom" or (not preset and (start or end)):
        if not start or not end:
            raise RangeError("Choose both a start and an end date.")
        first, last = _parse(start, "start"), _parse(end, "end")
        if first > last:
            raise RangeError("The start date must be on or before the end date.")
        if (last - first).days + 1 > MAX_REPORT_DAYS:
            raise RangeError(f"Choose a range of at most {MAX_REPORT_DAYS} days.")
        if first > today:
            raise RangeError("The range must start today or earlier.")
        return DateRange(first, last, "custom")
    days = PRESETS.get(preset or "7d", 7)
    return DateRange(today - timedelta(days=days - 1), today, preset if preset in PRESETS else "7d")
