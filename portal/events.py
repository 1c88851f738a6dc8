"""The event worker: reads the gateway's balance events and acts on them off the request path.

The gateway records each fall below a balance threshold once (``GET /internal/events``).
``process_events`` takes the cursor row with a conditional UPDATE (so with several
portal processes on one database exactly one reads at a time; a claim older than
``CLAIM_LEASE`` is taken over), asks the gateway for the events after it, handles
them one by one, moving the cursor in the same transaction as the mail each queued: a
crash before that commit handles the event again, after it never. One ``EventWorker`` thread
per process and database (started by ``install`` unless EVENT_POLL_SECONDS is off)
runs the passes.
"""

from __future__ import annotations

import logging
import secrets
import threading
import weakref
from datetime import timedelta
from typing import Callable

import sqlalchemy as sa
from flask import Flask, current_app

from .extensions import db
from .gateway_client import GatewayError, GatewayUnavailable, gateway
from .mail import queue_mail
from .models import EventCursor
from .money import format_p
from .teams import recipients
from .timeutil import utcnow

log = logging.getLogger(__name__)

CURSOR = "gateway"
PAGE = 100
CLAIM_LEASE = timedelta(minutes=2)

LOW_BALANCE_SUBJECT = "Your SAMALink balance is running low"


def _link(path: str) -> str:
    # Built from the configured public URL, as every e-mailed link is (no request here).
    return current_app.config["LINK_BASE_URL"].rstrip("/") + path


def _low_balance(event: dict) -> None:
    """Mail the account's owners (and a team's billing members) that the balance fell below the threshold."""
    for user in recipients(event["account_id"]):
        queue_mail(user.email, LOW_BALANCE_SUBJECT, (
            f"Your SAMALink balance is {format_p(event['balance_micro_p'])}, below the "
            f"{format_p(event['threshold_micro_p'])} you asked to be warned at.\n\n"
            "Calls are refused with 402 once the balance runs out. Top up here:\n"
            f"{_link('/billing')}\n\n"
            "You get this once each time the balance falls below the threshold; change or "
            "switch off the alert on the same page.\n"
        ))


# What each kind of event does; other modules add theirs (see ``on``).
HANDLERS: dict[str, Callable[[dict], None]] = {"low_balance": _low_balance}


def on(kind: str, handler: Callable[[dict], None]) -> None:
    """Handle events of ``kind`` with ``handler(event)``, inside the cursor's transaction."""
    HANDLERS[kind] = handler


def _claim(me: str) -> int | None:
    """Take the cursor for this pass; its position, or None when another worker holds it."""
    now = utcnow()
    free = sa.or_(EventCursor.claimed_by.is_(None), EventCursor.claimed_at < now - CLAIM_LEASE)
    taken = db.session.execute(sa.update(EventCursor).where(EventCursor.name == CURSOR, free)
                               .values(claimed_by=me, claimed_at=now)).rowcount
    if taken == 0 and db.session.get(EventCursor, CURSOR) is None:
        db.session.rollback()
        try:
            db.session.add(EventCursor(name=CURSOR, position=0, claimed_by=me, claimed_at=now))
            db.session.commit()
        except sa.exc.IntegrityError:
            # Another worker created it first; it holds the claim for this pass.
            db.session.rollback()
            return None
        return 0
    db.session.commit()
    return db.session.scalar(sa.select(EventCursor.position).where(EventCursor.name == CURSOR)) if taken else None


def _advance(me: str, position: int) -> bool:
    """Move the position while keeping the claim; False when the claim was lost."""
    return db.session.execute(sa.update(EventCursor).where(EventCursor.name == CURSOR, EventCursor.claimed_by == me)
                              .values(position=position, claimed_at=utcnow())).rowcount == 1


def _release(me: str, position: int | None = None) -> bool:
    """Give the claim back, moving the position when given; False when the claim was lost."""
    values: dict = {"claimed_by": None, "claimed_at": None}
    if position is not None:
        values["position"] = position
    return db.session.execute(sa.update(EventCursor).where(EventCursor.name == CURSOR, EventCursor.claimed_by == me)
                              .values(**values)).rowcount == 1


def process_events() -> int:
    """One pass in the current app context: handle every new event; how many were handled."""
    me = secrets.token_hex(8)
    handled = 0
    while True:
        position = _claim(me)
        if position is None:
            return handled
        try:
            page = gateway().events(position, PAGE)
            for event in page["data"]:
                handler = HANDLERS.get(event.get("kind"))
                if handler is None:
                    log.warning("event %s of unknown kind skipped", event.get("id"))
                else:
                    handler(event)
                # The position moves with each event's own work (a handler may call
                # Stripe): a failure later in the page repeats only what was not done.
                if not _advance(me, int(event["id"])):
                    db.session.rollback()
                    return handled
                db.session.commit()
                handled += 1
            if not _release(me, int(page["next_cursor"])):
                # Held past the lease and taken over: the other worker handles this page.
                db.session.rollback()
                return handled
            db.session.commit()
        except BaseException:
            db.session.rollback()
            _release(me)
            db.session.commit()
            raise
        if len(page["data"]) < PAGE:
            return handled


class EventWorker:
    """Runs ``process_events`` every ``poll_seconds`` in a background thread."""

    def __init__(self, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self._apps: list[weakref.ref] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, app: Flask) -> None:
        """Run the passes in ``app``'s context from now on (while it lives)."""
        self._apps = [ref for ref in self._apps if ref() is not None] + [weakref.ref(app)]

    def _app(self) -> Flask | None:
        for ref in reversed(self._apps):
            app = ref()
            if app is not None:
                return app
        return None

    def start(self) -> None:
        """Start the background thread (once)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="event-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after the pass in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            app = self._app()
            if app is not None:
                with app.app_context():
                    try:
                        process_events()
                    except (GatewayUnavailable, GatewayError, sa.exc.SQLAlchemyError) as exc:
                        log.debug("events not read this time: %s", type(exc).__name__)
                    except Exception:  # noqa: BLE001 - the worker must outlive any one event
                        log.exception("event worker failed; retrying at the next poll")
                    finally:
                        db.session.remove()
            self._stop.wait(self.poll_seconds)


_workers: dict[str, EventWorker] = {}
_workers_lock = threading.Lock()


def install(app: Flask) -> EventWorker | None:
    """Attach ``app`` to its database's worker, starting it with the first app (unless switched off)."""
    seconds = float(app.config.get("EVENT_POLL_SECONDS") or 0)
    if seconds <= 0:
        return None
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    with _workers_lock:
        worker = _workers.get(uri)
        if worker is None:
            worker = _workers[uri] = EventWorker(seconds)
        worker.attach(app)
        worker.start()
    app.extensions["event_worker"] = worker
    return worker
