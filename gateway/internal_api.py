"""The internal REST API the portal calls: accounts, ledger, keys, usage, request log.

Mounted as a sub-application under ``/internal`` so its bearer-token check and its
JSON error handling apply to it alone. Every input is validated here (400 for a body
that is not a JSON object or a malformed query, 422 for a field that breaks a rule,
404 for an unknown account or key); unexpected failures answer a bare JSON 500.
The contract is docs/internal-api.md and gateway/openapi.yaml.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import traceback
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Connection

from . import __version__, usage
from .appkeys import CATALOG, ENGINE, KEYS, SETTINGS, WRITER
from .auth import create_key, key_dict
from .db import Database, api_keys, utcnow
from .ledger import (
    POSTABLE_KINDS, AccountNotFound, IdempotencyConflict, create_account, entry_dict, get_account,
    list_entries, post_entry_async, set_account_status, signed_amount,
)
from .requestlog import CSV_COLUMNS, RequestFilter, csv_rows, query_requests, request_dict

log = logging.getLogger("samalink.gateway.internal")

MAX_AMOUNT = 10**15  # one billion P: far above any top-up, far below BigInteger's limit
MAX_RANGE_DAYS = 400
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
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
    except ApiError as exc:
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

async def _body(request: web.Request, allowed: set[str]) -> dict:
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise ApiError(400, "The body must be a JSON object.", "invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The body must be a JSON object.", "invalid_json")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(422, f"Unknown field: {unknown[0]}.", "unknown_field")
    return data


def _int_field(data: dict, name: str, low: int, high: int, required: bool = False) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(422, f"{name} is required.", "missing_field")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(422, f"{name} must be an integer.", "invalid_field")
    if not low <= value <= high:
        raise ApiError(422, f"{name} must be between {low} and {high}.", "invalid_field")
    return value


def _str_field(data: dict, name: str, max_len: int, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(422, f"{name} is required.", "missing_field")
        return None
    if not isinstance(value, str):
        raise ApiError(422, f"{name} must be a string.", "invalid_field")
    value = value.strip()
    if not value and required:
        raise ApiError(422, f"{name} must not be empty.", "invalid_field")
    if len(value) > max_len:
        raise ApiError(422, f"{name} must be at most {max_len} characters.", "invalid_field")
    return value


def _datetime_field(data: dict, name: str) -> datetime | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(422, f"{name} must be an ISO 8601 date-time string.", "invalid_field")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"{name} must be an ISO 8601 date-time, e.g. 2026-12-31T23:59:00Z.", "invalid_field") from None
    if parsed.tzinfo is None:
        raise ApiError(422, f"{name} must include a UTC offset, e.g. 2026-12-31T23:59:00Z.", "invalid_field")
    return parsed.astimezone(timezone.utc)


def _uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _account_id(request: web.Request) -> str:
    account_id = request.match_info["account_id"]
    if not _uuid(account_id):
        raise AccountNotFound(account_id)
    return account_id


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer.", "invalid_query") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}.", "invalid_query")
    return value


def _query_date(request: web.Request, name: str, required: bool) -> date | None:
    raw = request.query.get(name)
    if raw is None:
        if required:
            raise ApiError(400, f"{name} is required (YYYY-MM-DD).", "invalid_query")
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a date as YYYY-MM-DD.", "invalid_query") from None


def _zone(raw: Any, name: str, status: int, code: str) -> ZoneInfo:
    message = f"{name} must be an IANA time zone such as Europe/Berlin"
    if not isinstance(raw, str) or not raw:
        raise ApiError(status, f"{message}.", code)
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ApiError(status, f"{message}, got {raw[:64]!r}.", code) from None


def _query_tz(request: web.Request) -> ZoneInfo:
    return _zone(request.query.get("tz") or "UTC", "tz", 400, "invalid_query")


def encode_cursor(last_id: int) -> str:
    """An opaque cursor for the next page after row ``last_id``."""
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(request: web.Request) -> int | None:
    """The row id a cursor continues after, or None without one; 400 when malformed."""
    raw = request.query.get("cursor")
    if not raw:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "v1":
            raise ValueError(text)
        last_id = int(value)
        if last_id < 0:
            raise ValueError(text)
        return last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "cursor is not valid; use next_cursor from a previous page.", "invalid_query") from None


def _db(request: web.Request) -> Database:
    return request.config_dict[ENGINE]


async def _refresh_keys(request: web.Request) -> None:
    # The process that made the change applies it at once; the others within a poll.
    try:
        await request.config_dict[KEYS].refresh()
    except Exception:  # noqa: BLE001 - the regular poll catches up
        log.warning("key cache refresh after a change failed; the poll will catch up")


def account_dict(row: Any) -> dict:
    """An account row as the internal API shows it."""
    return {
        "id": row.id,
        "email": row.email,
        "external_id": row.external_id,
        "status": row.status,
        "balance_micro_p": row.balance_micro_p,
        "reserved_micro_p": row.leased_micro_p,
        "credited_micro_p": row.credited_micro_p,
        "spent_micro_p": row.spent_micro_p,
        "requests": row.requests,
        "usage_tz": row.usage_tz,
        "created_at": row.created_at,
    }


# --- health and catalogue -----------------------------------------------------------

async def health(request: web.Request) -> web.Response:
    """Liveness plus the database and the batch writer's state."""
    database_ok = await _db(request).run(_db(request).ping)
    writer = request.config_dict[WRITER]
    return json_response(
        {
            "status": "ok" if database_ok else "degraded",
            "version": __version__,
            "database": "ok" if database_ok else "unavailable",
            "queue_depth": writer.queue_depth,
            "last_flush_at": writer.last_flush_at,
        },
        status=200 if database_ok else 503,
    )


