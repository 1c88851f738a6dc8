"""What operators do, as plain functions: each action calls the gateway, then writes its audit entry.

Views call these and map ``OperatorError`` to a form message. Money moves only through
the gateway's ledger (an ``adjustment`` entry with its own idempotency key); nothing here
edits history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from ..billing.models import Payment
from ..extensions import db
from ..gateway_client import GatewayError, gateway
from ..mail import send_mail, smtp_configured
from ..models import SupportMessage, User
from .models import AuditLog, SupportAction

log = logging.getLogger(__name__)

MAX_ADJUSTMENT_MICRO_P = 10_000_000 * 1_000_000  # 10 million P ($10,000) in one step


class OperatorError(Exception):
    """An operator action that cannot be done; the message is safe to show."""


class AlreadyApplied(OperatorError):
    """The same form was submitted twice; the first submission already did the work."""


COMMAND_LINE = "command line"


def record_audit(actor: User | None, action: str, target_type: str, target_id: str, before: Any, after: Any,
                 reason: str = "", idempotency_key: str | None = None) -> AuditLog:
    """Append one audit entry and commit it (``actor`` None: the command line)."""
    entry = AuditLog(actor_id=actor.id if actor else None, actor_email=actor.email if actor else COMMAND_LINE,
                     action=action, target_type=target_type,
                     target_id=str(target_id), before=before, after=after, reason=reason[:500],
                     idempotency_key=idempotency_key)
    db.session.add(entry)
    db.session.commit()
    return entry


def audit_entries(target_type: str | None = None, target_id: str | None = None, limit: int = 100) -> list[AuditLog]:
    """Newest audit entries first, optionally about one object."""
    query = sa.select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if target_type:
        query = query.where(AuditLog.target_type == target_type)
    if target_id:
        query = query.where(AuditLog.target_id == target_id)
    return list(db.session.scalars(query))


# --- customers ----------------------------------------------------------------------

@dataclass
class CustomerHit:
    """One search result: the gateway account and the portal user that owns it (if any)."""

    account: dict
    user: User | None


def _users_by_account(account_ids: list[str]) -> dict[str, User]:
    if not account_ids:
        return {}
    users = db.session.scalars(sa.select(User).where(User.account_id.in_(account_ids)))
    return {u.account_id: u for u in users}


def find_customers(query: str) -> list[CustomerHit]:
    """Accounts matching an e-mail (or part of one) or an account id."""
    accounts = gateway().admin_search_accounts(query.strip())
    users = _users_by_account([a["id"] for a in accounts])
    return [CustomerHit(a, users.get(a["id"])) for a in accounts]


def customer_user(account_id: str) -> User | None:
    """The portal user of a gateway account."""
    return db.session.scalar(sa.select(User).where(User.account_id == account_id))


def customer_payments(user: User | None, limit: int = 50) -> list[Payment]:
    """The customer's checkouts, newest first."""
    if user is None:
        return []
    return list(db.session.scalars(
        sa.select(Payment).where(Payment.user_id == user.id).order_by(Payment.id.desc()).limit(limit)))


def customer_messages(user: User | None, email: str | None, limit: int = 20) -> list[SupportMessage]:
    """Support messages sent by the customer signed in, and unverified ones naming their address."""
    conditions = []
    if user is not None:
        conditions.append(SupportMessage.user_id == user.id)
    if email:
        conditions.append(sa.and_(SupportMessage.user_id.is_(None), SupportMessage.email == email.lower()))
    if not conditions:
        return []
    return list(db.session.scalars(
        sa.select(SupportMessage).where(sa.or_(*conditions)).order_by(SupportMessage.id.desc()).limit(limit)))


def set_account_status(actor: User, account_id: str, status: str, reason: str) -> dict:
    """Suspend or reactivate an account; its keys are refused (403) or accepted again within 2 s."""
    if status not in ("active", "suspended"):
        raise OperatorError("Status must be active or suspended.")
    before = gateway().get_account(account_id)
    if before["status"] == status:
        raise OperatorError(f"The account is already {status}.")
    after = gateway().update_account(account_id, status=status)
    record_audit(actor, "account.suspend" if status == "suspended" else "account.reactivate", "account",
                 account_id, {"status": before["status"]}, {"status": after["status"]}, reason)
    return after


def revoke_customer_key(actor: User, account_id: str, key_id: str, reason: str) -> dict:
    """Revoke one of the customer's keys (only its masked form reaches the audit log)."""
    keys = {k["id"]: k for k in gateway().list_keys(account_id)}
    key = keys.get(key_id)
    if key is None:
        raise OperatorError("This account has no such key.")
    if key["status"] == "revoked":
        raise OperatorError("This key is already revoked.")
    after = gateway().revoke_key(account_id, key_id)
    record_audit(actor, "key.revoke", "account", account_id,
                 {"key_id": key_id, "name": key["name"], "masked": key["masked"], "status": key["status"]},
                 {"key_id": key_id, "name": after["name"], "masked": after["masked"], "status": after["status"]}, reason)
    return after


