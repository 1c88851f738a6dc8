"""Forms for two-factor sign-in: the second sign-in step, enrolment and turning it off."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length


class SecondStepForm(FlaskForm):
    """The code from the authenticator app, or a recovery code."""

    code = StringField("Authentication code", validators=[
        DataRequired("Enter the 6-digit code from your app, or a recovery code."), Length(max=32)])


class EnableTwoFactorForm(FlaskForm):
    """The first code the app shows, proving the QR code was scanned."""

    code = StringField("Code from the app", validators=[
        DataRequired("Enter the 6-digit code your app shows."), Length(max=16)])


class DisableTwoFactorForm(FlaskForm):
    """Re-authentication before two-factor is turned off: password and a current code."""

    password = PasswordField("Current password", validators=[DataRequired("Enter your current password.")])
    code = StringField("Authentication code", validators=[
        DataRequired("Enter the 6-digit code from your app, or a recovery code."), Length(max=32)])
