"""Billing's forms: the top-up (``amount_usd``, shared by the preset buttons and the custom
amount) and the low-balance alert (``low_balance_threshold_p``)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField, ValidationError
from wtforms.validators import DataRequired

from ..money import InvalidNumber, parse_p
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
