"""The operator console's internal API, under ``/internal/admin``.

Same bearer token, error shape and validation rules as the internal API (both use
``http``): account search, the request log across every
customer, money in and out per day, upstream health per provider, and versioned
catalogue changes (see ``catalog_overrides``). The contract is gateway/openapi.yaml.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.engine import Connection

from ..accounting import admin_queries
from ..accounting.ledger import account_dict
from ..accounting.catalog_overrides import change_dict, list_changes, record_change, rows_in_force
from ..appkeys import CATALOG, REFRESHER
from ..catalog import CACHE_PRICES
from ..db import safe_url, utcnow
from . import books, channels
from .http import (
    HttpError, database, datetime_field, decode_cursor, errors_middleware, json_body, json_response,
    keyset_page, query_date_range, query_int, query_tz, request_filter, str_field, token_middleware,
)

MAX_PRICE = 10**9  # P per 1M tokens: far above any real model


async def search_accounts(request: web.Request) -> web.Response:
    """``q`` matches an account id, an external id, or part of an e-mail."""
    query = request.query.get("q", "")
    if len(query) > 320:
        raise HttpError(400, "q must be at most 320 characters.", "invalid_query")
    limit = query_int(request, "limit", 50, 1, 200)
    rows = await database(request).read(admin_queries.search_accounts, query, limit)
    return json_response({"data": [account_dict(r) for r in rows]})


async def all_requests(request: web.Request) -> web.Response:
    """Every customer's requests, newest first, filtered, one keyset page at a time."""
    filters = request_filter(request, None, cross_account=True)
    limit = query_int(request, "limit", 50, 1, 200)
    before = decode_cursor(request)
    rows = await database(request).read(admin_queries.query_all_requests, filters, limit + 1, before)
    return keyset_page(rows, limit, admin_queries.all_request_dict)


async def daily_money(request: web.Request) -> web.Response:
    """Top-ups, refunds, adjustments and usage spend per local day."""
    start, end = query_date_range(request)
    tz = query_tz(request)
    days = await database(request).read(admin_queries.daily_money, start, end, tz)
    return json_response({"start": start.isoformat(), "end": end.isoformat(), "tz": tz.key, "days": days})


async def gateway_status(request: web.Request) -> web.Response:
    """Which database this gateway uses (password hidden) and when its catalogue was last refreshed."""
    db = database(request)
    refresher = request.config_dict[REFRESHER]
    return json_response({
        "database_backend": db.dialect,
        "database_url": safe_url(db.url),
        "catalog_refreshed_at": refresher.last_refresh_at,
        "catalog_refresh_interval_seconds": refresher.interval,
    })


async def provider_health(request: web.Request) -> web.Response:
    """Upstream error rates and latency per provider over the last hour and day."""
    windows = await database(request).read(admin_queries.provider_health, utcnow())
    return json_response({"windows": windows})


def _model_state(request: web.Request, model_id: str, in_force: dict) -> dict:
    refresher = request.config_dict[REFRESHER]
    base = refresher.base[model_id]
    live = request.config_dict[CATALOG].models[model_id]
    row = in_force.get(model_id)
    return {
        "id": model_id,
        "provider": base.provider,
        "kind": base.kind,
        "group": base.group,
        "input_price": live.input_price,
        "output_price": live.output_price,
        "enabled": live.enabled,
        **{name: getattr(live, name) for name in CACHE_PRICES},
        "file_input_price": base.input_price,
        "file_output_price": base.output_price,
        **{f"file_{name}": getattr(base, name) for name in CACHE_PRICES},
        "version": row.version if row is not None else None,
        "effective_from": row.effective_from if row is not None else None,
    }


async def admin_catalog(request: web.Request) -> web.Response:
    """Every model as served now (with the file's prices beside it) and the change history."""
    def work(conn: Connection) -> list:
        return list_changes(conn)

    changes = await database(request).read(work)
    refresher = request.config_dict[REFRESHER]
    await refresher.refresh()
    in_force = rows_in_force(changes, utcnow())
    return json_response({
        "refresh_interval_seconds": refresher.interval,
        "models": [_model_state(request, model_id, in_force) for model_id in refresher.base],
        "changes": [change_dict(r) for r in changes],
    })


def _price(data: dict, name: str) -> int | None:
    value = data[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRICE:
        raise HttpError(422, f"{name} must be a whole number of P per 1M tokens between 0 and {MAX_PRICE}, or null.",
                       "invalid_field")
    return value


async def change_model(request: web.Request) -> web.Response:
    """Record a new version of a model's price or switch; applied here at once, elsewhere within a poll.

    Fields left out keep their live values, so every row carries the model's full state.
    """
    model_id = request.match_info["model_id"]
    refresher = request.config_dict[REFRESHER]
    if model_id not in refresher.base:
        raise HttpError(404, "No model with this id in the catalogue.", "model_not_found", "not_found_error")
    data = await json_body(request, {"input_price", "output_price", "enabled", "effective_from", "actor", "reason",
                                     *CACHE_PRICES})
    current = request.config_dict[CATALOG].models[model_id]
    input_price = _price(data, "input_price") if "input_price" in data else current.input_price
    output_price = _price(data, "output_price") if "output_price" in data else current.output_price
    cache_prices = {name: _price(data, name) if name in data else getattr(current, name) for name in CACHE_PRICES}
    if (input_price is None) != (output_price is None):
        raise HttpError(422, "Set both prices, or clear both to leave the model unpriced.", "invalid_field")
    enabled = data.get("enabled", current.enabled)
    if not isinstance(enabled, bool):
        raise HttpError(422, "enabled must be true or false.", "invalid_field")
    effective_from = datetime_field(data, "effective_from") or utcnow()
    actor = str_field(data, "actor", 320, required=True)
    reason = str_field(data, "reason", 500, required=True)
    unchanged = all(value == getattr(current, name) for name, value in cache_prices.items())
    if unchanged and (input_price, output_price, enabled) == (current.input_price, current.output_price, current.enabled) \
            and "effective_from" not in data:
        raise HttpError(422, "This change would leave the model as it is.", "no_change")

    row = await database(request).transaction(
        record_change, model_id, input_price, output_price, enabled, effective_from, actor, reason, cache_prices)
    await refresher.refresh()
    return json_response({"change": change_dict(row)}, status=201)


def create_admin_app() -> web.Application:
    """The ``/internal/admin`` sub-application."""
    app = web.Application(middlewares=[errors_middleware, token_middleware])
    app.router.add_get("/accounts", search_accounts)
    app.router.add_get("/requests", all_requests)
    app.router.add_get("/daily", daily_money)
    app.router.add_get("/providers", provider_health)
    app.router.add_get("/status", gateway_status)
    app.router.add_get("/catalog", admin_catalog)
    app.router.add_post("/catalog/{model_id}", change_model)
    channels.add_routes(app)
    books.add_admin_routes(app)
    return app


def setup_routes(app: web.Application) -> None:
    """Mount the admin API under ``/internal/admin``."""
    app.add_subapp("/internal/admin", create_admin_app())
