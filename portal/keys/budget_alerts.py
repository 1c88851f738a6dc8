"""Budget alert e-mails: a key's spend, or a team member's, reached 80 % or 100 % of its
budget period.

The gateway records each share once per period (``budget_80``, ``budget_100`` on
``GET /internal/events``); the event worker hands them here, inside the transaction that
moves its cursor, and the mail goes to the account's recipients through the outbox.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from .. import events
from ..extensions import db
from ..gateway_client import gateway
from ..mail import queue_mail
from ..models import User
from ..money import format_p
from ..teams import recipients
from ..teams.models import Team
from ..timeutil import parse_iso, zone

SHARES = {"budget_80": 80, "budget_100": 100}
PERIOD_WORDS = {"day": "daily", "week": "weekly", "month": "monthly"}


def budget_alert_subject(share: int, key_name: str | None) -> str:
    """The subject line: which key, and how much of its budget is gone."""
    subject = f'Your SAMALink key "{key_name}"' if key_name else "A SAMALink budget"
    return f"{subject} has used {share}% of its budget" if share < 100 else f"{subject} has used up its budget"


def share_text(event: dict) -> str:
    """How much of the budget is gone: the share reached, or, for a budget that began
    refusing calls with a little left (the gateway's ``budget_used_up``), that it is used up."""
    share = SHARES[event["kind"]]
    left = event["budget_micro_p"] - event["spent_micro_p"]
    if share >= 100 and left > 0:
        return f"used up: the {format_p(left)} left is less than a call needs"
    return f"{share}% reached"


def reset_text(resets_at: datetime | None, tz: str) -> str:
    """When the budget starts again, in the reader's zone (``Mon 1 Jun 2026, 00:00 (Europe/Berlin)``)."""
    if resets_at is None:
        return "when its period ends"
    reader_zone = zone(tz)  # an unknown name falls back to UTC, and the mail says so
    local = resets_at.astimezone(reader_zone)
    return f"on {local.strftime('%a %-d %b %Y, %H:%M')} ({reader_zone.key})"


def budget_alert_body(event: dict, key: dict | None, tz: str) -> str:
    """The mail's text for one recipient: the key, the budget, the spend and the reset."""
    share = SHARES[event["kind"]]
    period = PERIOD_WORDS.get((key or {}).get("budget_period") or "", "")
    budget = format_p(event["budget_micro_p"])
    spent = format_p(event["spent_micro_p"])
    if key is not None:
        who = f'Your key "{key["name"]}" ({key["masked"]})'
    else:
        who = "A budget on your SAMALink account"
    lines = [f"{who} has spent {spent} of its {period + ' ' if period else ''}budget of {budget} ({share_text(event)})."]
    if share >= 100:
        lines.append("Calls charged to this budget are refused with 402 until it resets.")
    lines.append(f"The budget resets {reset_text(parse_iso(event.get('resets_at')), tz)}.")
    base = current_app.config["LINK_BASE_URL"].rstrip("/")
    lines.append("")
    lines.append("See the key, or change its budget, here:")
    lines.append(f"{base}/keys/{event['subject_id']}" if key is not None else f"{base}/keys")
    lines.append("")
    lines.append("You get this once per budget period at 80% and once at 100%.")
    return "\n".join(lines) + "\n"


def _key_of(event: dict) -> dict | None:
    """The key the event is about, as the gateway lists it (None: not a key, or gone)."""
    if event.get("subject_kind") != "key":
        return None
    for key in gateway().list_keys(event["account_id"]):
        if key.get("id") == event.get("subject_id"):
            return key
    return None


def _member_of(event: dict) -> tuple[User, Team] | None:
    """The team member and team a member-budget event is about (None: not one, or gone)."""
    subject_id = event.get("subject_id") or ""
    if event.get("subject_kind") != "member" or not subject_id.isdigit():
        return None
    team = db.session.scalar(sa.select(Team).where(Team.account_id == event["account_id"]))
    user = db.session.get(User, int(subject_id)) if int(subject_id) < 2**31 else None
    return (user, team) if user is not None and team is not None else None


def member_alert_subject(share: int, member: User, team: Team) -> str:
    """The subject line of a member's spend cap alert."""
    subject = f'The spend cap of {member.email} in "{team.name}"'
    return f"{subject} has used {share}% of its budget" if share < 100 else f"{subject} has been reached"


def member_alert_body(event: dict, member: User, team: Team, tz: str) -> str:
    """The mail's text for one recipient: whose cap, the budget, the spend and the reset."""
    share = SHARES[event["kind"]]
    lines = [f'The spend cap of {member.email} in the team "{team.name}" is {format_p(event["spent_micro_p"])} spent '
             f'of {format_p(event["budget_micro_p"])} ({share_text(event)}).']
    if share >= 100:
        lines.append("Calls through their keys in the team are refused with 402 until it resets.")
    lines.append(f"The cap resets {reset_text(parse_iso(event.get('resets_at')), tz)}.")
    base = current_app.config["LINK_BASE_URL"].rstrip("/")
    lines += ["", "See the team's members and caps here:", f"{base}/team?account={team.id}", "",
              "You get this once per period at 80% and once at 100%."]
    return "\n".join(lines) + "\n"


def mail_budget_alert(event: dict) -> None:
    """The event worker's handler of ``budget_80`` and ``budget_100``: mail every recipient
    (for a member's cap, the member as well)."""
    share = SHARES[event["kind"]]
    if event.get("subject_kind") == "member":
        found = _member_of(event)
        if found is None:
            return
        member, team = found
        readers = {user.id: user for user in [*recipients(event["account_id"]), member]}
        for user in readers.values():
            queue_mail(user.email, member_alert_subject(share, member, team),
                       member_alert_body(event, member, team, user.tz))
        return
    key = _key_of(event)
    subject = budget_alert_subject(share, key["name"] if key else None)
    for user in recipients(event["account_id"]):
        queue_mail(user.email, subject, budget_alert_body(event, key, user.tz))


for _kind in SHARES:
    events.on(_kind, mail_budget_alert)