async def catalog(request: web.Request) -> web.Response:
    """Providers and models with prices in P per 1M tokens."""
    cat = request.config_dict[CATALOG]
    keys = request.config_dict[SETTINGS].upstream_keys
    configured = {name: bool(keys.get(p.api_key_env) or os.environ.get(p.api_key_env)) for name, p in cat.providers.items()}
    return json_response({
        "providers": [
            {"id": name, "name": p.display_name, "api": p.api, "configured": configured[name]}
            for name, p in cat.providers.items()
        ],
        "models": [
            {
                "id": m.id, "provider": m.provider, "provider_name": cat.providers[m.provider].display_name,
                "upstream": m.upstream, "kind": m.kind, "group": m.group,
                "input_price": m.input_price, "output_price": m.output_price,
                "priced": m.priced, "enabled": m.enabled,
                "available": m.priced and m.enabled and configured[m.provider],
            }
            for m in cat.models.values()
        ],
    })


# --- accounts and ledger --------------------------------------------------------------

async def post_account(request: web.Request) -> web.Response:
    """Create an account; idempotent on ``external_id``."""
    data = await _body(request, {"email", "external_id"})
    email = _str_field(data, "email", 320)
    if email and "@" not in email:
        raise ApiError(422, "email must be an e-mail address.", "invalid_field")
    external_id = _str_field(data, "external_id", 200)
    if external_id == "":
        raise ApiError(422, "external_id must not be empty.", "invalid_field")

    def work(conn: Connection) -> tuple[Any, bool]:
        return create_account(conn, email or None, external_id)

    try:
        row, created = await _db(request).transaction(work)
    except sa.exc.IntegrityError:
        # Two creations with one external_id raced; the retry finds the winner's row.
        row, created = await _db(request).transaction(work)
    return json_response(account_dict(row), status=201 if created else 200)


async def read_account(request: web.Request) -> web.Response:
    """Balance and totals."""
    account_id = _account_id(request)
    row = await _db(request).read(get_account, account_id)
    return json_response(account_dict(row))


