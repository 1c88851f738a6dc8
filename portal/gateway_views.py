"""How a view calls the gateway: one context manager that turns its two failures into what the page shows.

``gateway_client`` raises ``GatewayUnavailable`` (unreachable, timed out, 5xx) or
``GatewayError`` (a 4xx refusal with a message safe to show). A view wraps its calls in
``calling_gateway()`` and reads the outcome instead of catching either::

    with calling_gateway() as call:
        keys = gateway().list_keys(account_id)
    if call.failed:
        keys = []

What happens on a failure:

* unavailable: the request is marked so ``base.html`` shows the gateway notice
  (``templates/partials/_gateway_notice.html``); ``call.message`` is the page's own
  ``unavailable`` text (if it gives one) and ``call.status`` is 503.
* refused, by default: the refusal is logged and treated like an outage, with the notice.
  Reads the page itself makes are refused only when the portal's own link is wrong
  (a stale account id), which the user cannot correct.
* refused, with ``show_refusal=True`` (an action the user asked for, a filter they
  typed): no notice; ``call.message`` is the gateway's message, ``call.refusal`` the
  exception (for its ``status`` or ``code``) and ``call.status`` 422.

The body of the ``with`` stops at the failing call; anything it was to assign keeps the
value it had before, so set defaults first. An unexpected exception is not caught.
A ``GatewayUnavailable`` that no view catches still reaches the app's error handler (a
503 page), which marks the request the same way.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from flask import g

from .extensions import db
from .gateway_client import GatewayError, GatewayUnavailable

log = logging.getLogger(__name__)


@dataclass
class GatewayCall:
    """The outcome of the calls made inside one ``calling_gateway()`` block."""

    failed: bool = False
    unavailable: bool = False
    message: str | None = None
    status: int = 200
    refusal: GatewayError | None = None


def mark_gateway_down() -> None:
    """Record for this request that the usage service could not be reached (the page shows the notice)."""
    g.gateway_down = True


def gateway_down() -> bool:
    """True once any call in this request found the gateway unreachable."""
    return bool(g.get("gateway_down"))


@contextmanager
def calling_gateway(unavailable: str | None = None, *, show_refusal: bool = False,
                    rollback: bool = False) -> Iterator[GatewayCall]:
    """Run the gateway calls in the block and record how they failed, if they did.

    ``unavailable`` is the message the page shows beside its form or table when the
    gateway is down (the notice at the top is shown either way). ``show_refusal`` hands a
    4xx's message to the page instead of showing the notice. ``rollback`` drops the
    database session's unfinished work when the gateway is down, for an action that
    must be repeatable as a whole.
    """
    call = GatewayCall()
    try:
        yield call
    except GatewayUnavailable as exc:
        log.warning("usage service unavailable: %s", exc)
        if rollback:
            db.session.rollback()
        mark_gateway_down()
        call.failed, call.unavailable, call.message, call.status = True, True, unavailable, 503
    except GatewayError as exc:
        call.failed, call.refusal = True, exc
        if show_refusal:
            call.message, call.status = exc.message, 422
        else:
            log.warning("the gateway refused a call the page needed (%s): %s", exc.status, exc.message)
            mark_gateway_down()
            call.message, call.status = unavailable, 503
