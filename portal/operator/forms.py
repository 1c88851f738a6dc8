"""Operator forms: every action needs a reason, which goes into the audit log."""

from __future__ import annotations

import uuid

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField, DateTimeLocalField, HiddenField, IntegerField, PasswordField, StringField, TextAreaField, ValidationError,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from ..money import InvalidNumber, parse_p, scaled_integer


def _strip(value: str | None) -> str:
    return (value or "").strip()


def _reason(label: str = "Reason") -> StringField:
    return StringField(label, filters=[_strip], validators=[
        DataRequired("Say why; the reason goes into the audit log."), Length(max=400)])


class ReasonForm(FlaskForm):
    """A confirmation with a reason: suspend, reactivate, revoke a key."""

    reason = _reason()


class SignedP:
    """A signed amount of P (“-12.5”, “+1,000”) into ``field.micro_p``; zero is refused."""

    def __call__(self, form, field) -> None:
        try:
            micro = parse_p(field.data)
        except InvalidNumber as exc:
            raise ValidationError(str(exc)) from None
        if micro == 0:
            raise ValidationError("Enter a non-zero amount: positive adds to the balance, negative takes away.")
        field.micro_p = micro


class AdjustForm(FlaskForm):
    """A balance adjustment; ``form_key`` is made when the form is shown, so a double submit posts once."""

    amount_p = StringField("Amount (P)", filters=[_strip],
                           validators=[DataRequired("Enter an amount in P, like 500 or -12.5."), SignedP()],
                           description="Positive credits the account, negative debits it.")
    reason = _reason()
    form_key = HiddenField(validators=[DataRequired("This form has expired; reload the page.")])

    def new_key(self) -> None:
        """Give a freshly shown form its own idempotency key."""
        self.form_key.data = str(uuid.uuid4())

    def validate_form_key(self, field) -> None:
        try:
            uuid.UUID(field.data)
        except (TypeError, ValueError):
            raise ValidationError("This form has expired; reload the page.") from None


class WholeNumberField(IntegerField):
    """An integer field read by ``money.scaled_integer``: ASCII digits (with , or _ between
    groups) only, bounded work for any input; anything else is a form error, never a 500."""

    def process_formdata(self, valuelist) -> None:
        if not valuelist:
            return
        try:
            self.data = scaled_integer((valuelist[0] or "").strip(), 0)
        except InvalidNumber:
            self.data = None
            raise ValueError(self.gettext("Not a valid integer value.")) from None


class PriceForm(FlaskForm):
    """A new price for one model, in P per 1M tokens."""

    input_price = WholeNumberField("Input (P per 1M)", validators=[
        InputRequired("Enter the input price as a whole number of P per 1M tokens."), NumberRange(0, 10**9)])
    output_price = WholeNumberField("Output (P per 1M)", validators=[
        InputRequired("Enter the output price as a whole number of P per 1M tokens."), NumberRange(0, 10**9)])
    # Empty: the model's cached input is charged at its input price.
    cache_read_price = WholeNumberField("Cache read (P per 1M)", validators=[Optional(), NumberRange(0, 10**9)])
    cache_write_price = WholeNumberField("Cache write 5 min (P per 1M)", validators=[Optional(), NumberRange(0, 10**9)])
    cache_write_1h_price = WholeNumberField("Cache write 1 h (P per 1M)", validators=[Optional(), NumberRange(0, 10**9)])
    # Empty: in force at once. Otherwise a later moment, in the operator's time zone.
    effective_from = DateTimeLocalField("In force from", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    reason = _reason()


class SwitchForm(FlaskForm):
    """Disable or enable a model."""

    enabled = BooleanField("Enabled", validators=[Optional()])
    reason = _reason()


class ChannelSwitchForm(FlaskForm):
    """Switch one channel off or on."""

    channel = HiddenField(validators=[DataRequired(), Length(max=200)])
    enabled = BooleanField("Enabled", validators=[Optional()])
    reason = _reason()


class ChannelTestForm(FlaskForm):
    """Send a one-token request over one channel."""

    channel = HiddenField(validators=[DataRequired(), Length(max=200)])


class ProviderKeyForm(FlaskForm):
    """A provider key entered in the console: sent to the gateway, never shown again."""

    key = PasswordField("New key", filters=[_strip], validators=[
        DataRequired("Paste the provider's key."), Length(min=8, max=500)])
    reason = _reason()


class ReplyForm(FlaskForm):
    """An e-mail answer to a support message."""

    body = TextAreaField("Reply", filters=[_strip], validators=[
        DataRequired("Write the reply."), Length(min=2, max=10000)])


class StateForm(FlaskForm):
    """Mark a support message answered or open again."""

    state = HiddenField(validators=[DataRequired()])
