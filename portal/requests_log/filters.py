"""The request log's filters, read from the query string and checked before reaching the gateway."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from urllib.parse import urlencode

STATUS_CHOICES = (("", "Any status"), ("ok", "Succeeded"), ("error", "Failed"))
_CODE = re.compile(r"^[1-5][0-9]{2}$")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
FIELDS = ("key_id", "model", "status", "start", "end")
# What the filter bar gives back of a refused value: enough to see and correct the typo.
_ENTERED_MAX = 100


@dataclass(frozen=True)
class LogFilters:
    """Validated filters; ``errors`` says which were dropped and why.

    ``entered`` keeps what the user typed, so a refused filter is shown back in its
    input beside the message instead of vanishing; only the validated fields ever
    reach the gateway.
    """

    key_id: str = ""
    model: str = ""
    status: str = ""
    start: str = ""
    end: str = ""
    errors: tuple[str, ...] = ()
    entered: dict[str, str] = field(default_factory=dict, hash=False)

    def params(self) -> dict:
        """The filters as the gateway's query parameters (empty ones left out)."""
        return {k: v for k, v in (("key_id", self.key_id), ("model", self.model), ("status", self.status),
                                  ("start", self.start), ("end", self.end)) if v}

    def query(self, **extra: str) -> str:
        """A query string with these filters (and ``extra``), for links."""
        return urlencode({**self.params(), **{k: v for k, v in extra.items() if v}})

    def shown(self, name: str) -> str:
        """What the filter bar shows in the ``name`` input: the value in use, or the
        user's own text when it was refused."""
        return getattr(self, name) or self.entered.get(name, "")

    def refused(self, message: str) -> "LogFilters":
        """The same filters with one more message (the gateway's refusal), values kept."""
        return replace(self, errors=self.errors + (message,))

    @property
    def active(self) -> bool:
        return bool(self.params())


def key_choices(keys: list[dict]) -> list[tuple[str, str]]:
    """The key filter's choices: (key id, "name (masked key)") for each of the account's keys."""
    return [(k["id"], f'{k.get("name")} ({k.get("masked")})') for k in keys]


def _date(value: str, name: str, errors: list[str]) -> str:
    if not value:
        return ""
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        errors.append(f"The {name} date must look like 2026-11-25.")
        return ""


def parse_filters(args) -> LogFilters:
    """Read filters from request args; invalid ones are dropped with a message."""
    errors: list[str] = []
    entered = {name: (args.get(name) or "").strip()[:_ENTERED_MAX] for name in FIELDS if args.get(name)}
    key_id = (args.get("key_id") or "").strip()
    if key_id and not _ID.match(key_id):
        errors.append("Unknown key.")
        key_id = ""
    model = (args.get("model") or "").strip()
    if model and not _ID.match(model):
        errors.append("Unknown model.")
        model = ""
    status = (args.get("status") or "").strip().lower()
    if status and status not in ("ok", "error") and not _CODE.match(status):
        errors.append("Status must be Succeeded, Failed or an HTTP code like 429.")
        status = ""
    start = _date((args.get("start") or "").strip(), "from", errors)
    end = _date((args.get("end") or "").strip(), "to", errors)
    if start and end and start > end:
        errors.append("The from date must be on or before the to date.")
        start = end = ""
    return LogFilters(key_id, model, status, start, end, tuple(errors), entered)
