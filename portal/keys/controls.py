"""A key's controls as the portal reads, writes and shows them: the IP allow-list as typed
text, the model picker's groups, and the one-line summaries in the Keys table.

The rules for IP entries are the gateway's own (``samalink_common.ip_lists``): what the
form accepts, the gateway accepts.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from samalink_common.ip_lists import MAX_ALLOWED_IPS, InvalidIpEntry, normalise_ip_list

from ..money import format_p
from ..timeutil import parse_iso, zone

PERIODS = (("", "No budget"), ("day", "Daily"), ("week", "Weekly"), ("month", "Monthly"))
PERIOD_NOUNS = {"day": "today", "week": "this week", "month": "this month"}
MAX_RPM = 10_000_000
MAX_TPM = 10**12
_SEPARATORS = re.compile(r"[\s,;]+")


def ip_entries(text: str | None) -> list[str]:
    """The entries typed into the allow-list box: one per line, or separated by commas."""
    return [part for part in _SEPARATORS.split(text or "") if part]


def check_ip_text(text: str | None) -> tuple[list[str], str | None]:
    """(the allow-list in canonical form, None) or ([], why it is refused)."""
    entries = ip_entries(text)
    if len(entries) > MAX_ALLOWED_IPS:
        return [], f"Give at most {MAX_ALLOWED_IPS} addresses or ranges."
    try:
        return normalise_ip_list(entries), None
    except InvalidIpEntry as exc:
        return [], str(exc)


def ip_text(entries: list[str] | None) -> str:
    """An allow-list as the form shows it, one entry per line."""
    return "\n".join(entries or [])


def parse_whole(text: str | None, most: int) -> int | None:
    """A typed whole number ("100,000") from 1 to ``most``; None when empty; ValueError otherwise."""
    cleaned = (text or "").strip().replace(",", "").replace("_", "").replace(" ", "")
    if not cleaned:
        return None
    if not cleaned.isdigit() or not cleaned.isascii():
        raise ValueError("Enter a whole number, like 60.")
    value = int(cleaned)
    if not 1 <= value <= most:
        raise ValueError(f"Enter a number from 1 to {most:,}.")
    return value


def model_groups(models: list[dict]) -> list[tuple[str, list[dict]]]:
    """Callable models by region group, as the Pricing page lists them."""
    groups: dict[str, list[dict]] = {"Chinese Models": [], "International Models": []}
    for model in models:
        if model.get("enabled", True):
            groups.setdefault(model.get("group") or "International Models", []).append(model)
    return [(name, members) for name, members in groups.items() if members]


def reset_day(resets_at: str | None, tz: str) -> str | None:
    """When a budget resets, in the user's zone, for a table cell ("Mon 1 Dec 00:00")."""
    moment = parse_iso(resets_at)
    if moment is None:
        return None
    return moment.astimezone(zone(tz)).strftime("%a %-d %b %H:%M")


def budget_line(key: dict) -> str | None:
    """"12.5 P of 50 P today" for a key with a budget, else None."""
    if key.get("budget_micro_p") is None:
        return None
    noun = PERIOD_NOUNS.get(key.get("budget_period") or "", "this period")
    return f"{format_p(key.get('budget_spent_micro_p') or 0)} of {format_p(key['budget_micro_p'])} {noun}"


def rate_line(key: dict) -> str | None:
    """"60 RPM · 100,000 TPM", or None without rate limits."""
    parts = []
    if key.get("rpm_limit") is not None:
        parts.append(f"{key['rpm_limit']:,} RPM")
    if key.get("tpm_limit") is not None:
        parts.append(f"{key['tpm_limit']:,} TPM")
    return " · ".join(parts) or None


def period_days(key: dict, tz: str, today: date) -> tuple[date, date] | None:
    """The local dates of the key's current budget period (up to today), or None without one."""
    resets = parse_iso(key.get("budget_resets_at"))
    period = key.get("budget_period")
    if resets is None or period not in PERIOD_NOUNS:
        return None
    last = (resets.astimezone(zone(tz)) - timedelta(seconds=1)).date()
    if period == "day":
        first = last
    elif period == "week":
        first = last - timedelta(days=6)
    else:
        first = last.replace(day=1)
    return first, min(last, max(today, first))


def budget_is_spent(key: dict, now: datetime) -> bool:
    """Whether the key's budget for this period is used up (the gateway refuses it until the reset)."""
    budget = key.get("budget_micro_p")
    resets = parse_iso(key.get("budget_resets_at"))
    return budget is not None and resets is not None and resets > now and (key.get("budget_spent_micro_p") or 0) >= budget
