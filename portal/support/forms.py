"""The contact form."""

from __future__ import annotations

from wtforms import EmailField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length

from ..security import PlainTextForm

TOPICS = (("billing", "Billing"), ("api", "API access"), ("account", "My account"), ("other", "Something else"))


def _strip(value: str | None) -> str:
    return (value or "").strip()


class SupportForm(PlainTextForm):
    """Who is writing, about what, and the message."""

    email = EmailField("Your e-mail", filters=[_strip],
                       validators=[DataRequired("Enter the address we should answer."),
                                   Email("Enter a valid e-mail address.", check_deliverability=False),
                                   Length(max=254)])
    topic = SelectField("Topic", choices=[SelectChoice(value, label) for value, label in TOPICS], validators=[DataRequired()])
    subject = StringField("Subject", filters=[_strip],
                          validators=[DataRequired("Add a short subject."), Length(max=200)])
    message = TextAreaField("Message", filters=[_strip],
                            validators=[DataRequired("Tell us what happened."),
                                        Length(min=10, max=10000, message="Write between 10 and 10,000 characters.")])
