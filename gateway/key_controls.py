"""The rules of a key's own controls, as plain functions: budget periods, IP allow-lists,
the client address behind trusted proxies, and how a rate-limit wait is written.

A budget period starts at local midnight in the account's zone (``usage_tz``): a day,
a week starting Monday, or a calendar month. ``period_bounds`` gives the UTC instants
of its start and of the next reset, daylight-saving changes included (a local day is
then 23 or 25 hours long).
"""

from __future__ import annotations

import ipaddress
import math
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from samalink_common.ip_lists import (  # noqa: F401 - the gateway's names for the shared rules
    MAX_ALLOWED_IPS,
    MAX_IP_ENTRY,
    InvalidIpEntry,
    IpNetwork,
    normalise_ip_list,
    parse_ip_entry,
)

BUDGET_PERIODS = ("day", "week", "month")
MAX_ALLOWED_MODELS = 200


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(timezone.utc)


def period_bounds(period: str, zone_name: str, now: datetime) -> tuple[datetime, datetime]:
    """(start, next reset) of the budget ``period`` containing ``now``, as aware UTC datetimes."""
    if period not in BUDGET_PERIODS:
        raise ValueError(f"unknown budget period {period!r}")
    zone = ZoneInfo(zone_name)
    today = now.astimezone(zone).date()
    if period == "day":
        first, following = today, today + timedelta(days=1)
    elif period == "week":
        first = today - timedelta(days=today.weekday())
        following = first + timedelta(days=7)
    else:
        first = today.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
    return _local_midnight(first, zone), _local_midnight(following, zone)


def ip_allowed(address: str | None, networks: tuple[IpNetwork, ...]) -> bool:
    """Whether ``address`` lies in one of ``networks`` (an empty list allows any address).

    An IPv4-mapped IPv6 peer (``::ffff:1.2.3.4``, as a dual-stack socket reports it) is
    matched as its IPv4 address.
    """
    if not networks:
        return True
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: list[str], trusted_hops: int) -> str | None:
    """The client's address: the socket peer, or with ``trusted_hops`` proxies in front,
    the ``X-Forwarded-For`` entry the outermost trusted proxy added.

    Entries further left were written by the client itself and are never believed. When
    the header holds fewer entries than there are trusted hops, the request did not come
    through them all, and the peer is taken.
    """
    if trusted_hops <= 0:
        return peer
    entries = [part.strip() for value in forwarded_for for part in value.split(",") if part.strip()]
    if len(entries) < trusted_hops:
        return peer
    return entries[-trusted_hops]


def duration_text(seconds: float) -> str:
    """A wait in OpenAI's rate-limit header form: ``1s``, ``6m0s``, ``1h2m3s``."""
    whole = max(0, math.ceil(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
