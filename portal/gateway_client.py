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
        return self._json("GET", "/catalog")

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

    def list_keys(self, account_id: str) -> list[dict]:
        """``GET /accounts/{id}/keys``."""
        return self._json("GET", f"/accounts/{_seg(account_id)}/keys")["data"]

    def create_key(self, account_id: str, name: str, spend_limit_micro_p: int | None = None,
                   expires_at: str | None = None) -> dict:
        """``POST /accounts/{id}/keys``: the answer's ``key`` is the only copy of the full key."""
        body: dict[str, Any] = {"name": name}
        if spend_limit_micro_p is not None:
            body["spend_limit_micro_p"] = spend_limit_micro_p
        if expires_at is not None:
            body["expires_at"] = expires_at
        return self._json("POST", f"/accounts/{_seg(account_id)}/keys", json=body)

    def update_key(self, account_id: str, key_id: str, **changes: Any) -> dict:
        """``PATCH /accounts/{id}/keys/{key_id}`` with ``name``, ``spend_limit_micro_p`` or ``expires_at``."""
        return self._json("PATCH", f"/accounts/{_seg(account_id)}/keys/{_seg(key_id)}", json=changes)

    def revoke_key(self, account_id: str, key_id: str) -> dict:
        """``DELETE /accounts/{id}/keys/{key_id}``."""
        return self._json("DELETE", f"/accounts/{_seg(account_id)}/keys/{_seg(key_id)}")

    # -- usage and the request log -------------------------------------------------

    def usage(self, account_id: str, start: str, end: str, tz: str) -> dict:
        """``GET /accounts/{id}/usage`` between two inclusive dates in ``tz``."""
        return self._json("GET", f"/accounts/{_seg(account_id)}/usage",
                          params={"start": start, "end": end, "tz": tz})

    def requests_page(self, account_id: str, filters: dict, cursor: str | None = None,
                      limit: int = 50) -> dict:
        """``GET /accounts/{id}/requests``: one page, newest first, and ``next_cursor``."""
        params = dict(filters, cursor=cursor, limit=limit)
        return self._json("GET", f"/accounts/{_seg(account_id)}/requests", params=params)

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
        return self._json("GET", "/admin/requests", params=dict(filters, cursor=cursor, limit=limit))

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
        return self._json("GET", "/admin/catalog")

    def admin_change_model(self, model_id: str, actor: str, reason: str, **changes: Any) -> dict:
        """``POST /admin/catalog/{model_id}``: a new version of the model's prices or switch."""
        return self._json("POST", f"/admin/catalog/{_seg(model_id)}", json=dict(changes, actor=actor, reason=reason))


def gateway() -> GatewayClient:
    """The current app's gateway client."""
    return current_app.extensions["gateway_client"]
