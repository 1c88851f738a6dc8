"""Money formatting: integer micro-P in, P and USD text out, with Decimal arithmetic only.

1 P = 1,000,000 micro-P = $0.001, so $1 = 1,000,000,000 micro-P.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

MICRO_PER_P = 1_000_000
MICRO_PER_USD = 1_000_000_000
SMALL_P = Decimal(100)

# Typed amounts are read by a strict pattern and plain integer arithmetic, never by
# ``Decimal(text)``: "1e600000" is a valid Decimal whose conversion to int holds the
# interpreter for seconds, and "1e999999" overflows the context. No amount anyone types
# is longer than this, and the cap keeps every parse O(1).
MAX_AMOUNT_CHARS = 40
# The largest P amount any form takes ($1 billion); anything above is a typo.
MAX_TYPED_P = 1_000_000_000_000
_TYPED_DECIMAL = re.compile(
    r"(?P<sign>[+\-\u2212]?)(?P<whole>[0-9]+(?:[,_][0-9]+)*)?(?:\.(?P<fraction>[0-9]*))?"
)


def p_amount(micro_p: int) -> Decimal:
    """Exact P value of an amount in micro-P."""
    return Decimal(int(micro_p)) / MICRO_PER_P


def format_p(micro_p: int | None, unit: bool = True) -> str:
    """``1,234.57 P``; amounts under 100 P keep up to 4 decimals; never a float artefact."""
    if micro_p is None:
        return "—"
    value = p_amount(micro_p)
    if value == 0:
        text = "0"
    elif abs(value) < Decimal("0.0001"):
        text = ("-" if value < 0 else "") + "<0.0001"
    elif abs(value) < SMALL_P:
        whole, _, frac = f"{value.quantize(Decimal('0.0001'), ROUND_HALF_UP):,}".partition(".")
        text = f"{whole}.{frac.rstrip('0').ljust(2, '0')}"
    else:
        text = f"{value.quantize(Decimal('0.01'), ROUND_HALF_UP):,}"
    return f"{text} P" if unit else text


def format_p_exact(micro_p: int | None) -> str:
    """``1,234.567891 P``: every micro-P shown, for statements that must add up."""
    if micro_p is None:
        return "—"
    text = f"{p_amount(micro_p):,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} P"


def format_usd(micro_p: int | None) -> str:
    """``$1.23``; under a cent four decimals (``$0.0028``); below that ``<$0.0001``."""
    if micro_p is None:
        return "—"
    value = Decimal(int(micro_p)) / MICRO_PER_USD
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value == 0:
        return "$0.00"
    if value < Decimal("0.0001"):
        return f"{sign}<$0.0001"
    if value < Decimal("0.01"):
        return f"{sign}${value.quantize(Decimal('0.0001'), ROUND_HALF_UP)}"
    return f"{sign}${value.quantize(Decimal('0.01'), ROUND_HALF_UP):,}"


def format_price(p_per_million: int | None) -> str:
    """A catalogue price (whole P per 1M tokens) with thousands separators."""
    if p_per_million is None:
        return "—"
    return f"{int(p_per_million):,}"


def price_usd(p_per_million: int | None) -> str:
    """The USD value of a catalogue price per 1M tokens (1 P = $0.001)."""
    if p_per_million is None:
        return "—"
    value = Decimal(int(p_per_million)) / 1000
    return f"${value.quantize(Decimal('0.01'), ROUND_HALF_UP):,}"


class InvalidNumber(ValueError):
    """Typed text that is not a plain decimal number; the message suits the form."""


class TooManyDecimals(InvalidNumber):
    """A typed number with non-zero digits beyond the places allowed."""


def scaled_integer(text: str, places: int) -> int:
    """``text`` times ``10**places`` as an int: ``scaled_integer("-1,250.5", 2) == -125050``.

    Accepts ASCII digits with ``,`` or ``_`` between groups, one optional sign (``+``,
    ``-`` or ``−``) and one optional decimal point; nothing else (no exponent, NaN,
    Infinity, spaces, other scripts' digits). Raises ``InvalidNumber``, or
    ``TooManyDecimals`` when digits past ``places`` are not all zero. Text longer than
    ``MAX_AMOUNT_CHARS`` is refused before it is looked at, so the work is bounded.
    """
    if len(text) > MAX_AMOUNT_CHARS:
        raise InvalidNumber("too long")
    match = _TYPED_DECIMAL.fullmatch(text)
    if match is None or not (match["whole"] or match["fraction"]):
        raise InvalidNumber("not a number")
    fraction = match["fraction"] or ""
    if fraction[places:].strip("0"):
        raise TooManyDecimals("too many decimals")
    whole = int((match["whole"] or "0").replace(",", "").replace("_", ""))
    value = whole * 10**places + int(fraction[:places].ljust(places, "0") or "0")
    return -value if match["sign"] in ("-", "\u2212") else value


def parse_p(text: str) -> int:
    """Parse a user-typed P amount ("1,250.5", "-12.5 P") into micro-P.

    Raises ``InvalidNumber`` (a ``ValueError``) with a message for the form when the text
    is not a number, has more than 6 decimals, or exceeds ``MAX_TYPED_P`` either way.
    """
    cleaned = (text or "").strip()
    if cleaned[-1:] in ("p", "P"):
        cleaned = cleaned[:-1].rstrip()
    try:
        micro = scaled_integer(cleaned, 6)
    except TooManyDecimals:
        raise InvalidNumber("Use at most 6 decimal places.") from None
    except InvalidNumber:
        raise InvalidNumber("Enter a number of P, like 5000 or 12.5.") from None
    if abs(micro) > MAX_TYPED_P * MICRO_PER_P:
        raise InvalidNumber(f"Enter at most {MAX_TYPED_P:,} P.")
    return micro


def format_int(value: int | None) -> str:
    """An integer with thousands separators."""
    return "—" if value is None else f"{int(value):,}"
