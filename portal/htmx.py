"""Full page or fragment, decided in one place.

A request from htmx (``HX-Request``) that targets part of a page gets only the named
block of the page's template; a first load, a boosted navigation and a history restore
get the whole page. Either way the answer varies on ``HX-Request``.
"""

from __future__ import annotations

from typing import Any

from flask import Response, make_response, render_template, request
from jinja2_fragments.flask import render_block


def is_htmx() -> bool:
    """True for a request htmx made that expects a fragment, not a whole page."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Boosted") != "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def render(template: str, block: str | None = "content", status: int = 200, **context: Any) -> Response:
    """Render ``template`` whole, or only ``block`` of it when htmx asks for a fragment."""
    if block and is_htmx():
        body = render_block(template, block, **context)
        # A fragment with inline form errors is a normal answer for htmx to swap; a 4xx
        # would also be reported as a failed resource in the browser console.
        if status == 422:
            status = 200
    else:
        body = render_template(template, **context)
    response = make_response(body, status)
    response.headers.add("Vary", "HX-Request")
    return response


def redirect_to(url: str) -> Response:
    """Send the browser to ``url``: a 303 for plain requests, ``HX-Redirect`` for htmx.

    htmx would otherwise follow a 3xx inside the XHR and swap the next page into a fragment.
    """
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url
    else:
        response = make_response("", 303)
        response.headers["Location"] = url
    response.headers.add("Vary", "HX-Request")
    return response
