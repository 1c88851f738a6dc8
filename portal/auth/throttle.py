"""Slowing down password guessing, per account, per address and per pair of both.

Policy (failed sign-ins, wrong second-step codes included, counted over the last hour):

* per account and address pair: the first 5 failures cost nothing; after that each new
  attempt must wait 2^(n-5) seconds after the previous failure, capped at 5 minutes.
* per address (whatever accounts it tries): the first 20 failures cost nothing; after
  that the same doubling, capped at 5 minutes.
* per account (from all addresses together): at most 100 failures an hour. Past that,
  attempts wait until the oldest failure is an hour old - except from a trusted device
  (a browser that completed a sign-in to this account before, see ``devices``), which
  only the two rules above apply to.

So guessing from one address gets about 20 tries an hour per account, and from many
addresses at most 100; someone failing on purpose from elsewhere never delays the owner
more than 5 minutes on a device the owner used before, and a successful sign-in (or a
password reset) clears the account's failures. Refused attempts (while waiting) are not
checked against the password and not counted.

Checking and counting are one step, so parallel guesses cannot all pass the check before
any failure is written: ``begin_attempt`` first commits the attempt as a failure, then
counts the other attempts (failures and attempts still in flight) to decide whether this
one may go ahead. Of any set of attempts that went ahead, the last one to commit saw all
the others, so no more than the policy allows are ever checked. An attempt that is
refused, or turns out right, removes its row again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import request

from ..extensions import db
from ..models import LoginAttempt
from ..timeutil import utcnow

WINDOW = timedelta(hours=1)
PAIR_FREE = 5
ADDRESS_FREE = 20
ACCOUNT_CEILING = 100
MAX_DELAY_SECONDS = 300


def _delay(failures: int, free: int) -> int:
    if failures < free:
        return 0
    return min(2 ** (failures - free), MAX_DELAY_SECONDS)


@dataclass(frozen=True)
class Attempt:
    """One sign-in attempt: ``wait`` seconds before trying again (0: go ahead and check)."""

    id: int | None
    wait: int


def client_ip() -> str:
    """The address attempts are counted under."""
    return request.remote_addr or "unknown"


def _stats(*conditions, exclude: int | None = None) -> tuple[int, object, object]:
    since = utcnow() - WINDOW
    if exclude is not None:
        conditions = (*conditions, LoginAttempt.id != exclude)
    row = db.session.execute(
        sa.select(sa.func.count(LoginAttempt.id), sa.func.max(LoginAttempt.created_at),
                  sa.func.min(LoginAttempt.created_at))
        .where(*conditions, LoginAttempt.created_at >= since)
    ).one()
    return int(row[0]), row[1], row[2]


def _remaining(until, now) -> int:
    seconds = int((until - now).total_seconds()) + 1
    return seconds if seconds > 0 else 0


def _seconds_to_wait(email: str, ip: str, trusted: bool, exclude: int | None) -> int:
    now = utcnow()
    wait = 0
    for conditions, free in (((LoginAttempt.email == email, LoginAttempt.ip == ip), PAIR_FREE),
                             ((LoginAttempt.ip == ip,), ADDRESS_FREE)):
        failures, last, _ = _stats(*conditions, exclude=exclude)
        delay = _delay(failures, free)
        if delay and last is not None:
            wait = max(wait, _remaining(last + timedelta(seconds=delay), now))
    if not trusted:
        failures, _, oldest = _stats(LoginAttempt.email == email, exclude=exclude)
        if failures >= ACCOUNT_CEILING and oldest is not None:
            wait = max(wait, _remaining(oldest + WINDOW, now))
    return wait


def begin_attempt(email: str, ip: str, trusted: bool = False) -> Attempt:
    """Record an attempt (as a failure until told otherwise), then decide whether it may go ahead.

    A refused attempt (``wait`` > 0) is removed again and must not be checked.
    """
    row = LoginAttempt(email=email[:254], ip=ip[:64])
    db.session.add(row)
    db.session.commit()
    attempt_id = row.id
    wait = _seconds_to_wait(email[:254], ip[:64], trusted, exclude=attempt_id)
    if wait:
        forget_attempt(Attempt(attempt_id, wait))
        return Attempt(None, wait)
    return Attempt(attempt_id, 0)


def forget_attempt(attempt: Attempt) -> None:
    """The attempt was not a failure after all (right password, waiting for the second step)."""
    if attempt.id is not None:
        db.session.execute(sa.delete(LoginAttempt).where(LoginAttempt.id == attempt.id))
        db.session.commit()


def clear_failures(email: str) -> None:
    """Forget the account's failures after a successful sign-in; prune old rows."""
    db.session.execute(sa.delete(LoginAttempt).where(LoginAttempt.email == email))
    db.session.execute(sa.delete(LoginAttempt).where(LoginAttempt.created_at < utcnow() - WINDOW))
    db.session.commit()