async def patch_account(request: web.Request) -> web.Response:
    """Suspend or reactivate an account, or move its daily usage sums to another zone."""
    account_id = _account_id(request)
    data = await _body(request, {"status", "usage_tz"})
    if not data:
        raise ApiError(422, "Give status, usage_tz or both.", "invalid_field")
    status = data.get("status")
    if "status" in data and status not in ("active", "suspended"):
        raise ApiError(422, "status must be active or suspended.", "invalid_field")
    zone = None
    if "usage_tz" in data:
        zone = _zone(data["usage_tz"], "usage_tz", 422, "invalid_field")

    def work(conn: Connection) -> Any:
        get_account(conn, account_id)
        if zone is not None:
            usage.set_usage_zone(conn, account_id, zone)
        if status is not None:
            return set_account_status(conn, account_id, status)
        return get_account(conn, account_id)

    row = await _db(request).transaction(work)
    if status is not None:
        await _refresh_keys(request)
    return json_response(account_dict(row))


async def account_summary(request: web.Request) -> web.Response:
    """Balance, and cost and requests today and this month in ``tz``."""
    account_id = _account_id(request)
    tz = _query_tz(request)

    def work(conn: Connection) -> dict:
        row = get_account(conn, account_id)
        return {"balance_micro_p": row.balance_micro_p, "usage_tz": row.usage_tz, **usage.summary(conn, account_id, tz)}

    return json_response(await _db(request).read(work))


async def post_ledger(request: web.Request) -> web.Response:
    """Post a credit, debit, refund or adjustment under an idempotency key."""
    account_id = _account_id(request)
    data = await _body(request, {"kind", "amount_micro_p", "idempotency_key", "description"})
    kind = data.get("kind")
    if kind not in POSTABLE_KINDS:
        raise ApiError(422, f"kind must be one of {', '.join(POSTABLE_KINDS)}.", "invalid_field")
    amount = _int_field(data, "amount_micro_p", -MAX_AMOUNT, MAX_AMOUNT, required=True)
    key = _str_field(data, "idempotency_key", 200, required=True)
    if key.startswith("usage:"):
        raise ApiError(422, "idempotency_key must not start with usage: (reserved for metering).", "invalid_field")
    description = _str_field(data, "description", 500) or ""
    try:
        signed = signed_amount(kind, amount)
    except ValueError as exc:
        raise ApiError(422, f"{exc}.", "invalid_amount") from None
    try:
        entry, replayed = await post_entry_async(_db(request), account_id, kind, signed, key, description)
    except IdempotencyConflict:
        raise ApiError(409, "This idempotency_key was already used for a different entry.", "idempotency_conflict", "conflict_error") from None
    balance = await _db(request).read(lambda conn: get_account(conn, account_id).balance_micro_p)
    return json_response({"entry": entry, "balance_micro_p": balance}, status=200 if replayed else 201)


async def get_ledger(request: web.Request) -> web.Response:
    """Entries newest first, with keyset pagination."""
    account_id = _account_id(request)
    limit = _query_int(request, "limit", 50, 1, 200)
    before = decode_cursor(request)

    def work(conn: Connection) -> list[Any]:
        get_account(conn, account_id)
        return list_entries(conn, account_id, limit + 1, before)

    rows = await _db(request).read(work)
    page = rows[:limit]
    return json_response({
        "data": [entry_dict(r) for r in page],
        "next_cursor": encode_cursor(page[-1].id) if len(rows) > limit else None,
    })


# --- keys -------------------------------------------------------------------------------

def _key_row(conn: Connection, account_id: str, key_id: str) -> Any:
    get_account(conn, account_id)
    row = None
    if _uuid(key_id):
        row = conn.execute(
            sa.select(api_keys).where(api_keys.c.id == key_id, api_keys.c.account_id == account_id)
        ).first()
    if row is None:
        raise ApiError(404, "No API key with this id on this account.", "key_not_found", "not_found_error")
    return row


async def list_keys(request: web.Request) -> web.Response:
    """The account's keys, newest first (never the full key)."""
    account_id = _account_id(request)

    def work(conn: Connection) -> list[Any]:
        get_account(conn, account_id)
        return list(conn.execute(
            sa.select(api_keys).where(api_keys.c.account_id == account_id).order_by(api_keys.c.created_at.desc(), api_keys.c.id)
        ))

    return json_response({"data": [key_dict(r) for r in await _db(request).read(work)]})


