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
  top-up off and e-mails the account's owners and billing members;
- settings belong to the account (personal or team); the card is the person's who saved
  it, and is charged only while they may pay for the account (a team member who leaves or
  loses the billing role takes it along: auto top-up switches off at the next crossing).
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
from portal.extensions import db
from portal.gateway_client import GatewayError, GatewayUnavailable, gateway
from portal.mail import queue_mail
from portal.models import User
from portal.teams import account_zone, recipients
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


def settings_for(account_id: str) -> AutoTopUp | None:
    """The account's auto top-up row, if any."""
    return db.session.get(AutoTopUp, account_id)


def _lock_settings(account_id: str) -> AutoTopUp | None:
    # The UPDATE takes PostgreSQL's row lock and SQLite's write lock: deciders queue here.
    db.session.execute(update(AutoTopUp).where(AutoTopUp.account_id == account_id).values(updated_at=utcnow()))
    return db.session.execute(select(AutoTopUp).where(AutoTopUp.account_id == account_id)
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


def charged_this_month(account_id: str, tz: str, now: datetime) -> int:
    """Cents of the account's refills started this calendar month (in zone ``tz``) that are paid or still in flight.

    Counted by when each refill started rather than by its stored month, so an account
    whose zone changes is held to the months of the zone it has now.
    """
    start, end = month_bounds(now, tz)
    return int(db.session.scalar(select(func.coalesce(func.sum(Refill.amount_cents), 0)).where(
        Refill.account_id == account_id, Refill.created_at >= start, Refill.created_at < end,
        Refill.status.in_(COUNTED))) or 0)


def card_holder_may_pay(row: AutoTopUp) -> bool:
    """True while the person whose card is saved may still pay for the account: its own user,
    or a team owner or billing member. A member who leaves takes their card's consent along."""
    return row.saved_by is not None and row.saved_by in {user.id for user in recipients(row.account_id)}


def card_holder(row: AutoTopUp | None) -> User | None:
    """The person whose card ``row`` charges, if still known."""
    return db.session.get(User, row.saved_by) if row is not None and row.saved_by is not None else None


# -- settings ---------------------------------------------------------------------------


def save_settings(account_id: str, enabled: bool, threshold_micro_p: int, amount_cents: int,
                  monthly_max_cents: int) -> AutoTopUp:
    """Store the account's settings and tell the gateway which threshold to watch (none when off).

    Raises ``ValueError`` with a message for the form when turning it on without a card
    that may be charged. Raises ``GatewayUnavailable`` and ``GatewayError`` after saving.
    """
    row = settings_for(account_id) or AutoTopUp(account_id=account_id, enabled=False)
    if enabled and not row.stripe_payment_method_id:
        raise ValueError("Save a card first: auto top-up charges a saved card.")
    if enabled and not card_holder_may_pay(row):
        raise ValueError("The saved card belongs to someone who no longer pays for this account; save a card again.")
    row.enabled, row.threshold_micro_p = enabled, threshold_micro_p
    row.amount_cents, row.monthly_max_cents = amount_cents, monthly_max_cents
    if enabled:
        row.stopped_reason = None
    db.session.add(row)
    db.session.commit()
    _watch(row)
    return row


def _watch(row: AutoTopUp) -> None:
    # The gateway's threshold follows the settings; a balance already below it refills at once.
    threshold = row.threshold_micro_p if row.enabled and row.stripe_payment_method_id else None
    gateway().set_thresholds(row.account_id, auto_top_up_threshold_micro_p=threshold)


def _stop_watching(account_id: str) -> None:
    try:
        gateway().set_thresholds(account_id, auto_top_up_threshold_micro_p=None)
    except (GatewayUnavailable, GatewayError) as exc:
        # Harmless: events of a switched-off auto top-up are ignored.
        log.warning("could not stop the gateway watching account %s: %s", account_id, type(exc).__name__)


def start_card_setup(account_id: str, user: User, success_url: str, cancel_url: str) -> str:
    """Open a setup-mode Checkout Session in which ``user`` saves their card for the account; its URL.

    ``success_url`` should carry ``{CHECKOUT_SESSION_ID}``. Raises ``StripeUnavailable``.
    """
    row = settings_for(account_id) or AutoTopUp(account_id=account_id, enabled=False)
    if not row.stripe_customer_id:
        customer = stripe_api.create_customer(
            {"email": user.email, "metadata": {"account_id": account_id, "user_id": str(user.id)}},
            idempotency_key=f"customer:{account_id}")
        row.stripe_customer_id = customer["id"]
        db.session.add(row)
        db.session.commit()
    session = stripe_api.create_checkout_session({
        "mode": "setup", "customer": row.stripe_customer_id, "currency": "usd",
        "client_reference_id": str(user.id),
        "metadata": {"user_id": str(user.id), "account_id": account_id, "purpose": "auto_top_up"},
        "success_url": success_url, "cancel_url": cancel_url,
    }, idempotency_key=f"setup:{account_id}:{uuid.uuid4()}")
    if not session.get("url"):
        raise stripe_api.StripeUnavailable("Stripe answered without a page to save the card.")
    return session["url"]


def finish_card_setup(session_id: str, account_id: str | None = None) -> AutoTopUp:
    """Re-read a setup session and keep the card it saved (its payment-method id) and whose it is.

    ``account_id`` (the account selected in the browser that returns) must own the session.
    Raises ``RefillNotFound`` for a session that is not ours and ``StripeUnavailable``.
    """
    session = stripe_api.retrieve_setup_session(session_id)
    row = None
    if session.get("mode") == "setup" and session.get("customer"):
        row = db.session.execute(select(AutoTopUp).where(AutoTopUp.stripe_customer_id == session["customer"])
                                 ).scalar_one_or_none()
    if row is None or (account_id is not None and row.account_id != account_id):
        raise RefillNotFound(f"No auto top-up belongs to checkout session {session_id}.")
    setup = session.get("setup_intent")
    saver = str((session.get("metadata") or {}).get("user_id") or "")
    if isinstance(setup, dict) and setup.get("status") == "succeeded" and setup.get("payment_method"):
        row = _lock_settings(row.account_id)
        if row.stripe_payment_method_id != setup["payment_method"]:
            row.stripe_payment_method_id = setup["payment_method"]
            row.saved_by = int(saver) if saver.isdigit() and db.session.get(User, int(saver)) else None
            row.card_label = "Saved card"
        db.session.commit()
        if row.enabled:
            _watch(row)
    return row


# -- the crossing -------------------------------------------------------------------------


def on_crossing(event: dict) -> None:
    """The event worker's handler of ``auto_top_up`` events: start the refill, once."""
    account_id = str(event["account_id"])
    refill = db.session.execute(select(Refill).where(Refill.event_id == int(event["id"]))).scalar_one_or_none()
    if refill is None:
        refill = _decide(account_id, int(event["id"]))
        if refill is None:
            return
    if refill.status == REFILL_PENDING and refill.payment_intent_id is None:
        _charge(refill)


def _decide(account_id: str, event_id: int) -> Refill | None:
    """Under the settings lock: a new pending refill, or None (off, in flight, over the maximum,
    or a card whose holder no longer pays for the account, which switches auto top-up off)."""
    row = _lock_settings(account_id)
    if row is None or not row.enabled or not row.stripe_payment_method_id or not row.amount_cents:
        db.session.rollback()
        return None
    if not card_holder_may_pay(row):
        row.enabled = False
        row.stopped_reason = ("Auto top-up was switched off: the saved card belongs to someone who no longer "
                              "pays for this account. Save a card to switch it on again.")
        db.session.commit()
        _stop_watching(account_id)
        return None
    if row.in_flight_refill_id is not None:
        log.info("auto top-up for account %s skipped: a refill is already in flight", account_id)
        db.session.rollback()
        return None
    now, tz = utcnow(), account_zone(account_id)
    if charged_this_month(account_id, tz, now) + row.amount_cents > (row.monthly_max_cents or 0):
        log.info("auto top-up for account %s skipped: the monthly maximum is reached", account_id)
        db.session.rollback()
        return None
    refill = Refill(account_id=account_id, event_id=event_id, amount_cents=row.amount_cents,
                    month=month_of(now, tz), status=REFILL_PENDING, created_at=now)
    db.session.add(refill)
    db.session.flush()
    row.in_flight_refill_id = refill.id
    db.session.commit()
    return refill


def _charge(refill: Refill) -> None:
    """Charge the saved card for ``refill``; a retry with the same key is the same charge."""
    row = settings_for(refill.account_id)
    params: dict[str, Any] = {
        "amount": refill.amount_cents, "currency": "usd",
        "customer": row.stripe_customer_id, "payment_method": row.stripe_payment_method_id,
        "off_session": True, "confirm": True,
        "description": "SAMALink auto top-up",
        "metadata": {"refill_id": str(refill.id), "account_id": refill.account_id},
    }
    try:
        intent = stripe_api.charge_saved_card(params, idempotency_key=f"refill:{refill.id}:{refill.event_id}")
    except stripe_api.CardDeclined as exc:
        _declined(refill, exc.code, exc.payment_intent_id)
        return
    refill.payment_intent_id = intent["id"]
    db.session.commit()
    if intent.get("status") == "succeeded":
        credit_refill(intent["id"])


def _declined(refill: Refill, code: str, payment_intent_id: str | None) -> None:
    """The card refused: the refill failed, auto top-up goes off, and the account is told."""
    row = _lock_settings(refill.account_id)
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
    for user in recipients(refill.account_id):
        queue_mail(user.email, DECLINED_SUBJECT, (
            f"We tried to add ${refill.amount_cents // 100:,}.{refill.amount_cents % 100:02d} to your SAMALink "
            f"balance with your saved card, and the card was declined ({refill.failure_code}).\n\n"
            "Auto top-up is now off, so nothing more will be charged. Check the card or save another one, "
            f"then switch auto top-up on again:\n{base}/billing\n"
        ))
    db.session.commit()
    _stop_watching(refill.account_id)


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
    try:
        row = _lock_settings(refill.account_id)
        refill = db.session.execute(select(Refill).where(Refill.id == refill.id)
                                    .execution_options(populate_existing=True)).scalar_one()
        if refill.status != REFILL_SUCCEEDED:
            gateway().post_ledger_entry(refill.account_id, "credit", refill.amount_cents * MICRO_P_PER_CENT,
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
        _declined(refill, code, payment_intent_id)
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
