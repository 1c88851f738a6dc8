"""Auto top-up: a saved card charged off-session when the balance falls below a threshold.

Money rules kept here:
- the gateway notices the crossing once (an ``auto_top_up`` event) and the event worker
  calls ``on_crossing``; the refill row is keyed by that event, and the PaymentIntent's
  idempotency key by that row, so a crossing charges the card at most once however often
  its event is handled;
- the settings row is locked (an UPDATE on it) while a refill is decided: at most one
  refill is in flight per account, and this month's refills (pending or paid) plus the
  new one never exceed the monthly maximum, whichever portal process decides; a month is
  a calendar month in the account's time zone;
- the credit is posted once, when Stripe says the intent succeeded (the webhook or the
  charge's own answer, re-read from Stripe), under ledger key ``refill:<payment_intent id>``;
- a declined card (``card_declined``, ``authentication_required``, ...) switches auto
  top-up off and e-mails the account.
Only Stripe's customer and payment-method ids are stored, never card details.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update

from portal import events
from portal.accounts import ensure_account
from portal.extensions import db
from portal.gateway_client import GatewayError, GatewayUnavailable, gateway
from portal.mail import queue_mail
from portal.models import User
from portal.teams import recipients
from portal.timeutil import as_aware, utcnow, zone

from . import stripe_api
from .models import (
    MICRO_P_PER_CENT, REFILL_FAILED, REFILL_PENDING, REFILL_SUCCEEDED, AutoTopUp, Refill,
)

log = logging.getLogger(__name__)

DECLINED_SUBJECT = "Auto top-up is off: your card was declined"
# Statuses that count against the monthly maximum.
COUNTED = (REFILL_PENDING, REFILL_SUCCEEDED)


class RefillNotFound(Exception):
    """No refill of ours belongs to this Stripe object."""


class RefillMismatch(Exception):
    """Stripe's PaymentIntent disagrees with the stored refill (amount or currency)."""


def settings_for(user: User) -> AutoTopUp | None:
    """The user's auto top-up row, if any."""
    return db.session.get(AutoTopUp, user.id)


def _lock_settings(user_id: int) -> AutoTopUp | None:
    # The UPDATE takes PostgreSQL's row lock and SQLite's write lock: deciders queue here.
    db.session.execute(update(AutoTopUp).where(AutoTopUp.user_id == user_id).values(updated_at=utcnow()))
    return db.session.execute(select(AutoTopUp).where(AutoTopUp.user_id == user_id)
                              .execution_options(populate_existing=True)).scalar_one_or_none()


def month_bounds(when: datetime, tz: str) -> tuple[datetime, datetime]:
    """The calendar month holding ``when`` (naive UTC) in zone ``tz``, as naive UTC [start, end)."""
    local = as_aware(when).astimezone(zone(tz))
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    # Wall-clock arithmetic: each local midnight gets its own offset, as a month may start
    # in summer time and end in winter time.
    return tuple(moment.astimezone(timezone.utc).replace(tzinfo=None) for moment in (start, end))


def month_of(when: datetime, tz: str) -> str:
    """The calendar month in zone ``tz`` that a refill started at ``when`` (naive UTC) counts against, ``YYYY-MM``."""
    return as_aware(when).astimezone(zone(tz)).strftime("%Y-%m")


def charged_this_month(user_id: int, tz: str, now: datetime) -> int:
    """Cents of the refills started this calendar month (in zone ``tz``) that are paid or still in flight.

    Counted by when each refill started rather than by its stored month, so a user who
    changes zone is held to the months of the zone they have now.
    """
    start, end = month_bounds(now, tz)
    return int(db.session.scalar(select(func.coalesce(func.sum(Refill.amount_cents), 0)).where(
        Refill.user_id == user_id, Refill.created_at >= start, Refill.created_at < end,
        Refill.status.in_(COUNTED))) or 0)


# -- settings ---------------------------------------------------------------------------


def save_settings(user: User, enabled: bool, threshold_micro_p: int, amount_cents: int,
                  monthly_max_cents: int) -> AutoTopUp:
    """Store the settings and tell the gateway which threshold to watch (none when off).

    Raises ``ValueError`` with a message for the form when turning it on without a saved card.
    """
    row = settings_for(user) or AutoTopUp(user_id=user.id, enabled=False)
    if enabled and not row.stripe_payment_method_id:
        raise ValueError("Save a card first: auto top-up charges a saved card.")
    row.enabled, row.threshold_micro_p = enabled, threshold_micro_p
    row.amount_cents, row.monthly_max_cents = amount_cents, monthly_max_cents
    if enabled:
        row.stopped_reason = None
    db.session.add(row)
    db.session.commit()
    _watch(user, row)
    return row


def _watch(user: User, row: AutoTopUp) -> None:
    # The gateway's threshold follows the settings; a balance already below it refills at once.
    threshold = row.threshold_micro_p if row.enabled and row.stripe_payment_method_id else None
    gateway().set_thresholds(ensure_account(user), auto_top_up_threshold_micro_p=threshold)


