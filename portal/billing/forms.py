"""The top-up form: one field, ``amount_usd``, shared by the preset buttons and the custom amount."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField, ValidationError
from wtforms.validators import DataRequired

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
