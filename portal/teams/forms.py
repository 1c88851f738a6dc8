"""Forms for creating a team and inviting someone into it."""

from __future__ import annotations

from wtforms import EmailField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length

from ..keys.forms import KeyControlsMixin
from ..money import parse_p
from ..security import PlainTextForm
from .models import GRANTABLE, ROLE_HINTS, ROLE_LABELS


def _strip(value: str | None) -> str:
    return (value or "").strip()


def _lower(value: str | None) -> str:
    return (value or "").strip().lower()


class CreateTeamForm(PlainTextForm):
    """A new team's name."""

    name = StringField("Team name", filters=[_strip],
                       validators=[DataRequired("Give the team a name."),
                                   Length(max=80, message="Use at most 80 characters.")])


class InviteForm(PlainTextForm):
    """Whom to invite, and in which role."""

    email = EmailField("E-mail", filters=[_lower],
                       validators=[DataRequired("Enter the e-mail address to invite."),
                                   Email("Enter a valid e-mail address.", check_deliverability=False),
                                   Length(max=254)])
    role = SelectField("Role", choices=[SelectChoice(role, f"{ROLE_LABELS[role]}: {ROLE_HINTS[role]}")
                                        for role in GRANTABLE],
                       default="developer")


class MemberBudgetForm(PlainTextForm):
    """A member's spend cap: P per period, checked as a key budget is (both empty removes it)."""

    budget = KeyControlsMixin.budget
    budget_period = KeyControlsMixin.budget_period
    validate_budget = KeyControlsMixin.validate_budget
    validate_budget_period = KeyControlsMixin.validate_budget_period

    def cap(self) -> tuple[int | None, str | None]:
        """The cap as the gateway takes it: micro-P and period, or None and None."""
        if not self.budget.data:
            return None, None
        return parse_p(self.budget.data), self.budget_period.data or None
