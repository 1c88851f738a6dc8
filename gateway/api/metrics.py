"""``GET /metrics``: Prometheus text, on the internal listener only (``app._listener_guard``).

No token: a scraper is configured with a URL, and the internal listener is not reachable
from outside. The text holds counts and timings, never a key, prompt or answer.
"""

from __future__ import annotations

from aiohttp import web

from .. import metrics

PATH = "/metrics"


async def metrics_text(request: web.Request) -> web.Response:
    """Every metric of this gateway (all its workers' in multi-process mode)."""
    body, content_type = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


def setup_routes(app: web.Application) -> None:
    """Register ``/metrics``."""
    app.router.add_get(PATH, metrics_text)
