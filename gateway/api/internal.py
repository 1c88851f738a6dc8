"""The internal REST API the portal calls: accounts, ledger, keys, usage, request log.

Mounted as a sub-application under ``/internal`` so its bearer-token check and its
JSON error handling (``http``) apply to it alone. Every input is validated (400 for a
body that is not a JSON object or a malformed query, 422 for a field that breaks a
rule, 404 for an unknown account or key); unexpected failures answer a bare JSON 500.
The contract is docs/internal-api.md and gateway/openapi.yaml.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import orjson
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Connection

from .. import __version__
from ..accounting import events, usage
from ..accounting.budgets import set_budget
from ..accounting.ledger import (
    POSTABLE_KINDS, IdempotencyConflict, account_dict, create_account, entry_dict, get_account, list_entries,
    post_entry_async, set_account_status, signed_amount,
)
from ..accounting.metering import dead_letter_count
from ..accounting.pricing import prices_at
from ..accounting.requestlog import CSV_COLUMNS, csv_rows, query_requests, request_csv_values, request_dict
from ..appkeys import CATALOG, SETTINGS, WRITER
from ..auth import create_key, key_dict
from ..catalog import CACHE_PRICES, SIMULATED_API, Catalog, Model
from ..db import accounts, api_keys, utcnow
from ..key_controls import BUDGET_PERIODS, MAX_ALLOWED_MODELS, InvalidIpEntry, normalise_ip_list
from . import books as books_api
from . import events as events_api
from . import members as members_api
from .http import (
    HttpError, account_id_param, database, datetime_field, decode_cursor, errors_middleware, int_field,
    is_uuid, json_body, json_response, keyset_page, member_id_field, query_date_range, query_int, query_member_id,
    query_tz, refresh_keys, request_filter, str_field, token_middleware, zone,
)

log = logging.getLogger("samalink.gateway.internal")

MAX_AMOUNT = 10**15  # one billion P: far above any top-up, far below BigInteger's limit
MAX_RPM = 10_000_000
MAX_TPM = 10**12
KEY_FIELDS = {"name", "spend_limit_micro_p", "expires_at", "budget_micro_p", "budget_period", "allowed_models",
              "allowed_ips", "rpm_limit", "tpm_limit"}
# A key's member is given when it is created and never changed.
NEW_KEY_FIELDS = KEY_FIELDS | {"member_id"}


# --- health and catalogue -----------------------------------------------------------

async def health(request: web.Request) -> web.Response:
    """Liveness plus the database and the batch writer's state.

    503 ``degraded`` when the database does not answer or when flushes have kept failing
    for longer than ``GATEWAY_FLUSH_ALERT_SECONDS``: calls are then answered but not
    yet recorded or charged, which monitoring must see.
    """
    db = database(request)
    writer = request.config_dict[WRITER]
    try:
        dead = await db.read(dead_letter_count)
        database_ok = True
    except sa.exc.SQLAlchemyError:
        dead, database_ok = None, False
    stalled = writer.failing_for() > request.config_dict[SETTINGS].flush_alert_seconds
    healthy = database_ok and not stalled
    return json_response(
        {
            "status": "ok" if healthy else "degraded",
            "version": __version__,
            "database": "ok" if database_ok else "unavailable",
            "queue_depth": writer.queue_depth,
            "last_flush_at": writer.last_flush_at,
            "failed_flushes": writer.failed_flushes,
            "dead_letters": dead,
        },
        status=200 if healthy else 503,
    )


def _cache_and_tier_prices(model: Model) -> dict:
    """A model's effective cache prices and tiers, fallbacks applied (null cache prices when unpriced)."""
    if not model.priced:
        return {**dict.fromkeys(CACHE_PRICES), "tiers": []}
    base = prices_at(model, 0)
    tiers = [prices_at(model, tier.above_input_tokens + 1) for tier in model.tiers]
    return {
        "cache_read_price": base.cache_read, "cache_write_price": base.cache_write,
        "cache_write_1h_price": base.cache_write_1h,
        "tiers": [
            {"above_input_tokens": t.tier, "input_price": t.input, "output_price": t.output,
             "cache_read_price": t.cache_read, "cache_write_price": t.cache_write,
             "cache_write_1h_price": t.cache_write_1h}
            for t in tiers
        ],
    }