def _limit_and_expiry(data: dict) -> dict:
    values: dict[str, Any] = {}
    if "spend_limit_micro_p" in data:
        values["spend_limit_micro_p"] = _int_field(data, "spend_limit_micro_p", 1, MAX_AMOUNT)
    if "expires_at" in data:
        expires = _datetime_field(data, "expires_at")
        if expires is not None and expires <= utcnow():
            raise ApiError(422, "expires_at must be in the future.", "invalid_field")
        values["expires_at"] = expires
    return values


async def post_key(request: web.Request) -> web.Response:
    """Create a key; the only answer that contains the full key."""
    account_id = _account_id(request)
    data = await _body(request, {"name", "spend_limit_micro_p", "expires_at"})
    name = _str_field(data, "name", 100, required=True)
    values = _limit_and_expiry(data)

    def work(conn: Connection) -> tuple[str, Any]:
        get_account(conn, account_id)
        return create_key(conn, account_id, name, values.get("spend_limit_micro_p"), values.get("expires_at"))

    key, row = await _db(request).transaction(work)
    return json_response({**key_dict(row), "key": key}, status=201)


async def patch_key(request: web.Request) -> web.Response:
    """Rename a key, or set or clear its spending limit and expiry."""
    account_id = _account_id(request)
    key_id = request.match_info["key_id"]
    data = await _body(request, {"name", "spend_limit_micro_p", "expires_at"})
    values = _limit_and_expiry(data)
    if "name" in data:
        values["name"] = _str_field(data, "name", 100, required=True)

    def work(conn: Connection) -> Any:
        _key_row(conn, account_id, key_id)
        if values:
            conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(**values, updated_at=utcnow()))
        return _key_row(conn, account_id, key_id)

    row = await _db(request).transaction(work)
    await _refresh_keys(request)
    return json_response(key_dict(row))


