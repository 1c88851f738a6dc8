"""Forms on the Settings page."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, ValidationError

from ..auth.forms import PasswordRules
from ..timeutil import is_valid_zone, zone_choices


class TimezoneForm(FlaskForm):
    """The zone that dates and day boundaries use."""

    timezone = SelectField("Time zone", validate_choice=False,
                           validators=[DataRequired("Choose a time zone.")])

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.timezone.choices = [SelectChoice(z, z.replace("_", " ")) for z in zone_choices()]

    def validate_timezone(self, field) -> None:
        if not is_valid_zone(field.data or ""):
            raise ValidationError("Choose a time zone from the list.")


class ChangePasswordForm(FlaskForm):
    """Current password, then the new one twice."""

    current_password = PasswordField("Current password", validators=[DataRequired("Enter your current password.")])
    password = PasswordField("New password", validators=[DataRequired("Choose a new password."), PasswordRules()])
    confirm = PasswordField("Confirm new password",
                            validators=[DataRequired("Type the new password again."),
                                        EqualTo("password", "The passwords do not match.")])