async def catalog(request: web.Request) -> web.Response:
    """Providers and models with prices in P per 1M tokens, cache prices and long-context tiers included."""
    cat = request.config_dict[CATALOG]
    keys = request.config_dict[SETTINGS].upstream_keys
    configured = {name: p.api == SIMULATED_API or bool(keys.get(p.api_key_env) or os.environ.get(p.api_key_env))
                  for name, p in cat.providers.items()}
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
                **_cache_and_tier_prices(m),
                "priced": m.priced, "enabled": m.enabled,
                "available": m.priced and m.enabled and configured[m.provider],
            }
            for m in cat.models.values()
        ],
    })


# --- accounts and ledger --------------------------------------------------------------

async def post_account(request: web.Request) -> web.Response:
    """Create an account; idempotent on ``external_id``."""
    data = await json_body(request, {"email", "external_id"})
    email = str_field(data, "email", 320)
    if email and "@" not in email:
        raise HttpError(422, "email must be an e-mail address.", "invalid_field")
    external_id = str_field(data, "external_id", 200)
    if external_id == "":
        raise HttpError(422, "external_id must not be empty.", "invalid_field")

    def work(conn: Connection) -> tuple[Any, bool]:
        return create_account(conn, email or None, external_id)

    try:
        row, created = await database(request).transaction(work)
    except sa.exc.IntegrityError:
        # Two creations with one external_id raced; the retry finds the winner's row.
        row, created = await database(request).transaction(work)
    return json_response(account_dict(row), status=201 if created else 200)


async def read_account(request: web.Request) -> web.Response:
    """Balance and totals."""
    account_id = account_id_param(request)

    def work(conn: Connection) -> dict:
        return _account_with_thresholds(conn, get_account(conn, account_id))

    return json_response(await database(request).read(work))


def _account_with_thresholds(conn: Connection, row: Any) -> dict:
    return {**account_dict(row), "thresholds": events.thresholds(conn, row.id)}


async def patch_account(request: web.Request) -> web.Response:
    """Suspend or reactivate an account, move its daily usage sums to another zone, set its
    account-wide requests and tokens per minute, or set or clear (null) its low-balance and
    auto top-up thresholds."""
    account_id = account_id_param(request)
    threshold_fields = {f"{name}_threshold_micro_p": name for name in events.THRESHOLD_NAMES}
    data = await json_body(request, {"status", "usage_tz", "rpm_limit", "tpm_limit", *threshold_fields})
    if not data:
        raise HttpError(422, "Give status, usage_tz, rpm_limit, tpm_limit or a threshold.", "invalid_field")
    limits = {name: int_field(data, name, 1, high) for name, high in (("rpm_limit", MAX_RPM), ("tpm_limit", MAX_TPM))
              if name in data}
    new_thresholds = {name: int_field(data, field, 1, MAX_AMOUNT)
                      for field, name in threshold_fields.items() if field in data}
    status = data.get("status")
    if "status" in data and status not in ("active", "suspended"):
        raise HttpError(422, "status must be active or suspended.", "invalid_field")
    new_zone = None
    if "usage_tz" in data:
        new_zone = zone(data["usage_tz"], "usage_tz", 422, "invalid_field")

    def work(conn: Connection) -> Any:
        get_account(conn, account_id)
        if new_zone is not None:
            usage.set_usage_zone(conn, account_id, new_zone)
        if limits:
            conn.execute(accounts.update().where(accounts.c.id == account_id).values(**limits, updated_at=utcnow()))
        for name, threshold in new_thresholds.items():
            events.set_threshold(conn, account_id, name, threshold)
        row = set_account_status(conn, account_id, status) if status is not None else get_account(conn, account_id)
        return _account_with_thresholds(conn, row)

    answer = await database(request).transaction(work)
    if status is not None or limits:
        await refresh_keys(request)
    return json_response(answer)


