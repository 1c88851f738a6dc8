"""The Health page's ledger check, kept for a minute instead of recomputed on every view.

The gateway's check (``GET /internal/admin/verify-ledger``) reads every ledger entry and
every request log row, so on a large database it is slow. One result per portal process
is kept for ``MAX_AGE``; the page says how old it is, and "Check again" runs it afresh.
One check runs at a time: a viewer who arrives while one is running waits for it and
shares its answer rather than starting another. A failed check is not kept.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from flask import Flask

from ..timeutil import utcnow

MAX_AGE = timedelta(seconds=60)


@dataclass(frozen=True)
class LedgerCheck:
    """One answer of the gateway's ledger check and when it was taken (naive UTC)."""

    report: dict
    checked_at: datetime

    def age_seconds(self, now: datetime | None = None) -> int:
        """Whole seconds since the check ran."""
        return max(0, int(((now or utcnow()) - self.checked_at).total_seconds()))


class LedgerCheckCache:
    """The newest ledger check of this process, refreshed when older than ``max_age``."""

    def __init__(self, max_age: timedelta = MAX_AGE) -> None:
        self.max_age = max_age
        self._latest: LedgerCheck | None = None
        self._lock = threading.Lock()

    def get(self, run_check: Callable[[], dict], fresh: bool = False) -> LedgerCheck:
        """The kept check while it is younger than ``max_age`` (and ``fresh`` is not asked
        for); otherwise ``run_check()``'s answer, kept from now on. Its exceptions pass through."""
        asked_at = utcnow()
        with self._lock:
            latest = self._latest
            if latest is not None:
                # A check that started after this request arrived is as fresh as one run now.
                if latest.checked_at > asked_at or (not fresh and asked_at - latest.checked_at < self.max_age):
                    return latest
            started = utcnow()
            self._latest = LedgerCheck(run_check(), started)
            return self._latest


def install(app: Flask) -> None:
    """Give ``app`` its ledger check cache."""
    app.extensions["ledger_check"] = LedgerCheckCache()


def ledger_checks(app: Flask) -> LedgerCheckCache:
    """The app's ledger check cache."""
    return app.extensions["ledger_check"]


def age_text(seconds: int) -> str:
    """How old a check is, as the page says it: "4 s ago", "2 min ago"."""
    if seconds < 60:
        return f"{seconds} s ago"
    return f"{seconds // 60} min ago"
