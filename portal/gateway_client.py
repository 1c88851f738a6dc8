"""Client for the gateway's internal REST API — the only module that knows its URLs.

Every call goes through one pooled ``requests.Session`` with short timeouts. A gateway
that cannot be reached (refused, timed out, 5xx) raises ``GatewayUnavailable``; a 4xx
answer raises ``GatewayError`` carrying the gateway's message and code. The internal
token is sent in a header and never appears in an exception message.
"""

from __future__ import annotations

from typing import Any, Iterator
from urllib.parse import quote

import orjson
import requests
from flask import current_app
from requests.adapters import HTTPAdapter

CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 10.0
STREAM_READ_TIMEOUT = 60.0


class GatewayUnavailable(Exception):
    """The gateway could not be reached or failed on its side."""


class GatewayError(Exception):
    """The gateway refused the request (4xx); ``message`` is safe to show."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _seg(value: str) -> str:
    return quote(str(value), safe="")


# Fields newer gateways add, read with defaults so the pages work against an older gateway too.
REQUEST_TOKEN_PARTS = ("cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens")
USAGE_PARTS = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "saved_micro_p")
CACHE_PRICES = ("cache_read_price", "cache_write_price", "cache_write_1h_price")


def _count(value: Any) -> int:
    """An integer count from the gateway, 0 for anything else (missing, null, a string)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _maybe_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def with_request_parts(row: dict) -> dict:
    """A request log row with its cache, reasoning and tier fields always present."""
    for name in REQUEST_TOKEN_PARTS:
        row[name] = _count(row.get(name))
    row["price_tier"] = _maybe_int(row.get("price_tier"))
    return row


def with_usage_parts(report: dict) -> dict:
    """A usage report whose totals, daily, by-model and by-key rows all carry the cache fields."""
    rows = [report.setdefault("totals", {})]
    for section in ("daily", "by_model", "by_key"):
        rows.extend(report.get(section) or [])
    for row in rows:
        for name in USAGE_PARTS:
            row[name] = _count(row.get(name))
    return report


def with_cache_prices(model: dict) -> dict:
    """A catalogue model with its three cache prices and its tiers.

    A gateway that does not list cache prices charges cached input at the input price, so
    that is the default; tiers default to none.
    """
    base = _maybe_int(model.get("input_price"))
    for name in CACHE_PRICES:
        value = model.get(name, base)
        model[name] = _maybe_int(value)
    tiers = model.get("tiers")
    clean: list[dict] = []
    for tier in tiers if isinstance(tiers, list) else []:
        if not isinstance(tier, dict) or _maybe_int(tier.get("above_input_tokens")) is None:
            continue
        entry = {"above_input_tokens": tier["above_input_tokens"]}
        for name in ("input_price", "output_price") + CACHE_PRICES:
            entry[name] = _maybe_int(tier.get(name))
        clean.append(entry)
    model["tiers"] = sorted(clean, key=lambda t: t["above_input_tokens"])
    return model


def with_admin_cache_prices(catalog: dict) -> dict:
    """The admin catalogue with the cache prices (live, file's, and in each change) present.

    ``cache_prices_editable`` says whether the gateway knows cache prices at all, so the
    console only sends them to a gateway that takes them.
    """
    models = catalog.get("models") or []
    catalog["cache_prices_editable"] = bool(models) and all("cache_read_price" in m for m in models)
    for model in models:
        for name in CACHE_PRICES:
            model[name] = _maybe_int(model.get(name))
            model[f"file_{name}"] = _maybe_int(model.get(f"file_{name}"))
    for change in catalog.get("changes") or []:
        for name in CACHE_PRICES:
            change[name] = _maybe_int(change.get(name))
        # False for a version recorded before cache prices could be changed: it kept the file's.
        change["cache_prices_set"] = change.get("cache_prices_set", True) is not False
    return catalog