async def account_summary(request: web.Request) -> web.Response:
    """Balance, and cost and requests today and this month in ``tz``."""
    account_id = account_id_param(request)
    tz = query_tz(request)

    def work(conn: Connection) -> dict:
        row = get_account(conn, account_id)
        return {"balance_micro_p": row.balance_micro_p, "usage_tz": row.usage_tz, **usage.summary(conn, account_id, tz)}

    return json_response(await database(request).read(work))


async def post_ledger(request: web.Request) -> web.Response:
    """Post a credit, debit, refund or adjustment under an idempotency key."""
    account_id = account_id_param(request)
    data = await json_body(request, {"kind", "amount_micro_p", "idempotency_key", "description"})
    kind = data.get("kind")
    if kind not in POSTABLE_KINDS:
        raise HttpError(422, f"kind must be one of {', '.join(POSTABLE_KINDS)}.", "invalid_field")
    amount = int_field(data, "amount_micro_p", -MAX_AMOUNT, MAX_AMOUNT, required=True)
    key = str_field(data, "idempotency_key", 200, required=True)
    if key.startswith("usage:"):
        raise HttpError(422, "idempotency_key must not start with usage: (reserved for metering).", "invalid_field")
    description = str_field(data, "description", 500) or ""
    try:
        signed = signed_amount(kind, amount)
    except ValueError as exc:
        raise HttpError(422, f"{exc}.", "invalid_amount") from None
    try:
        entry, replayed = await post_entry_async(database(request), account_id, kind, signed, key, description)
    except IdempotencyConflict:
        raise HttpError(409, "This idempotency_key was already used for a different entry.", "idempotency_conflict", "conflict_error") from None
    balance = await database(request).read(lambda conn: get_account(conn, account_id).balance_micro_p)
    return json_response({"entry": entry, "balance_micro_p": balance}, status=200 if replayed else 201)


async def get_ledger(request: web.Request) -> web.Response:
    """Entries newest first, with keyset pagination."""
    account_id = account_id_param(request)
    limit = query_int(request, "limit", 50, 1, 200)
    before = decode_cursor(request)

    def work(conn: Connection) -> list[Any]:
        get_account(conn, account_id)
        return list_entries(conn, account_id, limit + 1, before)

    return keyset_page(await database(request).read(work), limit, entry_dict)


# --- keys -------------------------------------------------------------------------------

def _key_row(conn: Connection, account_id: str, key_id: str) -> Any:
    get_account(conn, account_id)
    row = None
    if is_uuid(key_id):
        row = conn.execute(
            sa.select(api_keys).where(api_keys.c.id == key_id, api_keys.c.account_id == account_id)
        ).first()
    if row is None:
        raise HttpError(404, "No API key with this id on this account.", "key_not_found", "not_found_error")
    return row


async def list_keys(request: web.Request) -> web.Response:
    """The account's keys (only one member's with ``member_id``), newest first (never the full key)."""
    account_id = account_id_param(request)
    member_id = query_member_id(request)

    def work(conn: Connection) -> tuple[str, list[Any]]:
        account = get_account(conn, account_id)
        query = sa.select(api_keys).where(api_keys.c.account_id == account_id)
        if member_id is not None:
            query = query.where(api_keys.c.member_id == member_id)
        return account.usage_tz, list(conn.execute(query.order_by(api_keys.c.created_at.desc(), api_keys.c.id)))

    tz, rows = await database(request).read(work)
    return json_response({"data": [key_dict(r, tz) for r in rows]})


