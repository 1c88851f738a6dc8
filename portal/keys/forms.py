"""Forms for creating API keys, renaming them, and changing their spending limit, expiry
and controls (a budget per period, model and IP allow-lists, rate limits)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ..money import MICRO_PER_P, InvalidNumber, parse_p
from ..timeutil import parse_iso, today_in, zone
from .controls import MAX_RPM, MAX_TPM, PERIODS, check_ip_text, ip_text, parse_whole

MAX_SPEND_LIMIT_P = 100_000_000  # $100,000: far above any real budget, below integer trouble
MAX_EXPIRY_DAYS = 5 * 366


def _strip(value: str | None) -> str:
    return (value or "").strip()


class KeyNameMixin:
    """The key's display name."""

    name = StringField("Name", filters=[_strip],
                       validators=[DataRequired("Give the key a name, like “production” or “laptop”."),
                                   Length(max=100, message="Use at most 100 characters.")])


class KeyLimitsMixin:
    """An optional spending limit in P and an optional last day, validated the same way
    whether a key is being created or changed.

    ``current_limit_micro_p`` and ``current_expires_on`` are what the key has now (None
    for a new key): a value left as it is passes even if it could no longer be chosen
    (an expiry day already past, a limit above today's maximum), so changing one of the
    two never forces a change to the other.
    """

    spend_limit = StringField("Spending limit (P)", filters=[_strip], validators=[Optional()])
    expires_on = DateField("Expires on", validators=[Optional()],
                           render_kw={"type": "date"})

    def __init__(self, *args, tz: str = "UTC", current_limit_micro_p: int | None = None,
                 current_expires_on: date | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tz = tz
        self.current_limit_micro_p = current_limit_micro_p
        self.current_expires_on = current_expires_on

    def validate_spend_limit(self, field) -> None:
        if not field.data:
            return
        try:
            micro = parse_p(field.data)
        except InvalidNumber as exc:
            raise ValidationError(str(exc)) from None
        if micro == self.current_limit_micro_p:
            return
        if micro <= 0:
            raise ValidationError("The limit must be more than 0 P.")
        if micro > MAX_SPEND_LIMIT_P * MICRO_PER_P:
            raise ValidationError(f"The limit can be at most {MAX_SPEND_LIMIT_P:,} P.")

    def validate_expires_on(self, field) -> None:
        if field.data is None or field.data == self.current_expires_on:
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

    def limit_changes(self) -> dict:
        """What differs from the key's current limit and expiry, as the gateway's PATCH
        fields (None clears). An untouched expiry is not re-sent, so a key whose expiry
        was set to another moment of its last day keeps that exact moment."""
        changes: dict = {}
        limit = self.spend_limit_micro_p()
        if limit != self.current_limit_micro_p:
            changes["spend_limit_micro_p"] = limit
        if self.expires_on.data != self.current_expires_on:
            changes["expires_at"] = self.expires_at_iso()
        return changes


class KeyControlsMixin:
    """A budget per period, the model and IP allow-lists and the rate limits, checked the
    way the gateway checks them. ``models`` are the catalogue's ids (the picker's choices)."""

    budget = StringField("Budget (P)", filters=[_strip], validators=[Optional()])
    budget_period = SelectField("Resets", choices=[SelectChoice(value, label) for value, label in PERIODS], default="")
    allowed_models = SelectMultipleField("Allowed models", choices=[], validate_choice=False)
    allowed_ips = TextAreaField("Allowed IP addresses", filters=[_strip], validators=[Optional()])
    rpm_limit = StringField("Requests per minute", filters=[_strip], validators=[Optional()])
    tpm_limit = StringField("Tokens per minute", filters=[_strip], validators=[Optional()])

    def set_models(self, model_ids: list[str]) -> None:
        """The catalogue ids the picker offers."""
        self.model_ids = list(model_ids)
        self.allowed_models.choices = [SelectChoice(model_id, model_id) for model_id in model_ids]

    def validate_budget(self, field) -> None:
        try:
            micro = parse_p(field.data)
        except InvalidNumber as exc:
            raise ValidationError(str(exc)) from None
        if micro <= 0:
            raise ValidationError("The budget must be more than 0 P.")
        if micro > MAX_SPEND_LIMIT_P * MICRO_PER_P:
            raise ValidationError(f"The budget can be at most {MAX_SPEND_LIMIT_P:,} P.")
        if not self.budget_period.data:
            raise ValidationError("Choose when the budget resets: daily, weekly or monthly.")

    def validate_budget_period(self, field) -> None:
        if field.data not in {value for value, _ in PERIODS}:
            raise ValidationError("Choose daily, weekly or monthly.")
        if field.data and not self.budget.data:
            raise ValidationError("Give the budget in P above, or choose “No budget”.")

    def validate_allowed_models(self, field) -> None:
        known = set(getattr(self, "model_ids", []))
        unknown = [model for model in field.data or [] if model not in known]
        if unknown:
            raise ValidationError(f"Unknown model: {unknown[0][:100]}.")

    def validate_allowed_ips(self, field) -> None:
        _, problem = check_ip_text(field.data)
        if problem:
            raise ValidationError(problem)

    def validate_rpm_limit(self, field) -> None:
        try:
            parse_whole(field.data, MAX_RPM)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def validate_tpm_limit(self, field) -> None:
        try:
            parse_whole(field.data, MAX_TPM)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def controls(self) -> dict:
        """The validated controls as the gateway's fields (None and [] clear them)."""
        budget = parse_p(self.budget.data) if self.budget.data else None
        return {
            "budget_micro_p": budget,
            "budget_period": (self.budget_period.data or None) if budget is not None else None,
            "allowed_models": list(self.allowed_models.data or []),
            "allowed_ips": check_ip_text(self.allowed_ips.data)[0],
            "rpm_limit": parse_whole(self.rpm_limit.data, MAX_RPM),
            "tpm_limit": parse_whole(self.tpm_limit.data, MAX_TPM),
        }


def controls_data(key: dict) -> dict:
    """A key's controls as the form's initial values."""
    budget = key.get("budget_micro_p")
    return {
        "budget": limit_text(budget),
        "budget_period": key.get("budget_period") or "",
        "allowed_models": list(key.get("allowed_models") or []),
        "allowed_ips": ip_text(key.get("allowed_ips")),
        "rpm_limit": "" if key.get("rpm_limit") is None else f"{key['rpm_limit']:,}",
        "tpm_limit": "" if key.get("tpm_limit") is None else f"{key['tpm_limit']:,}",
    }


class CreateKeyForm(KeyNameMixin, KeyLimitsMixin, KeyControlsMixin, FlaskForm):
    """New key: name, optional spending limit in P, optional expiry date, optional controls."""


class KeyControlsForm(KeyControlsMixin, FlaskForm):
    """A key's budget, allow-lists and rate limits: empty fields remove them."""


class KeyLimitsForm(KeyLimitsMixin, FlaskForm):
    """A key's spending limit and expiry: empty fields remove them."""


class RenameKeyForm(KeyNameMixin, FlaskForm):
    """A new name for a key."""


def end_of_day_utc(day: date, tz: str) -> str:
    """Midnight after ``day`` in ``tz``, as an ISO 8601 UTC string."""
    local = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone(tz))
    return local.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def last_day(expires_at: str | None, tz: str) -> date | None:
    """The last local day in ``tz`` on which a key expiring at ``expires_at`` works.

    The inverse of ``end_of_day_utc``: a key that stops at the midnight after a day shows
    that day, not the date of the midnight itself. An expiry at any other moment (set
    through the API, or in another zone) shows the local date on which it falls.
    """
    moment = parse_iso(expires_at)
    if moment is None:
        return None
    local_date = moment.astimezone(zone(tz)).date()
    previous = local_date - timedelta(days=1)
    # Compared through end_of_day_utc rather than "local time is 00:00" so that zones
    # whose midnight is skipped by a DST change round-trip too.
    if parse_iso(end_of_day_utc(previous, tz)) == moment:
        return previous
    return local_date


def limit_text(micro_p: int | None) -> str:
    """A limit as the form shows it (``1,250.5``): exact, and read back unchanged by ``parse_p``."""
    if micro_p is None:
        return ""
    value = (Decimal(int(micro_p)) / MICRO_PER_P).normalize()
    return format(value, ",f")
