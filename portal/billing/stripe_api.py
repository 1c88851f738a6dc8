"""The portal's only door to the Stripe API.

Builds one ``stripe.StripeClient`` per app from ``STRIPE_SECRET_KEY`` (sent to
``STRIPE_API_BASE`` when set, which is how tests reach a local fake), and turns
every answer into a plain dict so the rest of billing never handles Stripe types.
Every failure surfaces as ``StripeUnavailable``; the secret key never appears in it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import stripe
from flask import current_app

log = logging.getLogger(__name__)

_EXTENSION_KEY = "samalink_stripe_client"
# Stripe's own advice: retries are safe because every write carries an idempotency key.
_NETWORK_RETRIES = 1
_TIMEOUT_SECONDS = 20


class PaymentsNotConfigured(Exception):
    """``STRIPE_SECRET_KEY`` is not set, so card top-ups are switched off."""


class StripeUnavailable(Exception):
    """Stripe could not be reached or refused the call; nothing was charged by it."""


class CardDeclined(Exception):
    """An off-session charge was refused by the card (``code``: card_declined,
    authentication_required, ...); ``payment_intent_id`` is the intent Stripe left behind."""

    def __init__(self, code: str, payment_intent_id: str | None) -> None:
        super().__init__(f"The card was declined ({code}).")
        self.code = code
        self.payment_intent_id = payment_intent_id


class InvalidWebhook(Exception):
    """A webhook body whose signature, timestamp or JSON does not check out."""


def payments_configured() -> bool:
    """Whether a Stripe secret key is configured for this portal."""
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))


def _client() -> stripe.StripeClient:
    key = current_app.config.get("STRIPE_SECRET_KEY")
    if not key:
        raise PaymentsNotConfigured("Card payments are not configured (STRIPE_SECRET_KEY is unset).")
    cached = current_app.extensions.get(_EXTENSION_KEY)
    if cached is not None:
        return cached
    base = current_app.config.get("STRIPE_API_BASE") or None
    client = stripe.StripeClient(
        key,
        base_addresses={"api": base} if base else None,
        max_network_retries=_NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=_TIMEOUT_SECONDS),
    )
    current_app.extensions[_EXTENSION_KEY] = client
    return client


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _call(what: str, fn, *args, **kwargs) -> dict[str, Any]:
    try:
        return _plain(fn(*args, **kwargs))
    except stripe.StripeError as exc:
        # The library's messages never include the secret key; the status and code are
        # enough to diagnose, and the body may echo customer data.
        log.warning("Stripe %s failed: %s (status %s, code %s)", what, type(exc).__name__,
                    getattr(exc, "http_status", None), getattr(exc, "code", None))
        raise StripeUnavailable(f"Stripe could not {what}.") from exc


def create_checkout_session(params: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    """Create a Checkout Session; the same ``idempotency_key`` always yields the same session."""
    client = _client()
    return _call("create the checkout session", client.v1.checkout.sessions.create,
                 params=params, options={"idempotency_key": idempotency_key})


def retrieve_checkout_session(session_id: str) -> dict[str, Any]:
    """Re-read a Checkout Session with its payment intent and latest charge expanded."""
    client = _client()
    return _call("read the checkout session", client.v1.checkout.sessions.retrieve, session_id,
                 params={"expand": ["payment_intent", "payment_intent.latest_charge"]})


def find_checkout_session_id(payment_intent_id: str) -> str | None:
    """The id of the Checkout Session that created ``payment_intent_id``, if any."""
    client = _client()
    page = _call("list checkout sessions", client.v1.checkout.sessions.list,
                 params={"payment_intent": payment_intent_id, "limit": 1})
    data = page.get("data") or []
    return data[0]["id"] if data else None


def retrieve_charge(charge_id: str) -> dict[str, Any]:
    """Re-read a charge (its ``amount_refunded`` is cumulative)."""
    client = _client()
    return _call("read the charge", client.v1.charges.retrieve, charge_id)


def retrieve_dispute(dispute_id: str) -> dict[str, Any]:
    """Re-read a dispute."""
    client = _client()
    return _call("read the dispute", client.v1.disputes.retrieve, dispute_id)


def create_customer(params: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    """Create a Stripe customer (the owner of saved cards)."""
    client = _client()
    return _call("create the customer", client.v1.customers.create,
                 params=params, options={"idempotency_key": idempotency_key})


def retrieve_setup_session(session_id: str) -> dict[str, Any]:
    """Re-read a setup-mode Checkout Session with its setup intent expanded."""
    client = _client()
    return _call("read the checkout session", client.v1.checkout.sessions.retrieve, session_id,
                 params={"expand": ["setup_intent"]})


def charge_saved_card(params: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    """Create and confirm an off-session PaymentIntent on a saved card.

    Raises ``CardDeclined`` when the card refuses (the customer must act), and
    ``StripeUnavailable`` for anything else (safe to retry with the same key).
    """
    client = _client()
    try:
        return _plain(client.v1.payment_intents.create(params=params, options={"idempotency_key": idempotency_key}))
    except stripe.CardError as exc:
        error = (getattr(exc, "json_body", None) or {}).get("error") or {}
        intent = error.get("payment_intent") or {}
        log.info("off-session charge declined: %s", exc.code)
        raise CardDeclined(exc.code or "card_declined", intent.get("id") if isinstance(intent, dict) else None) from None
    except stripe.StripeError as exc:
        log.warning("Stripe charge of a saved card failed: %s (status %s, code %s)", type(exc).__name__,
                    getattr(exc, "http_status", None), getattr(exc, "code", None))
        raise StripeUnavailable("Stripe could not charge the saved card.") from exc


def retrieve_payment_intent(payment_intent_id: str) -> dict[str, Any]:
    """Re-read a PaymentIntent."""
    client = _client()
    return _call("read the payment intent", client.v1.payment_intents.retrieve, payment_intent_id)


def verify_webhook(payload: bytes, signature_header: str | None) -> dict[str, Any]:
    """Check ``Stripe-Signature`` against ``STRIPE_WEBHOOK_SECRET`` and return the event.

    Raises ``PaymentsNotConfigured`` without a webhook secret and ``InvalidWebhook`` for a
    missing or wrong signature, a timestamp older than five minutes, or a body that is
    not a JSON event.
    """
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        raise PaymentsNotConfigured("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET is unset).")
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature_header, secret, tolerance=stripe.Webhook.DEFAULT_TOLERANCE
        )
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook("The Stripe-Signature header does not match this body.") from exc
    except UnicodeDecodeError as exc:
        raise InvalidWebhook("The webhook body is not UTF-8.") from exc
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise InvalidWebhook("The webhook body is not JSON.") from exc
    if (not isinstance(event, dict) or not isinstance(event.get("id"), str)
            or not isinstance(event.get("type"), str)
            or not isinstance((event.get("data") or {}).get("object"), dict)):
        raise InvalidWebhook("The webhook body is not a Stripe event.")
    return event