def _limit_and_expiry(data: dict) -> dict:
    values: dict[str, Any] = {}
    if "spend_limit_micro_p" in data:
        values["spend_limit_micro_p"] = int_field(data, "spend_limit_micro_p", 1, MAX_AMOUNT)
    if "expires_at" in data:
        expires = datetime_field(data, "expires_at")
        if expires is not None and expires <= utcnow():
            raise HttpError(422, "expires_at must be in the future.", "invalid_field")
        values["expires_at"] = expires
    return values


def _string_list(data: dict, name: str, most: int) -> list[str]:
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise HttpError(422, f"{name} must be a list of strings.", "invalid_field")
    if len(value) > most:
        raise HttpError(422, f"{name} may hold at most {most} entries.", "invalid_field")
    return value


def _controls(data: dict, catalog: Catalog) -> dict:
    """The key controls in ``data``, checked: a budget and its period, the allow-lists
    (models as canonical ids, addresses in canonical form), and per-minute limits."""
    values: dict[str, Any] = {}
    if "budget_micro_p" in data:
        values["budget_micro_p"] = int_field(data, "budget_micro_p", 1, MAX_AMOUNT)
    if "budget_period" in data:
        period = data["budget_period"]
        if period is not None and period not in BUDGET_PERIODS:
            raise HttpError(422, "budget_period must be day, week, month or null.", "invalid_field")
        values["budget_period"] = period
    if "allowed_models" in data:
        models = []
        for model_id in _string_list(data, "allowed_models", MAX_ALLOWED_MODELS):
            model = catalog.resolve(model_id.strip())
            if model is None:
                raise HttpError(422, f"allowed_models: no model '{model_id[:100]}' in the catalogue.", "unknown_model")
            if model.id not in models:
                models.append(model.id)
        values["allowed_models"] = models
    if "allowed_ips" in data:
        try:
            values["allowed_ips"] = normalise_ip_list(_string_list(data, "allowed_ips", 1000))
        except InvalidIpEntry as exc:
            raise HttpError(422, f"allowed_ips: {exc}", "invalid_ip") from None
    if "rpm_limit" in data:
        values["rpm_limit"] = int_field(data, "rpm_limit", 1, MAX_RPM)
    if "tpm_limit" in data:
        values["tpm_limit"] = int_field(data, "tpm_limit", 1, MAX_TPM)
    return values


def _check_budget_pair(budget: int | None, period: str | None) -> None:
    if (budget is None) != (period is None):
        raise HttpError(422, "budget_micro_p and budget_period are set (or cleared) together.", "invalid_field")


def _stored(values: dict) -> dict:
    """Column values: the lists as JSON text."""
    return {name: orjson.dumps(value).decode() if isinstance(value, list) else value for name, value in values.items()}


async def post_key(request: web.Request) -> web.Response:
    """Create a key, with any of its controls; the only answer that contains the full key."""
    account_id = account_id_param(request)
    data = await json_body(request, NEW_KEY_FIELDS)
    name = str_field(data, "name", 100, required=True)
    member_id = member_id_field(data)
    values = _limit_and_expiry(data)
    controls = _controls(data, request.config_dict[CATALOG])
    _check_budget_pair(controls.get("budget_micro_p"), controls.get("budget_period"))

    def work(conn: Connection) -> tuple[str, Any, str]:
        account = get_account(conn, account_id)
        key, row = create_key(conn, account_id, name, values.get("spend_limit_micro_p"), values.get("expires_at"),
                              member_id=member_id, **controls)
        if controls.get("budget_period"):
            set_budget(conn, row.id, controls["budget_period"], utcnow())
        return key, _key_row(conn, account_id, row.id), account.usage_tz

    key, row, tz = await database(request).transaction(work)
    return json_response({**key_dict(row, tz), "key": key}, status=201)


