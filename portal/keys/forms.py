"""Forms for creating and renaming API keys."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from flask_wtf import FlaskForm
from wtforms import DateField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ..money import MICRO_PER_P, parse_p
from ..timeutil import today_in, zone

MAX_SPEND_LIMIT_P = 100_000_000  # $100,000: far above any real budget, below integer trouble
MAX_EXPIRY_DAYS = 5 * 366


def _strip(value: str | None) -> str:
    return (value or "").strip()


class KeyNameMixin:
    """The key's display name."""

    name = StringField("Name", filters=[_strip],
                       validators=[DataRequired("Give the key a name, like “production” or “laptop”."),
                                   Length(max=100, message="Use at most 100 characters.")])


class CreateKeyForm(KeyNameMixin, FlaskForm):
    """New key: name, optional spending limit in P, optional expiry date."""

    spend_limit = StringField("Spending limit (P)", filters=[_strip], validators=[Optional()])
    expires_on = DateField("Expires on", validators=[Optional()],
                           render_kw={"type": "date"})

    def __init__(self, *args, tz: str = "UTC", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tz = tz

    def validate_spend_limit(self, field) -> None:
        if not field.data:
            return
        try:
            micro = parse_p(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if micro <= 0:
            raise ValidationError("The limit must be more than 0 P.")
        if micro > MAX_SPEND_LIMIT_P * MICRO_PER_P:
            raise ValidationError(f"The limit can be at most {MAX_SPEND_LIMIT_P:,} P.")

    def validate_expires_on(self, field) -> None:
        if field.data is None:
            return
        today = today_in(self.tz)
        if field.data <= today:
            raise ValidationError("Pick a date after today.")
        if field.data > today + timedelta(days=MAX_EXPIRY_DAYS):
            raise ValidationError("Pick a date within the next five years.")

    def spend_limit_micro_p(self) -> int | None:
        """The validated limit in micro-P, or None for no limit."""
        return parse_p(self.spend_limit.data) if self.spend_limit.data else None

    def expires_at_iso(self) -> str | None:
        """The key stops working at the end of the chosen day in the user's zone (UTC ISO)."""
        if self.expires_on.data is None:
            return None
        return end_of_day_utc(self.expires_on.data, self.tz)


def end_of_day_utc(day: date, tz: str) -> str:
    """Midnight after ``day`` in ``tz``, as an ISO 8601 UTC string."""
    local = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone(tz))
    return local.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RenameKeyForm(KeyNameMixin, FlaskForm):
    """A new name for a key."""
