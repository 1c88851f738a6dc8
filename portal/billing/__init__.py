"""Billing: card top-ups through Stripe Checkout, the Stripe webhook, payment history, alerts,
auto top-up and monthly statements."""

from . import statement_routes  # noqa: F401 - registers the statement pages on bp
from .routes import bp

__all__ = ["bp"]
