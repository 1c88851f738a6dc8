"""Top-ups: create a Checkout Session, credit it once, and follow refunds and disputes.

Money rules kept here:
- the amount credited is the server's own payment row, checked against the session as
  re-read from Stripe — never an event body or anything the browser sent;
- every change to a balance is a gateway ledger entry with an idempotency key derived from
  Stripe's ids (``topup:<session>``, ``refund:<charge>:<cumulative cents>``,
  ``dispute:<dispute>``, ``dispute-won:<dispute>``), so any number of repeats, in any
  order, moves money once;
- refunds and disputes together never take back more than the top-up credited
  (``Payment.taken_back_micro_p``); a dispute takes Stripe's disputed amount, not the
  whole charge, and a dispute won gives back exactly what that dispute took;
- the payment row is locked (an UPDATE on it, which both SQLite and PostgreSQL serialise)
  while Stripe is re-read and the ledger is written, so concurrent deliveries wait for each
  other instead of racing.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from portal.accounts import ensure_account
from portal.extensions import db
from portal.gateway_client import GatewayError, gateway
from portal.money import MICRO_PER_P, InvalidNumber, TooManyDecimals, scaled_integer
from portal.models import User
from portal.timeutil import utcnow

from . import stripe_api
from .models import (
    CREDITED_STATUSES,
    DISPUTE_RETURNED_STATUSES,
    DISPUTED,
    EXPIRED,
    FAILED,
    MICRO_P_PER_CENT,
    PAID,
    PARTIALLY_REFUNDED,
    PENDING,
    REFUNDED,
    UNCREDITED_STATUSES,
    Payment,
    PaymentDispute,
    StripeEvent,
)

log = logging.getLogger(__name__)

MIN_CENTS = 500
MAX_CENTS = 1_000_000
PRESET_USD = (5, 10, 20, 50, 100)


class BillingError(Exception):
    """A top-up problem whose message is safe to show to the customer."""


class InvalidAmount(BillingError):
    """The requested top-up amount is not a number of dollars within the bounds."""


class CheckoutUnavailable(BillingError):
    """Stripe could not start a checkout; the pending payment was marked failed."""


class PaymentNotFound(BillingError):
    """No payment of ours belongs to this Stripe object."""


class PaymentMismatch(BillingError):
    """Stripe's record disagrees with the stored payment (amount, currency or owner)."""


def parse_amount_usd(raw: str | None) -> int:
    """Turn a typed dollar amount ("25", "25.50", "$1,000") into cents within the bounds.

    Read by ``money.scaled_integer`` (a strict pattern and integer arithmetic, bounded
    work for any input). Raises ``InvalidAmount`` with a message for the form.
    """
    text = (raw or "").strip()
    # Anything longer than "10000.00" with generous spacing is not an amount anyone typed.
    if len(text) > 24:
        raise InvalidAmount(_AMOUNT_HINT)
    text = text.removeprefix("$").lstrip()
    try:
        cents = scaled_integer(text, 2)
    except TooManyDecimals:
        raise InvalidAmount("Use at most two decimal places (whole cents).") from None
    except InvalidNumber:
        raise InvalidAmount(_AMOUNT_HINT) from None
    if cents < MIN_CENTS:
        raise InvalidAmount(f"The smallest top-up is ${MIN_CENTS // 100:,}.")
    if cents > MAX_CENTS:
        raise InvalidAmount(f"The largest top-up is ${MAX_CENTS // 100:,}.")
    return cents


_AMOUNT_HINT = "Enter an amount in US dollars, like 25 or 25.50."


