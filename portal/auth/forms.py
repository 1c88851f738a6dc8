"""Forms for signing up, confirming the address, signing in and resetting a password."""

from __future__ import annotations

from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

from ..security import PlainTextForm
from .passwords import MAX_LENGTH, password_problem


def _normalise_email(value: str | None) -> str:
    return (value or "").strip().lower()


class PasswordRules:
    """Validator applying ``password_problem`` (length and common-password list)."""

    def __call__(self, form, field) -> None:
        email = form.email.data if hasattr(form, "email") else None
        problem = password_problem(field.data or "", email)
        if problem:
            raise ValidationError(problem)


class SignupForm(PlainTextForm):
    """New account: e-mail, password, confirmation."""

    email = EmailField("E-mail", filters=[_normalise_email],
                       validators=[DataRequired("Enter your e-mail address."),
                                   Email("Enter a valid e-mail address.", check_deliverability=False),
                                   Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired("Choose a password."), PasswordRules()])
    confirm = PasswordField("Confirm password",
                            validators=[DataRequired("Type the password again."),
                                        EqualTo("password", "The passwords do not match.")])


class LoginForm(PlainTextForm):
    """Sign in with e-mail and password."""

    email = EmailField("E-mail", filters=[_normalise_email],
                       validators=[DataRequired("Enter your e-mail address."), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."),
                                                     Length(max=MAX_LENGTH * 4)])


class ResetRequestForm(PlainTextForm):
    """Ask for a reset link."""

    email = EmailField("E-mail", filters=[_normalise_email],
                       validators=[DataRequired("Enter your e-mail address."),
                                   Email("Enter a valid e-mail address.", check_deliverability=False),
                                   Length(max=254)])


class ResendConfirmationForm(PlainTextForm):
    """Ask for a new e-mail confirmation link."""

    email = EmailField("E-mail", filters=[_normalise_email],
                       validators=[DataRequired("Enter your e-mail address."),
                                   Email("Enter a valid e-mail address.", check_deliverability=False),
                                   Length(max=254)])


class ResetPasswordForm(PlainTextForm):
    """Choose a new password from a reset link."""

    password = PasswordField("New password", validators=[DataRequired("Choose a password."), PasswordRules()])
    confirm = PasswordField("Confirm new password",
                            validators=[DataRequired("Type the password again."),
                                        EqualTo("password", "The passwords do not match.")])