class GatewayClient:
    """Typed calls to ``$GATEWAY_URL/internal`` (see docs/internal-api.md)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base = base_url.rstrip("/") + "/internal"
        self._token = token
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["Accept"] = "application/json"

    def __repr__(self) -> str:  # keeps the token out of any repr that reaches a log
        return f"GatewayClient({self.base!r})"

    # -- plumbing -------------------------------------------------------------

    def _send(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
              stream: bool = False) -> requests.Response:
        timeout = (CONNECT_TIMEOUT, STREAM_READ_TIMEOUT if stream else READ_TIMEOUT)
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            response = self.session.request(method, self.base + path, params=clean, json=json,
                                            timeout=timeout, stream=stream)
        except requests.RequestException as exc:
            raise GatewayUnavailable(f"gateway unreachable ({type(exc).__name__})") from None
        if response.status_code >= 500:
            response.close()
            raise GatewayUnavailable(f"gateway answered {response.status_code}")
        if response.status_code >= 400:
            message, code = f"gateway refused the request ({response.status_code})", None
            try:
                error = response.json().get("error") or {}
                message = error.get("message") or message
                code = error.get("code")
            except (ValueError, AttributeError):
                pass
            response.close()
            raise GatewayError(response.status_code, message, code)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        try:
            # A 90-day usage report of a busy account is ~150 KB; orjson parses it in a fraction of json's time.
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise GatewayUnavailable("gateway answered something that is not JSON") from None

    # -- health and catalogue ---------------------------------------------------

    def health(self) -> dict:
        """``GET /health``."""
        return self._json("GET", "/health")

    def catalog(self) -> dict:
        """``GET /catalog``: providers and models with prices (P per 1M tokens or null)."""
        data = self._json("GET", "/catalog")
        for model in data.get("models") or []:
            with_cache_prices(model)
        return data

    # -- accounts ---------------------------------------------------------------

    def create_account(self, external_id: str, email: str | None = None) -> dict:
        """``POST /accounts``; idempotent on ``external_id``."""
        body = {"external_id": external_id}
        if email:
            body["email"] = email
        return self._json("POST", "/accounts", json=body)

    def get_account(self, account_id: str) -> dict:
        """``GET /accounts/{id}``: balance and totals."""
        return self._json("GET", f"/accounts/{_seg(account_id)}")

    def account_summary(self, account_id: str, tz: str) -> dict:
        """``GET /accounts/{id}/summary``: balance, today and this month in ``tz``, and the
        zone the account's daily sums are kept in."""
        return self._json("GET", f"/accounts/{_seg(account_id)}/summary", params={"tz": tz})

    def post_ledger_entry(self, account_id: str, kind: str, amount_micro_p: int,
                          idempotency_key: str, description: str | None = None) -> dict:
        """``POST /accounts/{id}/ledger``: ``{entry, balance_micro_p}``; a replayed key returns the same entry."""
        body: dict[str, Any] = {"kind": kind, "amount_micro_p": amount_micro_p,
                                "idempotency_key": idempotency_key}
        if description:
            body["description"] = description
        return self._json("POST", f"/accounts/{_seg(account_id)}/ledger", json=body)

    # -- keys -----------------------------------------------------------------------

    def list_keys(self, account_id: str, member_id: str | None = None) -> list[dict]:
        """``GET /accounts/{id}/keys``; with ``member_id``, only the keys of that team member."""
        return self._json("GET", f"/accounts/{_seg(account_id)}/keys", params={"member_id": member_id})["data"]

    def create_key(self, account_id: str, name: str, spend_limit_micro_p: int | None = None,
                   expires_at: str | None = None, **controls: Any) -> dict:
        """``POST /accounts/{id}/keys``: the answer's ``key`` is the only copy of the full key.

        ``controls`` are the key's ``budget_micro_p``, ``budget_period``, ``allowed_models``,
        ``allowed_ips``, ``rpm_limit`` and ``tpm_limit`` (empty ones are left out).
        """
        body: dict[str, Any] = {"name": name}
        if spend_limit_micro_p is not None:
            body["spend_limit_micro_p"] = spend_limit_micro_p
        if expires_at is not None:
            body["expires_at"] = expires_at
        body.update({field: value for field, value in controls.items() if value not in (None, [])})
        return self._json("POST", f"/accounts/{_seg(account_id)}/keys", json=body)

    def update_key(self, account_id: str, key_id: str, **changes: Any) -> dict:
        """``PATCH /accounts/{id}/keys/{key_id}`` with ``name``, ``spend_limit_micro_p``,
        ``expires_at`` or any of the controls ``create_key`` takes (None or [] clears one)."""
        return self._json("PATCH", f"/accounts/{_seg(account_id)}/keys/{_seg(key_id)}", json=changes)

    def key_usage(self, account_id: str, key_id: str, start: str, end: str, tz: str) -> dict:
        """``GET /accounts/{id}/keys/{key_id}/usage``: one key's sums by local day."""
        return self._json("GET", f"/accounts/{_seg(account_id)}/keys/{_seg(key_id)}/usage",
                          params={"start": start, "end": end, "tz": tz})

    def revoke_key(self, account_id: str, key_id: str) -> dict:
        """``DELETE /accounts/{id}/keys/{key_id}``."""
        return self._json("DELETE", f"/accounts/{_seg(account_id)}/keys/{_seg(key_id)}")

    # -- usage and the request log -------------------------------------------------

    def usage(self, account_id: str, start: str, end: str, tz: str, member_id: str | None = None) -> dict:
        """``GET /accounts/{id}/usage`` between two inclusive dates in ``tz`` (of one team member's keys
        with ``member_id``)."""
        return with_usage_parts(self._json("GET", f"/accounts/{_seg(account_id)}/usage",
                                           params={"start": start, "end": end, "tz": tz,
                                                   "member_id": member_id}))

    def requests_page(self, account_id: str, filters: dict, cursor: str | None = None,
                      limit: int = 50) -> dict:
        """``GET /accounts/{id}/requests``: one page, newest first, and ``next_cursor``."""
        params = dict(filters, cursor=cursor, limit=limit)
        page = self._json("GET", f"/accounts/{_seg(account_id)}/requests", params=params)
        for row in page.get("data") or []:
            with_request_parts(row)
        return page

    def requests_csv(self, account_id: str, filters: dict) -> Iterator[bytes]:
        """``GET /accounts/{id}/requests.csv`` as a stream of byte chunks.

        The connection is opened (and errors raised) before the first chunk is yielded,
        so a caller can still answer with an error page.
        """
        response = self._send("GET", f"/accounts/{_seg(account_id)}/requests.csv",
                              params=filters, stream=True)

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.iter_content(chunk_size=16384)
            finally:
                response.close()

        return chunks()


    # -- team members ---------------------------------------------------------------

    def revoke_member_keys(self, account_id: str, member_id: str) -> dict:
        """``POST /accounts/{id}/members/{member_id}/revoke-keys``: ``{"revoked": n}``; idempotent."""
        return self._json("POST", f"/accounts/{_seg(account_id)}/members/{_seg(member_id)}/revoke-keys")

    def member_budgets(self, account_id: str) -> list[dict]:
        """``GET /accounts/{id}/members``: every member with a spend cap, and what they spent this period."""
        return self._json("GET", f"/accounts/{_seg(account_id)}/members")["data"]

    def set_member_budget(self, account_id: str, member_id: str, budget_micro_p: int | None,
                          budget_period: str | None) -> dict:
        """``PUT /accounts/{id}/members/{member_id}/budget``; None and None remove the cap."""
        return self._json("PUT", f"/accounts/{_seg(account_id)}/members/{_seg(member_id)}/budget",
                          json={"budget_micro_p": budget_micro_p, "budget_period": budget_period})

    # -- balance thresholds and their events ----------------------------------------

    def set_thresholds(self, account_id: str, **thresholds: int | None) -> dict:
        """``PATCH /accounts/{id}`` with ``low_balance_threshold_micro_p`` or
        ``auto_top_up_threshold_micro_p`` (None stops watching); the account with ``thresholds``."""
        return self._json("PATCH", f"/accounts/{_seg(account_id)}", json=thresholds)

    def events(self, after: int, limit: int = 100) -> dict:
        """``GET /events``: threshold crossings after the cursor, oldest first, and ``next_cursor``."""
        return self._json("GET", "/events", params={"after": after, "limit": limit})

    def statement(self, account_id: str, month: str, tz: str) -> dict:
        """``GET /accounts/{id}/statement``: one calendar month (``YYYY-MM``) of the books in ``tz``."""
        return self._json("GET", f"/accounts/{_seg(account_id)}/statement", params={"month": month, "tz": tz})

    def verify_ledger(self) -> dict:
        """``GET /admin/verify-ledger``: every account's books recomputed, and the differences."""
        return self._json("GET", "/admin/verify-ledger")

    # -- operator console ---------------------------------------------------------

    def update_account(self, account_id: str, **changes: Any) -> dict:
        """``PATCH /accounts/{id}`` with ``status`` (active or suspended) or ``usage_tz``."""
        return self._json("PATCH", f"/accounts/{_seg(account_id)}", json=changes)

    def ledger_page(self, account_id: str, cursor: str | None = None, limit: int = 50) -> dict:
        """``GET /accounts/{id}/ledger``: entries newest first and ``next_cursor``."""
        return self._json("GET", f"/accounts/{_seg(account_id)}/ledger", params={"cursor": cursor, "limit": limit})

    def admin_search_accounts(self, query: str, limit: int = 50) -> list[dict]:
        """``GET /admin/accounts``: accounts by id, external id or part of the e-mail."""
        return self._json("GET", "/admin/accounts", params={"q": query, "limit": limit})["data"]

    def admin_requests_page(self, filters: dict, cursor: str | None = None, limit: int = 50) -> dict:
        """``GET /admin/requests``: every customer's log, newest first, and ``next_cursor``."""
        page = self._json("GET", "/admin/requests", params=dict(filters, cursor=cursor, limit=limit))
        for row in page.get("data") or []:
            with_request_parts(row)
        return page

    def admin_daily(self, start: str, end: str, tz: str) -> dict:
        """``GET /admin/daily``: top-ups, refunds, adjustments and spend per local day."""
        return self._json("GET", "/admin/daily", params={"start": start, "end": end, "tz": tz})

    def admin_providers(self) -> dict:
        """``GET /admin/providers``: upstream errors and latency per provider, last hour and day."""
        return self._json("GET", "/admin/providers")

    def admin_status(self) -> dict:
        """``GET /admin/status``: the gateway's database backend and catalogue refresh."""
        return self._json("GET", "/admin/status")

    def admin_catalog(self) -> dict:
        """``GET /admin/catalog``: models as served, the file's prices, and the change history."""
        return with_admin_cache_prices(self._json("GET", "/admin/catalog"))

    def admin_change_model(self, model_id: str, actor: str, reason: str, **changes: Any) -> dict:
        """``POST /admin/catalog/{model_id}``: a new version of the model's prices or switch
        (``input_price``, ``output_price``, the three cache prices, ``enabled``, ``effective_from``)."""
        return self._json("POST", f"/admin/catalog/{_seg(model_id)}", json=dict(changes, actor=actor, reason=reason))

    # -- channels, provider keys, margin --------------------------------------------

    def admin_channels(self) -> dict:
        """``GET /admin/channels``: every model's channels with their live health."""
        return self._json("GET", "/admin/channels")

    def admin_switch_channel(self, channel: str, enabled: bool) -> dict:
        """``POST /admin/channels/switch``: a channel off (never tried) or on, in every gateway process."""
        return self._json("POST", "/admin/channels/switch", json={"channel": channel, "enabled": enabled})

    def admin_test_channel(self, channel: str) -> dict:
        """``POST /admin/channels/test``: a one-token request over one channel, and what it answered."""
        return self._json("POST", "/admin/channels/test", json={"channel": channel})

    def admin_provider_keys(self) -> dict:
        """``GET /admin/provider-keys``: each provider's key source and console key, masked."""
        return self._json("GET", "/admin/provider-keys")

    def admin_set_provider_key(self, provider: str, key: str) -> dict:
        """``PUT /admin/provider-keys/{provider}``: store a key (encrypted by the gateway); its masked form."""
        return self._json("PUT", f"/admin/provider-keys/{_seg(provider)}", json={"key": key})

    def admin_delete_provider_key(self, provider: str) -> None:
        """``DELETE /admin/provider-keys/{provider}``: forget the console key."""
        self._send("DELETE", f"/admin/provider-keys/{_seg(provider)}").close()

    def admin_margin(self, start: str, end: str, tz: str) -> dict:
        """``GET /admin/margin``: revenue, upstream cost and margin per day, model and channel."""
        return self._json("GET", "/admin/margin", params={"start": start, "end": end, "tz": tz})

    def admin_margin_csv(self, start: str, end: str, tz: str) -> str:
        """``GET /admin/margin.csv``: the same report as CSV text."""
        response = self._send("GET", "/admin/margin.csv", params={"start": start, "end": end, "tz": tz})
        return response.text


def gateway() -> GatewayClient:
    """The current app's gateway client."""
    return current_app.extensions["gateway_client"]
