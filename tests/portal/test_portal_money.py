"""Money formatting from integer micro-P: P with separators, USD with 2 (or 4) decimals."""

from __future__ import annotations

import pytest

from portal.money import format_p, format_price, format_usd, parse_p, price_usd


@pytest.mark.parametrize("micro, text", [
    (0, "0 P"),
    (1_000_000, "1.00 P"),
    (2_800, "0.0028 P"),
    (300_000, "0.30 P"),
    (12_345_600, "12.3456 P"),
    (99_999_900, "99.9999 P"),
    (99_999_999, "100.00 P"),
    (100_000_000, "100.00 P"),
    (1_234_567_891_000, "1,234,567.89 P"),
    (-5_000_000, "-5.00 P"),
    (40, "<0.0001 P"),
])
def test_format_p(micro, text):
    assert format_p(micro) == text


@pytest.mark.parametrize("micro, text", [
    (0, "$0.00"),
    (1_000_000_000, "$1.00"),
    (300_000_000, "$0.30"),
    (2_800_000, "$0.0028"),
    (12_345_678_900_000, "$12,345.68"),
    (50_000, "<$0.0001"),
])
def test_format_usd(micro, text):
    assert format_usd(micro) == text


def test_sums_of_small_amounts_have_no_float_artefacts():
    total = sum([100_000_000, 200_000_000])  # 0.1 USD + 0.2 USD
    assert format_usd(total) == "$0.30"
    assert format_p(100_000 + 200_000) == "0.30 P"


def test_prices_per_million():
    assert format_price(14_000) == "14,000" and price_usd(14_000) == "$14.00"
    assert price_usd(280) == "$0.28"
    assert format_price(None) == "—"


@pytest.mark.parametrize("text, micro", [("5000", 5_000_000_000), ("1,250.5", 1_250_500_000),
                                          ("12.5 P", 12_500_000), ("0.000001", 1)])
def test_parse_p(text, micro):
    assert parse_p(text) == micro


@pytest.mark.parametrize("text", ["", "abc", "1e", "NaN", "Infinity", "0.0000001"])
def test_parse_p_refuses(text):
    with pytest.raises(ValueError):
        parse_p(text)
