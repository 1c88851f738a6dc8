"""Billing's forms: the top-up (``amount_usd``, shared by the preset buttons and the custom
amount), the low-balance alert (``low_balance_threshold_p``) and auto top-up."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, ValidationError
from wtforms.validators import DataRequired

from ..money import InvalidNumber, TooManyDecimals, parse_p, scaled_integer
from .service import MAX_CENTS, MIN_CENTS, InvalidAmount, parse_amount_usd


class AmountInDollars:
    """Accept "25", "25.50" or "$1,000" between the top-up bounds; keep the cents on the field."""

    def __call__(self, form, field) -> None:
        try:
            field.cents = parse_amount_usd(field.data)
        except InvalidAmount as exc:
            raise ValidationError(str(exc)) from None


class TopUpForm(FlaskForm):
    """Buy SAMA-P with a card through Stripe Checkout."""

    amount_usd = StringField(
        "Amount (USD)",
        validators=[DataRequired("Enter an amount in US dollars, like 25 or 25.50."), AmountInDollars()],
        description=f"Between ${MIN_CENTS // 100:,} and ${MAX_CENTS // 100:,}. $1 buys 1,000 P.",
    )

    @property
    def amount_cents(self) -> int:
        """The validated amount in cents (only after ``validate_on_submit``)."""
        return self.amount_usd.cents


class PAmount:
    """Accept a positive P amount ("500", "1,250.5 P"), or nothing; keep the micro-P on the field."""

    def __call__(self, form, field) -> None:
        field.micro_p = None
        if not (field.data or "").strip():
            return
        try:
            micro_p = parse_p(field.data)
        except InvalidNumber as exc:
            raise ValidationError(str(exc)) from None
        if micro_p <= 0:
            raise ValidationError("Enter a positive number of P, or leave it empty to switch the alert off.")
        field.micro_p = micro_p


class LowBalanceForm(FlaskForm):
    """The low-balance alert: an e-mail each time the balance falls below a threshold."""

    low_balance_threshold_p = StringField(
        "Warn me when the balance falls below (P)",
        validators=[PAmount()],
        description="One e-mail each time the balance drops below this; empty switches the alert off.",
    )

    @property
    def threshold_micro_p(self) -> int | None:
        """The validated threshold in micro-P, None for off (only after ``validate_on_submit``)."""
        return self.low_balance_threshold_p.micro_p


MAX_MONTHLY_CENTS = 100 * MAX_CENTS


class DollarsUpTo:
    """Accept a dollar amount between the smallest top-up and ``high`` cents; keep the cents on the field."""

    def __init__(self, high: int) -> None:
        self.high = high

    def __call__(self, form, field) -> None:
        text = (field.data or "").strip().removeprefix("$").lstrip()
        try:
            if len(text) > 24:
                raise InvalidNumber("too long")
            cents = scaled_integer(text, 2)
        except TooManyDecimals:
            raise ValidationError("Use at most two decimal places (whole cents).") from None
        except InvalidNumber:
            raise ValidationError("Enter an amount in US dollars, like 25 or 25.50.") from None
        if not MIN_CENTS <= cents <= self.high:
            raise ValidationError(f"Enter between ${MIN_CENTS // 100:,} and ${self.high // 100:,}.")
        field.cents = cents


class AutoTopUpForm(FlaskForm):
    """Auto top-up: "when the balance falls below X P, charge my card $Y", at most $Z a month."""

    enabled = BooleanField("Top up automatically")
    threshold_p = StringField("When the balance falls below (P)",
                              validators=[DataRequired("Enter a balance in P, like 5000."), PAmount()])
    amount_usd = StringField("Charge my card (USD)",
                             validators=[DataRequired("Enter an amount in US dollars, like 25."),
                                         DollarsUpTo(MAX_CENTS)])
    monthly_max_usd = StringField("At most, per calendar month (USD)",
                                  validators=[DataRequired("Enter a monthly maximum in US dollars."),
                                              DollarsUpTo(MAX_MONTHLY_CENTS)],
                                  description="Refills stop for the month once they would pass this (months in your time zone; a team's in its owner's).")

    def validate_monthly_max_usd(self, field) -> None:
        """The maximum must allow at least one refill."""
        amount = getattr(self.amount_usd, "cents", None)
        if amount is not None and getattr(field, "cents", amount) < amount:
            raise ValidationError("The monthly maximum must be at least the amount of one refill.")
