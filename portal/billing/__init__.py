"""Billing: card top-ups through Stripe Checkout, the Stripe webhook and payment history."""

from .routes import bp

__all__ = ["bp"]