async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a key (idempotent); every gateway process refuses it within 2 s."""
    account_id = _account_id(request)
    key_id = request.match_info["key_id"]

    def work(conn: Connection) -> Any:
        row = _key_row(conn, account_id, key_id)
        if row.revoked_at is None:
            now = utcnow()
            conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now, updated_at=now))
        return _key_row(conn, account_id, key_id)

    row = await _db(request).transaction(work)
    await _refresh_keys(request)
    return json_response(key_dict(row))


# --- usage and the request log -------------------------------------------------------------

async def get_usage(request: web.Request) -> web.Response:
    """Totals, daily rows by model, and rows by model and by key over a local date range."""
    account_id = _account_id(request)
    start = _query_date(request, "start", required=True)
    end = _query_date(request, "end", required=True)
    tz = _query_tz(request)
    if end < start:
        raise ApiError(422, "end must not be before start.", "invalid_range")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise ApiError(422, f"The range may cover at most {MAX_RANGE_DAYS} days.", "invalid_range")

    def work(conn: Connection) -> dict:
        get_account(conn, account_id)
        return usage.usage_report(conn, account_id, start, end, tz)

    return json_response(await _db(request).read(work))


def request_filter(request: web.Request, account_id: str | None, *, cross_account: bool = False) -> RequestFilter:
    """The log filters in ``request``'s query string.

    ``cross_account`` (the operator console) also reads ``account_id`` and ``provider``.
    """
    q = request.query
    provider = None
    if cross_account:
        account_id = q.get("account_id") or None
        if account_id is not None and not _uuid(account_id):
            raise ApiError(400, "account_id must be an account id.", "invalid_query")
        provider = q.get("provider") or None
    key_id = q.get("key_id") or None
    if key_id is not None and not _uuid(key_id):
        raise ApiError(400, "key_id must be a key id.", "invalid_query")
    model = q.get("model") or None
    for name, value in (("provider", provider), ("model", model)):
        if value is not None and len(value) > 100:
            raise ApiError(400, f"{name} is too long.", "invalid_query")
    status = q.get("status") or None
    status_code: int | None = None
    if status is not None and status not in ("ok", "error"):
        try:
            status_code = int(status)
        except ValueError:
            raise ApiError(400, "status must be ok, error or an HTTP status code.", "invalid_query") from None
        if not 100 <= status_code <= 599:
            raise ApiError(400, "status must be ok, error or an HTTP status code.", "invalid_query")
        status = None
    start = _query_date(request, "start", required=False)
    end = _query_date(request, "end", required=False)
    tz = _query_tz(request)
    if start and end and end < start:
        raise ApiError(422, "end must not be before start.", "invalid_range")
    since = datetime.fromtimestamp(usage.local_midnight_utc(start, tz), timezone.utc) if start else None
    until = datetime.fromtimestamp(usage.local_midnight_utc(end + timedelta(days=1), tz), timezone.utc) if end else None
    return RequestFilter(account_id, key_id, model, status, status_code, since, until, provider)


async def list_requests(request: web.Request) -> web.Response:
    """The request log, newest first, filtered, one keyset page at a time."""
    account_id = _account_id(request)
    filters = request_filter(request, account_id)
    limit = _query_int(request, "limit", 50, 1, 200)
    before = decode_cursor(request)

    def work(conn: Connection) -> list[Any]:
        get_account(conn, account_id)
        return query_requests(conn, filters, limit + 1, before)

    rows = await _db(request).read(work)
    page = rows[:limit]
    return json_response({
        "data": [request_dict(r) for r in page],
        "next_cursor": encode_cursor(page[-1].id) if len(rows) > limit else None,
    })


async def export_requests(request: web.Request) -> web.StreamResponse:
    """The filtered request log as CSV, streamed page by page (memory stays flat)."""
    account_id = _account_id(request)
    filters = request_filter(request, account_id)
    db = _db(request)
    await db.read(get_account, account_id)
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="samalink-requests.csv"',
        "Cache-Control": "no-store",
    })
    await response.prepare(request)
    await response.write(csv_rows([CSV_COLUMNS]).encode())
    before: int | None = None
    while True:
        rows = await db.read(query_requests, filters, 1000, before)
        if not rows:
            break
        await response.write(csv_rows(request_csv_values(r) for r in rows).encode())
        before = rows[-1].id
        if len(rows) < 1000:
            break
    await response.write_eof()
    return response


def request_csv_values(row: Any) -> list:
    """One request log row as CSV values, in ``CSV_COLUMNS`` order."""
    data = request_dict(row)
    cost = data["cost_micro_p"]
    sign = "-" if cost < 0 else ""
    cost_p = f"{sign}{abs(cost) // 1_000_000}.{abs(cost) % 1_000_000:06d}"
    return [
        data["created_at"].strftime("%Y-%m-%dT%H:%M:%SZ"), data["request_id"], data["key_name"] or "",
        data["key_masked"] or "", data["model"], data["endpoint"], "true" if data["stream"] else "false",
        data["input_tokens"], data["output_tokens"], cost, cost_p, data["latency_ms"],
        "" if data["ttft_ms"] is None else data["ttft_ms"], data["status"], data["error_class"] or "",
        "true" if data["estimated"] else "false",
    ]


def create_internal_app() -> web.Application:
    """The ``/internal`` sub-application."""
    app = web.Application(middlewares=[errors_middleware, token_middleware])
    app.router.add_get("/health", health)
    app.router.add_get("/catalog", catalog)
    app.router.add_post("/accounts", post_account)
    app.router.add_get("/accounts/{account_id}", read_account)
    app.router.add_patch("/accounts/{account_id}", patch_account)
    app.router.add_get("/accounts/{account_id}/summary", account_summary)
    app.router.add_post("/accounts/{account_id}/ledger", post_ledger)
    app.router.add_get("/accounts/{account_id}/ledger", get_ledger)
    app.router.add_get("/accounts/{account_id}/keys", list_keys)
    app.router.add_post("/accounts/{account_id}/keys", post_key)
    app.router.add_patch("/accounts/{account_id}/keys/{key_id}", patch_key)
    app.router.add_delete("/accounts/{account_id}/keys/{key_id}", revoke_key)
    app.router.add_get("/accounts/{account_id}/usage", get_usage)
    app.router.add_get("/accounts/{account_id}/requests.csv", export_requests)
    app.router.add_get("/accounts/{account_id}/requests", list_requests)
    return app


def setup_routes(app: web.Application) -> None:
    """Mount the internal API under ``/internal``."""
    app.add_subapp("/internal", create_internal_app())

