"""Money formatting: integer micro-P in, P and USD text out, with Decimal arithmetic only.

1 P = 1,000,000 micro-P = $0.001, so $1 = 1,000,000,000 micro-P.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICRO_PER_P = 1_000_000
MICRO_PER_USD = 1_000_000_000
SMALL_P = Decimal(100)


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


def parse_p(text: str) -> int:
    """Parse a user-typed P amount ("1,250.5") into micro-P; ``ValueError`` when invalid."""
    cleaned = (text or "").replace(",", "").replace("_", "").strip()
    if cleaned.upper().endswith("P"):
        cleaned = cleaned[:-1].strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError("Enter a number of P, like 5000 or 12.5.") from None
    if not value.is_finite():
        raise ValueError("Enter a number of P, like 5000 or 12.5.")
    micro = value * MICRO_PER_P
    if micro != micro.to_integral_value():
        raise ValueError("Use at most 6 decimal places.")
    return int(micro)


def format_int(value: int | None) -> str:
    """An integer with thousands separators."""
    return "—" if value is None else f"{int(value):,}"