def adjust_balance(actor: User, account_id: str, amount_micro_p: int, reason: str, form_key: str) -> dict:
    """Post a signed ``adjustment`` to the ledger, once per form (``form_key``), and audit it.

    A second submission of the same form finds the first one's audit entry (or the
    gateway's replay of the same ledger entry) and raises ``AlreadyApplied``.
    """
    if amount_micro_p == 0:
        raise OperatorError("An adjustment must not be zero.")
    if abs(amount_micro_p) > MAX_ADJUSTMENT_MICRO_P:
        raise OperatorError("An adjustment may move at most 10,000,000 P at once.")
    idempotency_key = f"adjustment:{form_key}"
    if db.session.scalar(sa.select(AuditLog.id).where(AuditLog.idempotency_key == idempotency_key)):
        raise AlreadyApplied("This adjustment was already applied (the form was sent twice).")
    before = gateway().get_account(account_id)
    description = f"{reason} (by {actor.email})"
    try:
        result = gateway().post_ledger_entry(account_id, "adjustment", amount_micro_p, idempotency_key, description)
    except GatewayError as exc:
        if exc.code == "idempotency_conflict":
            raise AlreadyApplied("This form was already used for another adjustment; reload the page.") from None
        raise OperatorError(exc.message) from None
    entry = result["entry"]
    try:
        record_audit(actor, "balance.adjust", "account", account_id,
                     {"balance_micro_p": before["balance_micro_p"]},
                     {"balance_micro_p": entry["balance_after_micro_p"], "entry_id": entry["id"],
                      "amount_micro_p": amount_micro_p},
                     reason, idempotency_key=idempotency_key)
    except IntegrityError:
        # A concurrent double submit: the gateway posted one entry, the other request audited it.
        db.session.rollback()
        raise AlreadyApplied("This adjustment was already applied (the form was sent twice).") from None
    return result


# --- catalogue ---------------------------------------------------------------------------

PRICE_FIELDS = ("input_price", "output_price", "cache_read_price", "cache_write_price", "cache_write_1h_price")
CACHE_PRICE_FIELDS = PRICE_FIELDS[2:]


def change_model(actor: User, model_id: str, reason: str, **changes: Any) -> dict:
    """Record a new catalogue version for one model (price or switch) and audit it.

    Cache prices (None: charged at the input price) are sent only to a gateway whose
    catalogue lists them; to an older one, a cache price that is set is refused here.
    """
    catalog = gateway().admin_catalog()
    models = {m["id"]: m for m in catalog["models"]}
    if model_id not in models:
        raise OperatorError("No such model in the catalogue.")
    prices = PRICE_FIELDS
    if not catalog.get("cache_prices_editable"):
        if any(changes.get(name) is not None for name in CACHE_PRICE_FIELDS):
            raise OperatorError("The gateway does not take cache prices yet; leave them empty.")
        changes = {k: v for k, v in changes.items() if k not in CACHE_PRICE_FIELDS}
        prices = PRICE_FIELDS[:2]
    audited = [*prices, "enabled"]
    before = {k: models[model_id][k] for k in audited}
    try:
        change = gateway().admin_change_model(model_id, actor.email, reason, **changes)["change"]
    except GatewayError as exc:
        raise OperatorError(exc.message) from None
    after = {k: change.get(k) for k in audited}
    after.update(version=change["version"], effective_from=change["effective_from"])
    action = "model.price" if "input_price" in changes else ("model.enable" if changes.get("enabled") else "model.disable")
    record_audit(actor, action, "model", model_id, before, after, reason)
    return change


# --- channels and provider keys ------------------------------------------------------------

def switch_channel(actor: User, channel: str, enabled: bool, reason: str) -> dict:
    """Switch a channel off or on in every gateway process, and audit it."""
    try:
        answer = gateway().admin_switch_channel(channel, enabled)
    except GatewayError as exc:
        raise OperatorError(exc.message) from None
    record_audit(actor, "channel.enable" if enabled else "channel.disable", "channel", channel,
                 None, {"state": answer["state"]}, reason)
    return answer


def test_channel(actor: User, channel: str) -> dict:
    """Send a one-token request over a channel; what it answered (audited: it reaches a provider)."""
    try:
        answer = gateway().admin_test_channel(channel)
    except GatewayError as exc:
        raise OperatorError(exc.message) from None
    record_audit(actor, "channel.test", "channel", channel, None,
                 {"ok": answer["ok"], "status": answer["status"], "latency_ms": answer["latency_ms"]})
    return answer


