"""Team members on the internal API: revoking every key of a member at once.

A member is the portal's name for a person in a team account (``member_id`` on a key);
the gateway keeps no list of members beyond the keys that name one.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.engine import Connection

from ..accounting.ledger import get_account
from ..auth import revoke_member_keys
from ..db import utcnow
from .http import account_id_param, database, json_response, member_id_param, refresh_keys


async def revoke_keys(request: web.Request) -> web.Response:
    """Revoke every key of the member in the account (idempotent): ``{"revoked": n}``.

    As with one key, this process refuses them at once and every other within 2 s.
    """
    account_id = account_id_param(request)
    member_id = member_id_param(request)

    def work(conn: Connection) -> int:
        get_account(conn, account_id)
        return revoke_member_keys(conn, account_id, member_id, utcnow())

    revoked = await database(request).transaction(work)
    await refresh_keys(request)
    return json_response({"revoked": revoked})


def add_routes(app: web.Application) -> None:
    """Register the member routes on the internal sub-application."""
    app.router.add_post("/accounts/{account_id}/members/{member_id}/revoke-keys", revoke_keys)
