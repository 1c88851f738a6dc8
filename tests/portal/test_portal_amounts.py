"""Typed numbers never freeze or crash the portal: every parser refuses what is not a
plain decimal of bounded length before doing any work proportional to its value.

``Decimal("1e600000")`` is a valid number whose conversion to int held the interpreter
for seconds (every page of every user waited), and ``1e999999`` overflowed the decimal
context into a 500.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from portal.billing.service import MAX_CENTS, InvalidAmount, page_cursor, parse_amount_usd
from portal.money import MAX_TYPED_P, MICRO_PER_P, InvalidNumber, TooManyDecimals, parse_p, scaled_integer

HTMX = {"HX-Request": "true"}
SETTINGS = settings(max_examples=300, derandomize=True, deadline=None)

# Strings that once took seconds, raised something other than a form error, or are easy
# to mistake for numbers.
NASTY = [
    "1e600000", "1e999999", "-1e999999", "1E6", "1e-600000", "9" * 5000, "9" * 41, "1" + "0" * 39,
    "NaN", "nan", "sNaN", "Infinity", "-inf", "-0", "+0", "0x10", "١٢٣", "１２３", "1_000",
    "1__000", "1,,000", "\x00", "5\x00", "1.2.3", "--5", ".", "", " ", "$", "P", "−12.5", "²",
]
text_strategy = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=60),
    st.text(alphabet="0123456789eE.,_+-−$P nN", max_size=60),
    st.from_regex(r"[+-]?[0-9]{1,60}(\.[0-9]{0,10})?([eE][+-]?[0-9]{1,7})?", fullmatch=True),
)


def _bounded_or_refused(parse, text, bound, errors):
    """``parse(text)`` returns an int within ``bound`` or raises one of ``errors``."""
    started = time.perf_counter()
    try:
        value = parse(text)
    except errors:
        return None
    finally:
        # Not a benchmark: a generous ceiling that the old 9.5-second parse broke.
        assert time.perf_counter() - started < 1.0, repr(text[:40])
    assert isinstance(value, int) and abs(value) <= bound, repr(text[:40])
    return value


@SETTINGS
@given(text_strategy)
@example("1e600000")
@example("1e999999")
def test_parse_p_returns_a_bounded_amount_or_a_form_error(text):
    _bounded_or_refused(parse_p, text, MAX_TYPED_P * MICRO_PER_P, InvalidNumber)


@SETTINGS
@given(text_strategy)
@example("1e600000")
@example("1e999999")
def test_parse_amount_usd_returns_bounded_cents_or_a_form_error(text):
    _bounded_or_refused(parse_amount_usd, text, MAX_CENTS, InvalidAmount)


@SETTINGS
@given(text_strategy, st.integers(0, 6))
def test_scaled_integer_is_bounded_by_the_length_cap(text, places):
    _bounded_or_refused(lambda t: scaled_integer(t, places), text, 10 ** (40 + places), InvalidNumber)


@SETTINGS
@given(text_strategy)
def test_payment_cursor_is_a_64_bit_id_or_none(text):
    cursor = page_cursor(text)
    assert cursor is None or 0 <= cursor < 2**63


@pytest.mark.parametrize("text", ["1e600000", "1e999999", "NaN", "Infinity", "١٢٣", "\x00", "1E3", "0x10"])
def test_exponents_and_non_ascii_digits_are_not_numbers(text):
    with pytest.raises(InvalidNumber, match="Enter a number of P"):
        parse_p(text)


@pytest.mark.parametrize("text, micro", [
    ("1_000", 1_000_000_000), ("-0", 0), ("−12.5", -12_500_000), ("+1,000 P", 1_000_000_000),
    (".5", 500_000), ("5.", 5_000_000), ("1.5000000", 1_500_000), ("1000000000000", 10**18),
])
def test_plain_numbers_still_parse(text, micro):
    assert parse_p(text) == micro


def test_too_large_and_too_precise_have_their_own_messages():
    with pytest.raises(InvalidNumber, match="at most 1,000,000,000,000 P"):
        parse_p("1000000000000.000001")
    with pytest.raises(TooManyDecimals):
        scaled_integer("1.001", 2)


@pytest.mark.parametrize("typed", ["1e600000", "1e999999"])
def test_key_limit_forms_refuse_an_exponent_quickly(logged_in_client, typed):
    """Creating a key and changing its limit answer with the form's message, fast."""
    started = time.perf_counter()
    response = logged_in_client.post("/keys", data={"name": "exp", "spend_limit": typed, "expires_on": ""},
                                     headers=HTMX)
    assert time.perf_counter() - started < 3
    assert response.status_code in (200, 422)
    assert "Enter a number of P" in response.get_data(as_text=True)

    created = logged_in_client.post("/keys", data={"name": "plain", "spend_limit": "10", "expires_on": ""})
    assert created.status_code == 200
    key_id = logged_in_client.get("/keys").get_data(as_text=True).split('id="key-', 1)[1].split('"', 1)[0]
    started = time.perf_counter()
    response = logged_in_client.post(f"/keys/{key_id}/limits", data={"spend_limit": typed, "expires_on": ""})
    assert time.perf_counter() - started < 3
    assert response.status_code == 422
    assert "Enter a number of P" in response.get_data(as_text=True)