async def patch_key(request: web.Request) -> web.Response:
    """Rename a key, or set or clear its spending limit, expiry and controls.

    Every process applies a change within two key-cache polls (under 2 s).
    """
    account_id = account_id_param(request)
    key_id = request.match_info["key_id"]
    data = await json_body(request, KEY_FIELDS)
    values = _limit_and_expiry(data)
    if "name" in data:
        values["name"] = str_field(data, "name", 100, required=True)
    controls = _controls(data, request.config_dict[CATALOG])

    def work(conn: Connection) -> tuple[Any, str]:
        # The account first, as a flush locks it before the key: a second update of the
        # key row checks its account row, and a flush holding that row while waiting for
        # the key would otherwise deadlock with this transaction on PostgreSQL.
        account = get_account(conn, account_id, lock=True)
        before = _key_row(conn, account_id, key_id)
        budget = controls.get("budget_micro_p", before.budget_micro_p)
        period = controls.get("budget_period", before.budget_period)
        _check_budget_pair(budget, period)
        changes = {**values, **_stored(controls)}
        if changes:
            conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(**changes, updated_at=utcnow()))
        if period != before.budget_period:
            set_budget(conn, key_id, period, utcnow())
        return _key_row(conn, account_id, key_id), account.usage_tz

    row, tz = await database(request).transaction(work)
    await refresh_keys(request)
    return json_response(key_dict(row, tz))


async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a key (idempotent); every gateway process refuses it within 2 s."""
    account_id = account_id_param(request)
    key_id = request.match_info["key_id"]

    def work(conn: Connection) -> Any:
        row = _key_row(conn, account_id, key_id)
        if row.revoked_at is None:
            now = utcnow()
            conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now, updated_at=now))
        return _key_row(conn, account_id, key_id)

    row = await database(request).transaction(work)
    await refresh_keys(request)
    return json_response(key_dict(row))


# --- usage and the request log -------------------------------------------------------------

async def get_usage(request: web.Request) -> web.Response:
    """Totals, daily rows by model, and rows by model and by key over a local date range
    (of one team member's keys with ``member_id``)."""
    account_id = account_id_param(request)
    start, end = query_date_range(request)
    tz = query_tz(request)
    member_id = query_member_id(request)

    def work(conn: Connection) -> dict:
        get_account(conn, account_id)
        return usage.usage_report(conn, account_id, start, end, tz, member_id)

    return json_response(await database(request).read(work))


async def get_key_usage(request: web.Request) -> web.Response:
    """One key's usage by local day over a date range (its page's chart of the period)."""
    account_id = account_id_param(request)
    key_id = request.match_info["key_id"]
    start, end = query_date_range(request)
    tz = query_tz(request)

    def work(conn: Connection) -> dict:
        _key_row(conn, account_id, key_id)
        return {"start": start.isoformat(), "end": end.isoformat(), "tz": tz.key,
                "daily": usage.daily_for_key(conn, account_id, key_id, start, end, tz)}

    return json_response(await database(request).read(work))


async def list_requests(request: web.Request) -> web.Response:
    """The request log, newest first, filtered, one keyset page at a time."""
    account_id = account_id_param(request)
    filters = request_filter(request, account_id)
    limit = query_int(request, "limit", 50, 1, 200)
    before = decode_cursor(request)

    def work(conn: Connection) -> list[Any]:
        get_account(conn, account_id)
        return query_requests(conn, filters, limit + 1, before)

    return keyset_page(await database(request).read(work), limit, request_dict)


async def export_requests(request: web.Request) -> web.StreamResponse:
    """The filtered request log as CSV, streamed page by page (memory stays flat)."""
    account_id = account_id_param(request)
    filters = request_filter(request, account_id)
    db = database(request)
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
    app.router.add_get("/accounts/{account_id}/keys/{key_id}/usage", get_key_usage)
    app.router.add_get("/accounts/{account_id}/usage", get_usage)
    app.router.add_get("/accounts/{account_id}/requests.csv", export_requests)
    app.router.add_get("/accounts/{account_id}/requests", list_requests)
    members_api.add_routes(app)
    events_api.add_routes(app)
    books_api.add_account_routes(app)
    return app


def setup_routes(app: web.Application) -> None:
    """Mount the internal API under ``/internal``."""
    app.add_subapp("/internal", create_internal_app())