def create_checkout(user: User, amount_cents: int, success_url: str, cancel_url: str,
                    account_id: str | None = None) -> str:
    """Record a pending payment, open a Stripe Checkout Session for it and return its URL.

    ``account_id`` is the team account it credits (None: the user's own).

    ``success_url`` should carry ``{CHECKOUT_SESSION_ID}``, which Stripe fills in.
    Raises ``InvalidAmount``, ``CheckoutUnavailable`` (payment row marked failed, nothing
    charged) or ``stripe_api.PaymentsNotConfigured``.
    """
    if not MIN_CENTS <= amount_cents <= MAX_CENTS:
        raise InvalidAmount(f"Top-ups are between ${MIN_CENTS // 100:,} and ${MAX_CENTS // 100:,}.")
    if not stripe_api.payments_configured():
        raise stripe_api.PaymentsNotConfigured("Card payments are not configured.")
    payment = Payment(
        user_id=user.id,
        account_id=account_id,
        reference=str(uuid.uuid4()),
        amount_cents=amount_cents,
        credit_micro_p=amount_cents * MICRO_P_PER_CENT,
        status=PENDING,
    )
    db.session.add(payment)
    db.session.commit()
    p_credit = amount_cents * MICRO_P_PER_CENT // MICRO_PER_P
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [{
            "quantity": 1,
            "price_data": {
                "currency": "usd",
                "unit_amount": amount_cents,
                "product_data": {
                    "name": "SAMALink balance top-up",
                    "description": f"{p_credit:,} SAMA-P credited to your SAMALink balance",
                },
            },
        }],
        "client_reference_id": payment.reference,
        "customer_email": user.email,
        "metadata": {"payment_id": str(payment.id), "user_id": str(user.id),
                     "reference": payment.reference},
        "payment_intent_data": {"metadata": {"payment_id": str(payment.id), "user_id": str(user.id)}},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    try:
        session = stripe_api.create_checkout_session(params, idempotency_key=f"checkout:{payment.reference}")
    except stripe_api.StripeUnavailable as exc:
        payment.status = FAILED
        payment.failure_reason = "Stripe was unavailable when the checkout was started."
        db.session.commit()
        raise CheckoutUnavailable(
            "Card payments are unavailable right now and nothing was charged. Please try again in a few minutes."
        ) from exc
    if not session.get("id") or not session.get("url"):
        payment.status = FAILED
        payment.failure_reason = "Stripe answered without a checkout page."
        db.session.commit()
        raise CheckoutUnavailable("Stripe did not open a checkout page and nothing was charged. Please try again.")
    payment.stripe_session_id = session["id"]
    db.session.commit()
    return session["url"]


# -- locking and lookups ---------------------------------------------------------------


def _lock_payment(payment_id: int) -> Payment:
    """Begin the write transaction by touching the row, then read it fresh.

    The UPDATE takes PostgreSQL's row lock and SQLite's write lock alike, so every other
    writer of this payment waits until this transaction commits or rolls back.
    """
    db.session.execute(update(Payment).where(Payment.id == payment_id).values(updated_at=utcnow()))
    return db.session.execute(
        select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    ).scalar_one()


def _id_of(value: Any) -> str | None:
    """A Stripe reference that may be an id string or an expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def _payment_for_session(session: dict[str, Any]) -> Payment | None:
    payment = db.session.execute(
        select(Payment).where(Payment.stripe_session_id == session["id"])
    ).scalar_one_or_none()
    if payment is not None:
        return payment
    # The creation answer may have been lost after Stripe made the session: the metadata
    # written at creation still names our row.
    metadata = session.get("metadata") or {}
    reference = metadata.get("reference") or session.get("client_reference_id")
    if not reference:
        return None
    payment = db.session.execute(select(Payment).where(Payment.reference == reference)).scalar_one_or_none()
    if payment is None or payment.stripe_session_id not in (None, session["id"]):
        return None
    payment.stripe_session_id = session["id"]
    db.session.commit()
    return payment


def _account_of(payment: Payment) -> str:
    if payment.account_id:
        return payment.account_id
    user = db.session.get(User, payment.user_id)
    if user is None:
        raise PaymentNotFound(f"payment {payment.id} has no user")
    return ensure_account(user)


def _ledger(account_id: str, payment: Payment, kind: str, amount_micro_p: int, key: str,
            description: str) -> None:
    """Post one ledger entry; a replayed key is the gateway's no-op. Raises ``GatewayUnavailable``."""
    try:
        gateway().post_ledger_entry(account_id, kind, amount_micro_p, key, description)
    except GatewayError as exc:
        log.error("gateway refused %s entry %s for payment %s: %s", kind, key, payment.id, exc.message)
        raise


# -- fulfilment ---------------------------------------------------------------------------