def start_card_setup(user: User, success_url: str, cancel_url: str) -> str:
    """Open a setup-mode Checkout Session that saves a card; its URL.

    ``success_url`` should carry ``{CHECKOUT_SESSION_ID}``. Raises ``StripeUnavailable``.
    """
    row = settings_for(user) or AutoTopUp(user_id=user.id, enabled=False)
    if not row.stripe_customer_id:
        customer = stripe_api.create_customer({"email": user.email, "metadata": {"user_id": str(user.id)}},
                                              idempotency_key=f"customer:{user.id}:{user.email}")
        row.stripe_customer_id = customer["id"]
        db.session.add(row)
        db.session.commit()
    session = stripe_api.create_checkout_session({
        "mode": "setup", "customer": row.stripe_customer_id, "currency": "usd",
        "client_reference_id": str(user.id), "metadata": {"user_id": str(user.id), "purpose": "auto_top_up"},
        "success_url": success_url, "cancel_url": cancel_url,
    }, idempotency_key=f"setup:{user.id}:{uuid.uuid4()}")
    if not session.get("url"):
        raise stripe_api.StripeUnavailable("Stripe answered without a page to save the card.")
    return session["url"]


def finish_card_setup(session_id: str, user: User | None = None) -> AutoTopUp:
    """Re-read a setup session and keep the card it saved (its payment-method id).

    ``user`` (from the browser's return) must own the session. Raises ``RefillNotFound``
    for a session that is not ours and ``StripeUnavailable``.
    """
    session = stripe_api.retrieve_setup_session(session_id)
    row = None
    if session.get("mode") == "setup" and session.get("customer"):
        row = db.session.execute(select(AutoTopUp).where(AutoTopUp.stripe_customer_id == session["customer"])
                                 ).scalar_one_or_none()
    if row is None or (user is not None and row.user_id != user.id):
        raise RefillNotFound(f"No auto top-up belongs to checkout session {session_id}.")
    setup = session.get("setup_intent")
    if isinstance(setup, dict) and setup.get("status") == "succeeded" and setup.get("payment_method"):
        row = _lock_settings(row.user_id)
        row.stripe_payment_method_id = setup["payment_method"]
        row.card_label = "Saved card"
        db.session.commit()
        owner = db.session.get(User, row.user_id)
        if owner is not None and row.enabled:
            _watch(owner, row)
    return row


# -- the crossing -------------------------------------------------------------------------


def on_crossing(event: dict) -> None:
    """The event worker's handler of ``auto_top_up`` events: start the refill, once."""
    user = db.session.execute(select(User).where(User.account_id == event["account_id"])).scalars().first()
    if user is None:
        return
    refill = db.session.execute(select(Refill).where(Refill.event_id == int(event["id"]))).scalar_one_or_none()
    if refill is None:
        refill = _decide(user, int(event["id"]))
        if refill is None:
            return
    if refill.status == REFILL_PENDING and refill.payment_intent_id is None:
        _charge(user, refill)


def _decide(user: User, event_id: int) -> Refill | None:
    """Under the settings lock: a new pending refill, or None (off, in flight, or over the maximum)."""
    row = _lock_settings(user.id)
    if row is None or not row.enabled or not row.stripe_payment_method_id or not row.amount_cents:
        db.session.rollback()
        return None
    if row.in_flight_refill_id is not None:
        log.info("auto top-up for user %s skipped: a refill is already in flight", user.id)
        db.session.rollback()
        return None
    now = utcnow()
    if charged_this_month(user.id, user.tz, now) + row.amount_cents > (row.monthly_max_cents or 0):
        log.info("auto top-up for user %s skipped: the monthly maximum is reached", user.id)
        db.session.rollback()
        return None
    refill = Refill(user_id=user.id, event_id=event_id, amount_cents=row.amount_cents,
                    month=month_of(now, user.tz), status=REFILL_PENDING, created_at=now)
    db.session.add(refill)
    db.session.flush()
    row.in_flight_refill_id = refill.id
    db.session.commit()
    return refill


def _charge(user: User, refill: Refill) -> None:
    """Charge the saved card for ``refill``; a retry with the same key is the same charge."""
    row = settings_for(user)
    params: dict[str, Any] = {
        "amount": refill.amount_cents, "currency": "usd",
        "customer": row.stripe_customer_id, "payment_method": row.stripe_payment_method_id,
        "off_session": True, "confirm": True,
        "description": "SAMALink auto top-up",
        "metadata": {"refill_id": str(refill.id), "user_id": str(user.id)},
    }
    try:
        intent = stripe_api.charge_saved_card(params, idempotency_key=f"refill:{refill.id}:{refill.event_id}")
    except stripe_api.CardDeclined as exc:
        _declined(user, refill, exc.code, exc.payment_intent_id)
        return
    refill.payment_intent_id = intent["id"]
    db.session.commit()
    if intent.get("status") == "succeeded":
        credit_refill(intent["id"])


