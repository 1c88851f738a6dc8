"""What the internal and admin APIs share: the error answer, the middlewares that check
the token and shape every error, the parsers of bodies and query strings (400 for a
body that is not a JSON object or a malformed query, 422 for a field that breaks a
rule, 404 for an unknown account), keyset cursors and pages.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import traceback
import unicodedata
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from aiohttp import web

from samalink_common.limits import MAX_REPORT_DAYS

from ..accounting import usage
from ..accounting.ledger import AccountNotFound
from ..accounting.requestlog import RequestFilter
from ..appkeys import ENGINE, KEYS, SETTINGS
from ..db import Database

log = logging.getLogger("samalink.gateway.internal")

# Dates the reports accept: far beyond any real data, and far from date.min/date.max,
# where adding a day or shifting into a time zone would overflow.
MIN_YEAR, MAX_YEAR = 2000, 2999
# Row ids are 64-bit integers in the database.
MAX_ROW_ID = 2**63 - 1
# Longest digit string an integer query parameter may have (before any conversion).
MAX_INT_DIGITS = 18
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_INT_RE = re.compile(r"-?[0-9]{1,%d}" % MAX_INT_DIGITS)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# IANA names: letters, digits and _ + - / (no "..", checked by ZoneInfo itself).
_ZONE_RE = re.compile(r"[A-Za-z0-9_+\-/]+")
# A team member as the portal names one (its user id as text, or any short token of its own).
_MEMBER_ID_RE = re.compile(r"[A-Za-z0-9:_-]{1,36}")
MEMBER_ID_RULE = "member_id must be 1 to 36 characters of letters, digits, ':', '_' and '-'."


class HttpError(Exception):
    """An error answer: status, message, type and code."""

    def __init__(self, status: int, message: str, code: str, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type = status, message, code, type_


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_UTC_Z).decode()


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON answer with ISO 8601 UTC times (``…Z``)."""
    return web.json_response(data, status=status, dumps=_dumps)