def _apply_session(account_id: str, payment: Payment, session: dict[str, Any]) -> None:
    """Copy what the re-read session says onto the locked payment row, crediting once."""
    intent = session.get("payment_intent")
    if _id_of(intent):
        payment.payment_intent_id = _id_of(intent)
    charge = intent.get("latest_charge") if isinstance(intent, dict) else None
    if isinstance(charge, dict):
        payment.charge_id = charge.get("id") or payment.charge_id
        payment.receipt_url = charge.get("receipt_url") or payment.receipt_url
    elif charge:
        payment.charge_id = charge

    if session.get("payment_status") == "paid":
        amount, currency = session.get("amount_total"), (session.get("currency") or "").lower()
        if amount != payment.amount_cents or currency != "usd":
            log.error("session %s for payment %s is %s %s, expected %s usd; not credited",
                      session["id"], payment.id, amount, currency, payment.amount_cents)
            raise PaymentMismatch("The payment amount does not match the checkout; nothing was credited.")
        if payment.status in UNCREDITED_STATUSES:
            _ledger(account_id, payment, "credit", payment.credit_micro_p, f"topup:{session['id']}",
                    f"Card top-up ${payment.amount_usd}")
            payment.status = PAID
            payment.failure_reason = None
    elif session.get("status") == "expired" and payment.status == PENDING:
        payment.status = EXPIRED


def fulfill_checkout(session_id: str) -> Payment:
    """Re-read a Checkout Session from Stripe and credit its payment once if it is paid.

    Safe to call any number of times, concurrently, before or after any webhook.
    Raises ``PaymentNotFound`` for a session that is not ours, ``PaymentMismatch`` when
    Stripe's amount differs from the stored one, ``stripe_api.StripeUnavailable`` and
    ``GatewayUnavailable`` when a service is down (nothing is marked paid then).
    """
    session = stripe_api.retrieve_checkout_session(session_id)
    payment = _payment_for_session(session)
    if payment is None:
        raise PaymentNotFound(f"No payment belongs to checkout session {session_id}.")
    if payment.credited and payment.receipt_url:
        return payment
    # Resolved before the lock: creating a missing account commits.
    account_id = _account_of(payment)
    try:
        payment = _lock_payment(payment.id)
        _apply_session(account_id, payment, session)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return payment


def mark_checkout_failed(session_id: str) -> Payment:
    """An asynchronous payment (a bank debit) failed: mark the pending payment failed."""
    session = stripe_api.retrieve_checkout_session(session_id)
    payment = _payment_for_session(session)
    if payment is None:
        raise PaymentNotFound(f"No payment belongs to checkout session {session_id}.")
    account_id = _account_of(payment)
    try:
        payment = _lock_payment(payment.id)
        if session.get("payment_status") == "paid":
            # Stripe's current state wins over the event: the money did arrive.
            _apply_session(account_id, payment, session)
        elif payment.status == PENDING:
            payment.status = FAILED
            payment.failure_reason = "The bank declined or returned the payment."
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return payment


def expire_checkout(session_id: str) -> Payment:
    """A Checkout Session expired unpaid: the pending payment becomes expired."""
    return fulfill_checkout(session_id)


# -- refunds and disputes ----------------------------------------------------------------


def _payment_for_intent(payment_intent_id: str | None) -> Payment | None:
    """The credited payment for a payment intent, fulfilling its session first if needed."""
    if not payment_intent_id:
        return None
    payment = db.session.execute(
        select(Payment).where(Payment.payment_intent_id == payment_intent_id)
    ).scalar_one_or_none()
    if payment is None:
        # A charge event that overtook the checkout events: find the session and credit it.
        session_id = stripe_api.find_checkout_session_id(payment_intent_id)
        if session_id is None:
            return None
        try:
            payment = fulfill_checkout(session_id)
        except PaymentNotFound:
            return None
    elif not payment.credited and payment.stripe_session_id:
        payment = fulfill_checkout(payment.stripe_session_id)
    if not payment.credited:
        raise PaymentMismatch(f"Payment {payment.id} is refunded or disputed but its checkout is not paid.")
    return payment


def _status_after_refund(payment: Payment) -> str:
    if payment.disputed:
        return DISPUTED
    if payment.refunded_cents >= payment.amount_cents:
        return REFUNDED
    if payment.refunded_cents > 0:
        return PARTIALLY_REFUNDED
    return PAID