def _declined(user: User, refill: Refill, code: str, payment_intent_id: str | None) -> None:
    """The card refused: the refill failed, auto top-up goes off, and the account is told."""
    row = _lock_settings(user.id)
    refill = db.session.execute(select(Refill).where(Refill.id == refill.id)
                                .execution_options(populate_existing=True)).scalar_one()
    if refill.status != REFILL_PENDING:
        db.session.rollback()
        return
    refill.status, refill.failure_code = REFILL_FAILED, (code or "card_declined")[:64]
    if payment_intent_id and refill.payment_intent_id is None:
        refill.payment_intent_id = payment_intent_id
    if row is not None:
        row.enabled = False
        row.stopped_reason = f"Your card was declined ({refill.failure_code}); auto top-up was switched off."
        if row.in_flight_refill_id == refill.id:
            row.in_flight_refill_id = None
    base = current_app.config["LINK_BASE_URL"].rstrip("/")
    for address in [u.email for u in recipients(user.account_id)] if user.account_id else [user.email]:
        queue_mail(address, DECLINED_SUBJECT, (
            f"We tried to add ${refill.amount_cents // 100:,}.{refill.amount_cents % 100:02d} to your SAMALink "
            f"balance with your saved card, and the card was declined ({refill.failure_code}).\n\n"
            "Auto top-up is now off, so nothing more will be charged. Check the card or save another one, "
            f"then switch auto top-up on again:\n{base}/billing\n"
        ))
    db.session.commit()
    try:
        gateway().set_thresholds(ensure_account(user), auto_top_up_threshold_micro_p=None)
    except (GatewayUnavailable, GatewayError) as exc:
        # Harmless: events of a switched-off auto top-up are ignored.
        log.warning("could not stop the gateway watching for user %s: %s", user.id, type(exc).__name__)


def _refill_for_intent(intent: dict[str, Any]) -> Refill | None:
    refill = db.session.execute(select(Refill).where(Refill.payment_intent_id == intent["id"])).scalar_one_or_none()
    if refill is not None:
        return refill
    # The charge's answer was lost before its id was stored: the metadata names our row.
    reference = (intent.get("metadata") or {}).get("refill_id") or ""
    if not reference.isdigit():
        return None
    refill = db.session.get(Refill, int(reference))
    if refill is None or refill.payment_intent_id not in (None, intent["id"]):
        return None
    return refill


def credit_refill(payment_intent_id: str) -> Refill:
    """Credit a succeeded refill once (``refill:<payment_intent id>``), re-reading Stripe.

    Safe to call any number of times, concurrently. Raises ``RefillNotFound``,
    ``RefillMismatch``, ``StripeUnavailable`` and ``GatewayUnavailable``.
    """
    intent = stripe_api.retrieve_payment_intent(payment_intent_id)
    refill = _refill_for_intent(intent)
    if refill is None:
        raise RefillNotFound(f"No refill belongs to payment intent {payment_intent_id}.")
    if intent.get("status") != "succeeded":
        return refill
    if intent.get("amount") != refill.amount_cents or (intent.get("currency") or "").lower() != "usd":
        log.error("payment intent %s for refill %s is %s %s, expected %s usd; not credited",
                  payment_intent_id, refill.id, intent.get("amount"), intent.get("currency"), refill.amount_cents)
        raise RefillMismatch("The refill amount does not match the payment; nothing was credited.")
    user = db.session.get(User, refill.user_id)
    account_id = ensure_account(user)
    try:
        row = _lock_settings(refill.user_id)
        refill = db.session.execute(select(Refill).where(Refill.id == refill.id)
                                    .execution_options(populate_existing=True)).scalar_one()
        if refill.status != REFILL_SUCCEEDED:
            gateway().post_ledger_entry(account_id, "credit", refill.amount_cents * MICRO_P_PER_CENT,
                                        f"refill:{payment_intent_id}",
                                        f"Auto top-up ${refill.amount_cents // 100:,}.{refill.amount_cents % 100:02d}")
            refill.status, refill.payment_intent_id = REFILL_SUCCEEDED, payment_intent_id
        if row is not None and row.in_flight_refill_id == refill.id:
            row.in_flight_refill_id = None
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return refill


def refill_failed(payment_intent_id: str) -> Refill:
    """``payment_intent.payment_failed``: a refill Stripe could not collect is a decline."""
    intent = stripe_api.retrieve_payment_intent(payment_intent_id)
    refill = _refill_for_intent(intent)
    if refill is None:
        raise RefillNotFound(f"No refill belongs to payment intent {payment_intent_id}.")
    if intent.get("status") in ("requires_payment_method", "canceled"):
        code = (intent.get("last_payment_error") or {}).get("code") or "card_declined"
        _declined(db.session.get(User, refill.user_id), refill, code, payment_intent_id)
    return refill


def webhook_handler(event: dict[str, Any]):
    """The function that handles this Stripe event for auto top-up, or None when it is not one."""
    obj = event["data"]["object"]
    if event["type"] == "checkout.session.completed" and obj.get("mode") == "setup":
        return finish_card_setup
    if event["type"] in ("payment_intent.succeeded", "payment_intent.payment_failed") \
            and (obj.get("metadata") or {}).get("refill_id"):
        return credit_refill if event["type"] == "payment_intent.succeeded" else refill_failed
    return None


events.on("auto_top_up", on_crossing)