def set_provider_key(actor: User, provider: str, key: str, reason: str) -> dict:
    """Hand a provider key to the gateway, which stores it encrypted; audited by its masked form only."""
    try:
        answer = gateway().admin_set_provider_key(provider, key)
    except GatewayError as exc:
        raise OperatorError(exc.message) from None
    record_audit(actor, "provider_key.set", "provider", provider, None, {"key": answer["console_key"]}, reason)
    return answer


def delete_provider_key(actor: User, provider: str, reason: str) -> None:
    """Make the gateway forget a provider's console key, and audit it."""
    try:
        gateway().admin_delete_provider_key(provider)
    except GatewayError as exc:
        raise OperatorError(exc.message) from None
    record_audit(actor, "provider_key.delete", "provider", provider, None, None, reason)


# --- support inbox -------------------------------------------------------------------------

def message_state(message_id: int) -> str:
    """``open`` or ``answered``: answered when the latest action is a reply or a close."""
    last = db.session.scalar(sa.select(SupportAction.kind).where(SupportAction.message_id == message_id)
                             .order_by(SupportAction.id.desc()).limit(1))
    return "answered" if last in ("reply", "close") else "open"


def inbox(state: str = "", limit: int = 200) -> list[tuple[SupportMessage, str]]:
    """Support messages newest first with their state, optionally only ``open`` or ``answered``."""
    messages = list(db.session.scalars(sa.select(SupportMessage).order_by(SupportMessage.id.desc()).limit(limit)))
    latest = {}
    if messages:
        rows = db.session.execute(
            sa.select(SupportAction.message_id, SupportAction.kind)
            .where(SupportAction.message_id.in_([m.id for m in messages])).order_by(SupportAction.id))
        for message_id, kind in rows:
            latest[message_id] = kind
    result = [(m, "answered" if latest.get(m.id) in ("reply", "close") else "open") for m in messages]
    return [r for r in result if not state or r[1] == state]


def oldest_unanswered() -> SupportMessage | None:
    """The support message waiting longest for an answer (its latest action is no reply or close), or None."""
    latest = (sa.select(SupportAction.message_id, sa.func.max(SupportAction.id).label("last_id"))
              .group_by(SupportAction.message_id).subquery())
    answered = (sa.select(latest.c.message_id).join(SupportAction, SupportAction.id == latest.c.last_id)
                .where(SupportAction.kind.in_(("reply", "close"))))
    return db.session.scalar(sa.select(SupportMessage).where(SupportMessage.id.not_in(answered))
                             .order_by(SupportMessage.created_at, SupportMessage.id).limit(1))


def message_actions(message_id: int) -> list[SupportAction]:
    """A message's replies and state changes, oldest first."""
    return list(db.session.scalars(sa.select(SupportAction).where(SupportAction.message_id == message_id)
                                   .order_by(SupportAction.id)))


def reply_to_message(actor: User, message: SupportMessage, body: str) -> SupportAction:
    """Mail a reply to the sender where SMTP is configured; keep it either way, and audit it."""
    if not smtp_configured():
        raise OperatorError("Replies go out by e-mail, and SMTP is not configured. Answer from your mail "
                            f"client to {message.email}, then mark the message answered.")
    subject = message.subject if message.subject.lower().startswith("re:") else f"Re: {message.subject}"
    mailed = send_mail(message.email, subject, body, reply_to=current_app.config["SUPPORT_EMAIL"])
    if not mailed:
        raise OperatorError("The reply could not be sent; the mail server refused it. Try again later.")
    before = message_state(message.id)
    action = SupportAction(message_id=message.id, actor_id=actor.id, actor_email=actor.email, kind="reply",
                           body=body, mailed=True)
    db.session.add(action)
    db.session.flush()
    record_audit(actor, "support.reply", "support_message", str(message.id), {"state": before},
                 {"state": "answered", "reply_id": action.id})
    return action


def set_message_state(actor: User, message: SupportMessage, state: str) -> None:
    """Mark a message answered (closed) or open again, and audit it."""
    before = message_state(message.id)
    if state not in ("open", "answered"):
        raise OperatorError("State must be open or answered.")
    if before == state:
        raise OperatorError(f"The message is already {state}.")
    db.session.add(SupportAction(message_id=message.id, actor_id=actor.id, actor_email=actor.email,
                                 kind="close" if state == "answered" else "reopen"))
    db.session.flush()
    record_audit(actor, "support.close" if state == "answered" else "support.reopen", "support_message",
                 str(message.id), {"state": before}, {"state": state})


# --- operators --------------------------------------------------------------------------------

def make_operator(email: str) -> User:
    """Give the user with this e-mail the operator role (the ``create-operator`` command)."""
    user = db.session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise OperatorError(f"No user signed up with {email.strip()}; sign up first, then run this again.")
    if user.is_operator:
        raise OperatorError(f"{user.email} is already an operator.")
    user.is_operator = True
    db.session.commit()
    return user