def record_charge_refund(charge_id: str) -> Payment | None:
    """Debit whatever part of a charge was refunded since last time; ``None`` if not ours.

    The charge is re-read, so its cumulative ``amount_refunded`` is Stripe's current
    figure whatever order the refund events arrive in.
    """
    charge = stripe_api.retrieve_charge(charge_id)
    payment = _payment_for_intent(_id_of(charge.get("payment_intent")))
    if payment is None:
        return None
    account_id = _account_of(payment)
    try:
        payment = _lock_payment(payment.id)
        refunded = min(int(charge.get("amount_refunded") or 0), payment.amount_cents)
        newly = refunded - payment.refunded_cents
        if newly > 0:
            # A refund of money a dispute already took back moves nothing twice.
            take = min(newly * MICRO_P_PER_CENT, payment.room_to_take_back)
            if take > 0:
                _ledger(account_id, payment, "refund", take, f"refund:{charge['id']}:{refunded}",
                        f"Refund of card top-up ${payment.amount_usd}")
            payment.taken_back_micro_p += take
            payment.refunded_cents = refunded
        payment.charge_id = payment.charge_id or charge["id"]
        payment.receipt_url = payment.receipt_url or charge.get("receipt_url")
        payment.status = _status_after_refund(payment)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return payment


def _disputed_cents(dispute: dict[str, Any]) -> int:
    """Stripe's disputed amount in cents; a dispute in another currency is not ours to convert."""
    amount, currency = dispute.get("amount"), (dispute.get("currency") or "").lower()
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0 or currency != "usd":
        log.error("dispute %s is %r %r; expected whole usd cents", dispute.get("id"), amount, currency)
        raise PaymentMismatch("The dispute's amount is not in US cents; nothing was taken back.")
    return amount