def error_response(status: int, message: str, code: str, type_: str = "invalid_request_error") -> web.Response:
    """The internal API's error body."""
    return json_response({"error": {"message": message, "type": type_, "code": code}}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors → their status; anything unexpected → a JSON 500 without details."""
    try:
        return await handler(request)
    except HttpError as exc:
        return error_response(exc.status, exc.message, exc.code, exc.type)
    except AccountNotFound:
        return error_response(404, "No account with this id.", "account_not_found", "not_found_error")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, exc.reason, exc.reason.lower().replace(" ", "_"), "http_error")
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:  # noqa: BLE001 - the portal gets a clean 500, the log the class
        # The message itself is not logged: it may quote a body, a URL or a key.
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        log.error("internal API %s %s failed: %s at %s", request.method, request.rel_url.path, type(exc).__name__, where)
        return error_response(500, "The gateway could not complete this request.", "internal_error", "server_error")


@web.middleware
async def token_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require ``Authorization: Bearer $INTERNAL_API_TOKEN``, compared in constant time."""
    expected = request.config_dict[SETTINGS].internal_api_token.encode()
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
        return error_response(401, "Missing or wrong internal API token.", "unauthorized", "authentication_error")
    return await handler(request)


# --- input parsing ---------------------------------------------------------------

async def json_body(request: web.Request, allowed: set[str]) -> dict:
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise HttpError(400, "The body must be a JSON object.", "invalid_json") from None
    if not isinstance(data, dict):
        raise HttpError(400, "The body must be a JSON object.", "invalid_json")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise HttpError(422, f"Unknown field: {unknown[0]}.", "unknown_field")
    return data


def int_field(data: dict, name: str, low: int, high: int, required: bool = False) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise HttpError(422, f"{name} is required.", "missing_field")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise HttpError(422, f"{name} must be an integer.", "invalid_field")
    if not low <= value <= high:
        raise HttpError(422, f"{name} must be between {low} and {high}.", "invalid_field")
    return value


def str_field(data: dict, name: str, max_len: int, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise HttpError(422, f"{name} is required.", "missing_field")
        return None
    if not isinstance(value, str):
        raise HttpError(422, f"{name} must be a string.", "invalid_field")
    if not clean_text(value):
        raise HttpError(422, f"{name} must not contain control characters.", "invalid_field")
    value = value.strip()
    if not value and required:
        raise HttpError(422, f"{name} must not be empty.", "invalid_field")
    if len(value) > max_len:
        raise HttpError(422, f"{name} must be at most {max_len} characters.", "invalid_field")
    return value


def clean_text(value: str) -> bool:
    """True when ``value`` holds no control character and no lone surrogate.

    Databases refuse NUL (PostgreSQL) and surrogates cannot be encoded as UTF-8; the other
    control characters have no place in a name or note a person typed.
    """
    return not any(unicodedata.category(char) in ("Cc", "Cs") for char in value)


def datetime_field(data: dict, name: str) -> datetime | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise HttpError(422, f"{name} must be an ISO 8601 date-time string.", "invalid_field")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HttpError(422, f"{name} must be an ISO 8601 date-time, e.g. 2026-12-31T23:59:00Z.", "invalid_field") from None
    if parsed.tzinfo is None:
        raise HttpError(422, f"{name} must include a UTC offset, e.g. 2026-12-31T23:59:00Z.", "invalid_field")
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise HttpError(422, f"{name} must be in the years {MIN_YEAR} to {MAX_YEAR}.", "invalid_field")
    return parsed.astimezone(timezone.utc)


def member_id_value(value: Any) -> str:
    """``value`` when it is a valid member id; 400 ``invalid_member_id`` otherwise."""
    if not isinstance(value, str) or not _MEMBER_ID_RE.fullmatch(value):
        raise HttpError(400, MEMBER_ID_RULE, "invalid_member_id")
    return value


def member_id_field(data: dict) -> str | None:
    """The optional ``member_id`` of a JSON body (null: none); 400 when malformed."""
    value = data.get("member_id")
    return None if value is None else member_id_value(value)


def member_id_param(request: web.Request) -> str:
    """The ``{member_id}`` of the path; 400 when malformed."""
    return member_id_value(request.match_info["member_id"])


def query_member_id(request: web.Request) -> str | None:
    """The ``member_id`` filter of the query string (absent or empty: none); 400 when malformed."""
    raw = request.query.get("member_id")
    return member_id_value(raw) if raw else None


async def refresh_keys(request: web.Request) -> None:
    """Apply a key or account change in this process's key cache at once (the other
    processes apply it within a poll)."""
    try:
        await request.config_dict[KEYS].refresh()
    except Exception:  # noqa: BLE001 - the regular poll catches up
        log.warning("key cache refresh after a change failed; the poll will catch up")


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def account_id_param(request: web.Request) -> str:
    account_id = request.match_info["account_id"]
    if not is_uuid(account_id):
        raise AccountNotFound(account_id)
    return account_id


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not _INT_RE.fullmatch(raw):
        raise HttpError(400, f"{name} must be an integer.", "invalid_query")
    value = int(raw)
    if not low <= value <= high:
        raise HttpError(400, f"{name} must be between {low} and {high}.", "invalid_query")
    return value


def query_date(request: web.Request, name: str, required: bool) -> date | None:
    raw = request.query.get(name)
    if raw is None:
        if required:
            raise HttpError(400, f"{name} is required (YYYY-MM-DD).", "invalid_query")
        return None
    if not _DATE_RE.fullmatch(raw):
        raise HttpError(400, f"{name} must be a date as YYYY-MM-DD.", "invalid_query")
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise HttpError(400, f"{name} must be a date as YYYY-MM-DD.", "invalid_query") from None
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise HttpError(400, f"{name} must be a date in the years {MIN_YEAR} to {MAX_YEAR}.", "invalid_query")
    return value


def zone(raw: Any, name: str, status: int, code: str) -> ZoneInfo:
    message = f"{name} must be an IANA time zone such as Europe/Berlin"
    if not isinstance(raw, str) or not raw or len(raw) > 64 or not _ZONE_RE.fullmatch(raw):
        raise HttpError(status, f"{message}.", code)
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise HttpError(status, f"{message}, got {raw[:64]!r}.", code) from None


def query_tz(request: web.Request) -> ZoneInfo:
    return zone(request.query.get("tz") or "UTC", "tz", 400, "invalid_query")


def encode_cursor(last_id: int) -> str:
    """An opaque cursor for the next page after row ``last_id``."""
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(request: web.Request) -> int | None:
    """The row id a cursor continues after, or None without one; 400 when malformed."""
    raw = request.query.get("cursor")
    if not raw:
        return None
    invalid = HttpError(400, "cursor is not valid; use next_cursor from a previous page.", "invalid_query")
    if len(raw) > 64:
        raise invalid
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "v1":
            raise ValueError(text)
        if prefix != "v1" or not value.isascii() or not value.isdigit() or len(value) > 19:
            raise ValueError(text)
        last_id = int(value)
        if last_id > MAX_ROW_ID:
            raise ValueError(text)
        return last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid from None


def database(request: web.Request) -> Database:
    return request.config_dict[ENGINE]


def query_date_range(request: web.Request) -> tuple[date, date]:
    """The required ``start`` and ``end`` dates, in order, covering at most ``MAX_REPORT_DAYS`` days."""
    start = query_date(request, "start", required=True)
    end = query_date(request, "end", required=True)
    if end < start:
        raise HttpError(422, "end must not be before start.", "invalid_range")
    if (end - start).days + 1 > MAX_REPORT_DAYS:
        raise HttpError(422, f"The range may cover at most {MAX_REPORT_DAYS} days.", "invalid_range")
    return start, end


def keyset_page(rows: Sequence[Any], limit: int, to_dict: Callable[[Any], dict]) -> web.Response:
    """One page of ``rows`` read as ``limit + 1`` newest first, with the cursor to the next."""
    page = rows[:limit]
    return json_response({
        "data": [to_dict(r) for r in page],
        "next_cursor": encode_cursor(page[-1].id) if len(rows) > limit else None,
    })


def request_filter(request: web.Request, account_id: str | None, *, cross_account: bool = False) -> RequestFilter:
    """The log filters in ``request``'s query string.

    ``cross_account`` (the operator console) also reads ``account_id``, ``provider`` and
    ``flagged``; a customer's log also ``member_id`` (a team member's keys only).
    """
    q = request.query
    provider = None
    flagged = False
    if cross_account:
        account_id = q.get("account_id") or None
        if account_id is not None and not is_uuid(account_id):
            raise HttpError(400, "account_id must be an account id.", "invalid_query")
        provider = q.get("provider") or None
        if q.get("flagged") not in (None, "", "true", "false"):
            raise HttpError(400, "flagged must be true or false.", "invalid_query")
        flagged = q.get("flagged") == "true"
    key_id = q.get("key_id") or None
    if key_id is not None and not is_uuid(key_id):
        raise HttpError(400, "key_id must be a key id.", "invalid_query")
    model = q.get("model") or None
    for name, value in (("provider", provider), ("model", model)):
        if value is not None and len(value) > 100:
            raise HttpError(400, f"{name} is too long.", "invalid_query")
        if value is not None and not clean_text(value):
            raise HttpError(400, f"{name} must not contain control characters.", "invalid_query")
    status = q.get("status") or None
    status_code: int | None = None
    if status is not None and status not in ("ok", "error"):
        if not (status.isascii() and status.isdigit() and len(status) == 3):
            raise HttpError(400, "status must be ok, error or an HTTP status code.", "invalid_query")
        status_code = int(status)
        if not 100 <= status_code <= 599:
            raise HttpError(400, "status must be ok, error or an HTTP status code.", "invalid_query")
        status = None
    start = query_date(request, "start", required=False)
    end = query_date(request, "end", required=False)
    tz = query_tz(request)
    if start and end and end < start:
        raise HttpError(422, "end must not be before start.", "invalid_range")
    since = datetime.fromtimestamp(usage.local_midnight_utc(start, tz), timezone.utc) if start else None
    until = datetime.fromtimestamp(usage.local_midnight_utc(end + timedelta(days=1), tz), timezone.utc) if end else None
    member_id = None if cross_account else query_member_id(request)
    return RequestFilter(account_id, key_id, model, status, status_code, since, until, provider, flagged, member_id)
