"""IP allow-list entries, read the same way by the portal (its form) and the gateway (the API
and every request): IPv4/IPv6 addresses and CIDR ranges, in canonical form."""

from __future__ import annotations

import ipaddress
import re
from typing import Iterable

__all__ = ["InvalidIpEntry", "IpNetwork", "MAX_ALLOWED_IPS", "MAX_IP_ENTRY", "normalise_ip_list", "parse_ip_entry"]

# More entries than any team needs, few enough that a check stays a short loop.
MAX_ALLOWED_IPS = 100
MAX_IP_ENTRY = 64
# Digits, hex digits, the separators and the prefix slash: no zone ids, no spaces inside.
IP_CHARACTERS = re.compile(r"^[0-9A-Fa-f:./]+$")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class InvalidIpEntry(ValueError):
    """An allow-list entry that is neither an address nor a CIDR range; the message says which."""


def parse_ip_entry(entry: str) -> IpNetwork:
    """One allow-list entry (an IPv4/IPv6 address or CIDR range) as a network.

    Host bits set under the prefix (``10.0.0.1/8``) are refused rather than silently
    widened, so what the customer typed is exactly what is allowed.
    """
    if not isinstance(entry, str):
        raise InvalidIpEntry("Each IP entry must be a string.")
    text = entry.strip()
    if not text or len(text) > MAX_IP_ENTRY or not IP_CHARACTERS.match(text):
        # Quoted only when it is safe to show back (no control characters, bounded).
        shown = f"'{text[:MAX_IP_ENTRY]}'" if text.isascii() and text.isprintable() and text else "An entry"
        raise InvalidIpEntry(f"{shown} is not an IP address or CIDR range.")
    shown = text
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            raise InvalidIpEntry(f"'{shown}' has bits set beyond its prefix; write the range's first address.") from None
        raise InvalidIpEntry(f"'{shown}' is not an IP address or CIDR range.") from None


def normalise_ip_list(entries: Iterable[str]) -> list[str]:
    """The allow-list in canonical form (``2001:db8::/32``, duplicates dropped, order kept).

    Raises ``InvalidIpEntry`` naming the first bad entry.
    """
    seen: list[str] = []
    for entry in entries:
        canonical = str(parse_ip_entry(entry))
        if canonical not in seen:
            seen.append(canonical)
    if len(seen) > MAX_ALLOWED_IPS:
        raise InvalidIpEntry(f"At most {MAX_ALLOWED_IPS} IP entries are allowed.")
    return seen