def _apply_dispute(account_id: str, payment: Payment, dispute: dict[str, Any]) -> None:
    """Bring the locked payment in line with one dispute as Stripe reports it now.

    First seen open (or lost), the dispute takes its own amount, capped at what the top-up
    has not yet had taken back; first seen already won, it takes nothing. Once won, it
    gives back what it took. Each step happens once whatever the events' order or count.
    """
    row = db.session.execute(
        select(PaymentDispute).where(PaymentDispute.id == dispute["id"]).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    status = str(dispute.get("status") or "")[:32]
    cents = _disputed_cents(dispute)
    if row is None:
        row = PaymentDispute(id=dispute["id"], payment_id=payment.id, amount_cents=cents, status=status,
                             taken_micro_p=0, returned_micro_p=0)
        db.session.add(row)
        if status not in DISPUTE_RETURNED_STATUSES:
            take = min(cents * MICRO_P_PER_CENT, payment.room_to_take_back)
            if take > 0:
                _ledger(account_id, payment, "debit", take, f"dispute:{dispute['id']}",
                        f"Dispute of ${cents // 100:,}.{cents % 100:02d} on card top-up ${payment.amount_usd}")
            row.taken_micro_p = take
            payment.taken_back_micro_p += take
    elif row.payment_id != payment.id:
        raise PaymentMismatch(f"Dispute {dispute['id']} belongs to another payment.")
    row.status = status
    give = row.taken_micro_p - row.returned_micro_p
    if status in DISPUTE_RETURNED_STATUSES and give > 0:
        _ledger(account_id, payment, "adjustment", give, f"dispute-won:{dispute['id']}",
                f"Dispute won on card top-up ${payment.amount_usd}")
        row.returned_micro_p += give
        payment.taken_back_micro_p -= give
    db.session.flush()
    open_disputes = db.session.execute(
        select(PaymentDispute.id).where(PaymentDispute.payment_id == payment.id,
                                        PaymentDispute.status.not_in(DISPUTE_RETURNED_STATUSES))
    ).first()
    payment.disputed = open_disputes is not None
    payment.status = _status_after_refund(payment)


def record_dispute(dispute_id: str) -> Payment | None:
    """Follow a dispute of a top-up (opened, updated, won or lost); ``None`` if not ours.

    The dispute is re-read from Stripe, so whichever of its events arrives, in whatever
    order, the balance ends where Stripe's current state says: its disputed amount taken
    back while open or lost, given back once won.
    """
    dispute = stripe_api.retrieve_dispute(dispute_id)
    intent_id = _id_of(dispute.get("payment_intent"))
    if not intent_id and _id_of(dispute.get("charge")):
        intent_id = _id_of(stripe_api.retrieve_charge(_id_of(dispute["charge"])).get("payment_intent"))
    payment = _payment_for_intent(intent_id)
    if payment is None:
        return None
    account_id = _account_of(payment)
    try:
        payment = _lock_payment(payment.id)
        _apply_dispute(account_id, payment, dispute)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return payment


# -- webhook events -----------------------------------------------------------------------

_SESSION_HANDLERS = {
    "checkout.session.completed": fulfill_checkout,
    "checkout.session.async_payment_succeeded": fulfill_checkout,
    "checkout.session.async_payment_failed": mark_checkout_failed,
    "checkout.session.expired": expire_checkout,
}
_CHARGE_HANDLERS = {
    "charge.refunded": record_charge_refund,
    # Every dispute event re-reads the dispute, so each one reconciles to Stripe's state.
    "charge.dispute.created": record_dispute,
    "charge.dispute.updated": record_dispute,
    "charge.dispute.funds_withdrawn": record_dispute,
    "charge.dispute.funds_reinstated": record_dispute,
    "charge.dispute.closed": record_dispute,
}


def event_already_processed(event_id: str) -> bool:
    """Whether this event's work has already been committed."""
    return db.session.get(StripeEvent, event_id) is not None


def handle_event(event: dict[str, Any]) -> str:
    """Do the work of one verified webhook event and record it; return what happened.

    Only the ids in the event are used; every figure is re-read from Stripe. The event is
    recorded after its work committed, so a failure (``StripeUnavailable``,
    ``GatewayUnavailable``) leaves it unrecorded for Stripe's retry.
    """
    event_id, event_type = event["id"], event["type"]
    if event_already_processed(event_id):
        return "duplicate"
    from . import refills  # auto top-up's events: card setups and off-session refills

    object_id = _id_of(event["data"]["object"].get("id"))
    outcome = "ignored"
    handler = refills.webhook_handler(event) or _SESSION_HANDLERS.get(event_type) or _CHARGE_HANDLERS.get(event_type)
    if handler is not None and object_id:
        try:
            payment = handler(object_id)
            outcome = "processed" if payment is not None else "not ours"
        except (PaymentNotFound, refills.RefillNotFound):
            outcome = "not ours"
        except refills.RefillMismatch as exc:
            raise PaymentMismatch(str(exc)) from None
    _record_event(event_id, event_type)
    log.info("stripe event %s (%s): %s", event_id, event_type, outcome)
    return outcome


def _record_event(event_id: str, event_type: str) -> None:
    db.session.add(StripeEvent(id=event_id, type=event_type[:255]))
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent delivery of the same event finished first; its work is idempotent.
        db.session.rollback()


# -- reads for the pages ---------------------------------------------------------------------

PAGE_SIZE = 20


def page_cursor(raw: str | None) -> int | None:
    """A ``before`` cursor from the query string: a payment id, or ``None`` for the first page.

    Only up to 18 ASCII digits count, so the id always fits the database's 64-bit integer
    (a longer number would make PostgreSQL refuse the query) and parsing is O(1).
    """
    text = (raw or "").strip()
    if not 0 < len(text) <= 18 or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def payments_page(user: User, before_id: int | None = None, limit: int = PAGE_SIZE,
                  account_id: str | None = None) -> tuple[list[Payment], int | None]:
    """One page of payments, newest first, and the cursor for the next page: the user's own
    top-ups, or with ``account_id`` every member's top-ups of that team account."""
    if account_id is not None:
        query = select(Payment).where(Payment.account_id == account_id)
    else:
        query = select(Payment).where(Payment.user_id == user.id, Payment.account_id.is_(None))
    if before_id is not None:
        query = query.where(Payment.id < before_id)
    rows = list(db.session.execute(query.order_by(Payment.id.desc()).limit(limit + 1)).scalars())
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor


def payment_for_user(user: User, session_id: str) -> Payment | None:
    """The user's payment for a Checkout Session id, or ``None``."""
    return db.session.execute(
        select(Payment).where(Payment.stripe_session_id == session_id, Payment.user_id == user.id)
    ).scalar_one_or_none()


__all__ = [
    "BillingError", "InvalidAmount", "CheckoutUnavailable", "PaymentNotFound", "PaymentMismatch",
    "MIN_CENTS", "MAX_CENTS", "PRESET_USD", "CREDITED_STATUSES", "parse_amount_usd", "create_checkout",
    "fulfill_checkout", "mark_checkout_failed", "expire_checkout", "record_charge_refund",
    "record_dispute", "handle_event", "event_already_processed", "page_cursor", "payments_page",
    "payment_for_user",
]
