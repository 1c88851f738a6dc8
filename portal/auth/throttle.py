"""Slowing down password guessing, per account and per client address.

Policy (failures counted over the last hour):

* per account (e-mail): the first 5 failures cost nothing; after that each new attempt
  must wait 2^(n-5) seconds after the previous failure, capped at 5 minutes. With the
  cap, an attacker gets about 20 guesses an hour, far below 100.
* per address: the first 20 failures cost nothing; after that the same doubling,
  capped at 5 minutes.
* never a lock-out longer than 5 minutes: the owner can always sign in after waiting,
  and a successful sign-in clears the account's failures.

Refused attempts (while waiting) are not checked against the password and not counted.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from ..extensions import db
from ..models import LoginAttempt
from ..timeutil import utcnow

WINDOW = timedelta(hours=1)
ACCOUNT_FREE = 5
ADDRESS_FREE = 20
MAX_DELAY_SECONDS = 300


def _delay(failures: int, free: int) -> int:
    if failures < free:
        return 0
    return min(2 ** (failures - free), MAX_DELAY_SECONDS)


def _stats(column, value: str) -> tuple[int, object]:
    since = utcnow() - WINDOW
    row = db.session.execute(
        sa.select(sa.func.count(LoginAttempt.id), sa.func.max(LoginAttempt.created_at))
        .where(column == value, LoginAttempt.created_at >= since)
    ).one()
    return int(row[0]), row[1]


def seconds_to_wait(email: str, ip: str) -> int:
    """How long this e-mail/address pair must wait before its next attempt (0: go ahead)."""
    now = utcnow()
    wait = 0
    for column, value, free in ((LoginAttempt.email, email, ACCOUNT_FREE), (LoginAttempt.ip, ip, ADDRESS_FREE)):
        failures, last = _stats(column, value)
        delay = _delay(failures, free)
        if delay and last is not None:
            remaining = int((last + timedelta(seconds=delay) - now).total_seconds()) + 1
            wait = max(wait, remaining if remaining > 0 else 0)
    return wait


def record_failure(email: str, ip: str) -> None:
    """Count one failed sign-in."""
    db.session.add(LoginAttempt(email=email[:254], ip=ip[:64]))
    db.session.commit()


def clear_failures(email: str) -> None:
    """Forget the account's failures after a successful sign-in; prune old rows."""
    db.session.execute(sa.delete(LoginAttempt).where(LoginAttempt.email == email))
    db.session.execute(sa.delete(LoginAttempt).where(LoginAttempt.created_at < utcnow() - WINDOW))
    db.session.commit()
