"""Payment records: one row per Checkout Session, the Stripe events already handled, and
auto top-up: its settings and saved card, and one row per refill.

A payment row is written before the customer is sent to Stripe, so the amount the
account is credited always comes from here, never from an event body or the browser.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.timeutil import utcnow

# 1 USD buys 1,000 P and 1 P is 1,000,000 micro-P, so one cent is 10,000,000 micro-P.
MICRO_P_PER_CENT = 10_000_000

PENDING = "pending"
PAID = "paid"
FAILED = "failed"
EXPIRED = "expired"
REFUNDED = "refunded"
PARTIALLY_REFUNDED = "partially_refunded"
DISPUTED = "disputed"

STATUS_LABELS = {
    PENDING: "Pending",
    PAID: "Paid",
    FAILED: "Failed",
    EXPIRED: "Expired",
    REFUNDED: "Refunded",
    PARTIALLY_REFUNDED: "Partially refunded",
    DISPUTED: "Disputed",
}

# Badge colours from the portal stylesheet.
STATUS_BADGES = {
    PENDING: "badge-warn",
    PAID: "badge-ok",
    FAILED: "badge-error",
    EXPIRED: "badge-muted",
    REFUNDED: "badge-muted",
    PARTIALLY_REFUNDED: "badge-warn",
    DISPUTED: "badge-error",
}

# Statuses in which the top-up has been credited to the account's ledger.
CREDITED_STATUSES = frozenset({PAID, REFUNDED, PARTIALLY_REFUNDED, DISPUTED})
# Statuses a paid Checkout Session may still move a payment out of.
UNCREDITED_STATUSES = frozenset({PENDING, FAILED, EXPIRED})


class Payment(db.Model):
    """One top-up attempt through Stripe Checkout."""

    __tablename__ = "payments"
    __table_args__ = (sa.Index("ix_payments_user_id_id", "user_id", "id"),
                      sa.Index("ix_payments_account_id_id", "account_id", "id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    # The team account a top-up in a team credits; None for the payer's own account.
    account_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    # Random and unique: the Checkout idempotency key and client_reference_id derive from it,
    # so a re-used row id (a fresh database) never collides with an older session.
    reference: Mapped[str] = mapped_column(sa.String(36), unique=True, nullable=False)
    stripe_session_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True, nullable=True)
    payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True, index=True)
    charge_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    amount_cents: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    credit_micro_p: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(sa.String(32), nullable=False, default=PENDING)
    refunded_cents: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    disputed: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    # What refunds and open or lost disputes have taken off the balance, net of disputes won
    # back; never more than ``credit_micro_p``.
    taken_back_micro_p: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    receipt_url: Mapped[str | None] = mapped_column(sa.String(2048), nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    @property
    def room_to_take_back(self) -> int:
        """What may still be taken off the balance for this top-up, in micro-P."""
        return max(self.credit_micro_p - self.taken_back_micro_p, 0)

    @property
    def credited(self) -> bool:
        """Whether the top-up has reached the account's balance."""
        return self.status in CREDITED_STATUSES

    @property
    def status_label(self) -> str:
        """The status as the customer reads it."""
        return STATUS_LABELS.get(self.status, self.status.replace("_", " ").capitalize())

    @property
    def status_badge(self) -> str:
        """The stylesheet class of the status badge."""
        return STATUS_BADGES.get(self.status, "badge-muted")

    @property
    def amount_usd(self) -> str:
        """The charged amount as a dollar string with two decimals."""
        return f"{self.amount_cents // 100:,}.{self.amount_cents % 100:02d}"

    @property
    def refunded_usd(self) -> str:
        """The refunded amount as a dollar string with two decimals."""
        return f"{self.refunded_cents // 100:,}.{self.refunded_cents % 100:02d}"

    def __repr__(self) -> str:
        return f"<Payment {self.id} {self.status} {self.amount_cents}c>"


# Dispute statuses in which the card network sided with us and the money came back; an
# inquiry closed without a chargeback (``warning_closed``) never withdrew it at all.
DISPUTE_RETURNED_STATUSES = frozenset({"won", "warning_closed"})


class PaymentDispute(db.Model):
    """One Stripe dispute of a top-up: Stripe's disputed amount and what it moved here.

    ``taken_micro_p`` is decided once, when the dispute is first seen open, and
    ``returned_micro_p`` reaches it when the dispute is won; both only ever grow, so a
    replayed or late event finds nothing left to move.
    """

    __tablename__ = "payment_disputes"

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    payment_id: Mapped[int] = mapped_column(sa.ForeignKey("payments.id", ondelete="CASCADE"), nullable=False,
                                            index=True)
    amount_cents: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    status: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    taken_micro_p: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    returned_micro_p: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    @property
    def returned(self) -> bool:
        """Whether the dispute ended with the money back with us."""
        return self.status in DISPUTE_RETURNED_STATUSES


class StripeEvent(db.Model):
    """A webhook event whose work has been committed; later deliveries are acknowledged only."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    processed_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)


class AutoTopUp(db.Model):
    """An account's auto top-up: "when the balance falls below the threshold, charge this card".

    Keyed by the gateway account, so a team's balance refills itself like a personal one.
    ``saved_by`` is the person whose card it is; the card is charged only while they may
    pay for the account (the account's own user, or a team owner or billing member).
    Only Stripe's customer and payment-method ids are kept, never card details.
    ``in_flight_refill_id`` is the refill being charged or awaiting Stripe's answer; while
    it is set no other refill starts.
    """

    __tablename__ = "auto_top_ups"

    account_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    saved_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    threshold_micro_p: Mapped[int | None] = mapped_column(sa.BigInteger)
    amount_cents: Mapped[int | None] = mapped_column(sa.Integer)
    monthly_max_cents: Mapped[int | None] = mapped_column(sa.Integer)
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String(255))
    stripe_payment_method_id: Mapped[str | None] = mapped_column(sa.String(255))
    card_label: Mapped[str | None] = mapped_column(sa.String(64))
    in_flight_refill_id: Mapped[int | None] = mapped_column(sa.Integer)
    # Why it was switched off by us (a declined card), shown on Billing.
    stopped_reason: Mapped[str | None] = mapped_column(sa.String(255))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow, onupdate=utcnow)


REFILL_PENDING = "pending"
REFILL_SUCCEEDED = "succeeded"
REFILL_FAILED = "failed"


class Refill(db.Model):
    """One automatic charge of a saved card, started by one balance crossing (``event_id``)."""

    __tablename__ = "refills"
    __table_args__ = (sa.Index("ix_refills_account_month", "account_id", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # The gateway event of the crossing: a crossing starts at most one refill.
    event_id: Mapped[int] = mapped_column(sa.BigInteger, unique=True, nullable=False)
    payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    amount_cents: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # The calendar month ("2026-11") in the account's zone when it started (the maximum
    # itself is counted from created_at, in the zone the account has when deciding).
    month: Mapped[str] = mapped_column(sa.String(7), nullable=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=REFILL_PENDING)
    failure_code: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow, onupdate=utcnow)
