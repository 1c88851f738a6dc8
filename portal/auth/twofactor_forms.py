"""Forms for two-factor sign-in: the second sign-in step, enrolment and turning it off."""

from __future__ import annotations

from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ..security import PlainTextForm


class SecondStepForm(PlainTextForm):
    """The code from the authenticator app, or a recovery code."""

    code = StringField("Authentication code", validators=[
        DataRequired("Enter the 6-digit code from your app, or a recovery code."), Length(max=32)])


class EnableTwoFactorForm(PlainTextForm):
    """The first code the app shows, proving the QR code was scanned."""

    code = StringField("Code from the app", validators=[
        DataRequired("Enter the 6-digit code your app shows."), Length(max=16)])


class DisableTwoFactorForm(PlainTextForm):
    """Re-authentication before two-factor is turned off: password and a current code."""

    password = PasswordField("Current password", validators=[DataRequired("Enter your current password.")])
    code = StringField("Authentication code", validators=[
        DataRequired("Enter the 6-digit code from your app, or a recovery code."), Length(max=32)])
