"""``GET /internal/events``: balance threshold and budget crossings, oldest first, for the portal.

The cursor is the id of the last event the caller handled (0 at first); the answer's
``next_cursor`` is the one to send next time (unchanged when nothing is new).
"""

from __future__ import annotations

from aiohttp import web

from ..accounting.events import event_dict, events_after
from .http import database, json_response, query_int

MAX_CURSOR = 2**62


async def list_events(request: web.Request) -> web.Response:
    """Events with ids above ``after``, at most ``limit`` (1–500, default 100)."""
    after = query_int(request, "after", 0, 0, MAX_CURSOR)
    limit = query_int(request, "limit", 100, 1, 500)
    rows = await database(request).read(events_after, after, limit)
    return json_response({
        "data": [event_dict(row) for row in rows],
        "next_cursor": rows[-1].id if rows else after,
    })


def add_routes(app: web.Application) -> None:
    """Register the events route on the internal sub-application."""
    app.router.add_get("/events", list_events)
