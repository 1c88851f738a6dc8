"""Routes: /billing, /billing/alerts, /billing/auto-top-up (and its card), /billing/checkout, /billing/success, /billing/cancel, /payments and /stripe/webhook."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, g, jsonify, request, url_for
from flask_login import current_user, login_required

from ..accounts import current_account
from ..teams.selection import selected_account
from ..extensions import csrf
from ..gateway_client import GatewayError, GatewayUnavailable, gateway
from ..gateway_views import calling_gateway
from ..money import p_amount
from ..htmx import is_htmx, redirect_to, render
from ..security import CONTENT_SECURITY_POLICY
from . import service, stripe_api
from . import refills
from .forms import AutoTopUpForm, LowBalanceForm, TopUpForm
from .models import EXPIRED, FAILED

bp = Blueprint("billing", __name__)
log = logging.getLogger(__name__)

STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"


def _with_checkout_form_action(response):
    """Let the top-up forms' redirect reach Stripe's checkout page.

    Browsers apply ``form-action`` to the redirect that follows a form post, so the
    page holding the top-up forms must allow Checkout's origin.
    """
    origins = [STRIPE_CHECKOUT_ORIGIN]
    base = current_app.config.get("STRIPE_API_BASE")
    if base:
        parts = urlsplit(base)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", "form-action 'self' " + " ".join(origins))
    return response


def _public_url(endpoint: str) -> str:
    base = current_app.config.get("PUBLIC_URL")
    if base:
        return base.rstrip("/") + url_for(endpoint)
    return url_for(endpoint, _external=True)


def _with_session_id(url: str) -> str:
    # Stripe fills in the placeholder; the URL may already name the selected team.
    return url + ("&" if "?" in url else "?") + "session_id={CHECKOUT_SESSION_ID}"


def _alert_form(account: dict | None) -> LowBalanceForm:
    form = LowBalanceForm(formdata=None)
    threshold = ((account or {}).get("thresholds") or {}).get("low_balance", {}).get("threshold_micro_p")
    if threshold:
        form.low_balance_threshold_p.data = f"{p_amount(threshold).normalize():f}"
    return form


def _auto_form(row) -> AutoTopUpForm:
    form = AutoTopUpForm(formdata=None)
    if row is not None and row.amount_cents:
        form.enabled.data = row.enabled
        form.threshold_p.data = f"{p_amount(row.threshold_micro_p).normalize():f}"
        form.amount_usd.data = f"{row.amount_cents / 100:.2f}"
        form.monthly_max_usd.data = f"{(row.monthly_max_cents or 0) / 100:.2f}"
    return form


def _billing_page(form: TopUpForm, status: int = 200, error: str | None = None, block: str = "content",
                  alert_form: LowBalanceForm | None = None, alert_saved: bool = False,
                  auto_form: AutoTopUpForm | None = None, auto_message: str | None = None):
    account = current_account()
    selection = selected_account()
    # Read without the gateway: the settings show even while it is unreachable.
    known_id = current_user.account_id if selection.team is None else selection.team.account_id
    auto = refills.settings_for(known_id) if known_id else None
    response = render(
        "billing/billing.html", block=block, status=status, form=form, error=error,
        account=account, configured=stripe_api.payments_configured(),
        presets=service.PRESET_USD, alert_form=alert_form or _alert_form(account), alert_saved=alert_saved,
        auto=auto, card_holder=refills.card_holder(auto), auto_form=auto_form or _auto_form(auto),
        auto_message=auto_message,
    )
    return _with_checkout_form_action(response)


def _team_account_id() -> str | None:
    """The selected team's account id, or None on the personal account."""
    selection = selected_account()
    return selection.account_id if selection.team is not None else None


@bp.get("/billing")
@login_required
def billing():
    """Balance and the top-up forms."""
    return _billing_page(TopUpForm(formdata=None))


@bp.post("/billing/alerts")
@login_required
def alerts():
    """Set or switch off the low-balance alert (kept by the gateway, which notices the crossing)."""
    form = LowBalanceForm()
    if not form.validate_on_submit():
        return _billing_page(TopUpForm(formdata=None), status=422, block="alerts", alert_form=form)
    with calling_gateway("The alert could not be saved; try again in a minute.", show_refusal=True) as call:
        g.account = gateway().set_thresholds(selected_account().account_id,
                                             low_balance_threshold_micro_p=form.threshold_micro_p)
    if call.failed:
        form.low_balance_threshold_p.errors = [call.message]
        # htmx swaps only 2xx and 422 answers, and this message must show.
        return _billing_page(TopUpForm(formdata=None), status=422 if is_htmx() else call.status, block="alerts",
                             alert_form=form)
    return _billing_page(TopUpForm(formdata=None), block="alerts", alert_form=form, alert_saved=True)


@bp.post("/billing/auto-top-up")
@login_required
def auto_top_up():
    """Save the auto top-up settings; switching it on needs a saved card."""
    form = AutoTopUpForm()
    if not form.validate_on_submit():
        return _billing_page(TopUpForm(formdata=None), status=422, block="autotopup", auto_form=form)
    try:
        with calling_gateway("Saved here, but the balance watch could not be set; save again in a minute.",
                             show_refusal=True) as call:
            refills.save_settings(selected_account().account_id, bool(form.enabled.data), form.threshold_p.micro_p,
                                  form.amount_usd.cents, form.monthly_max_usd.cents)
    except ValueError as exc:
        form.enabled.errors = [str(exc)]
        return _billing_page(TopUpForm(formdata=None), status=422, block="autotopup", auto_form=form)
    if call.failed:
        return _billing_page(TopUpForm(formdata=None), status=422 if is_htmx() else call.status,
                             block="autotopup", auto_form=form, auto_message=call.message)
    message = "Auto top-up is on." if form.enabled.data else "Auto top-up is off."
    return _billing_page(TopUpForm(formdata=None), block="autotopup", auto_form=form, auto_message=message)


@bp.post("/billing/auto-top-up/card")
@login_required
def save_card():
    """Send the browser to Stripe Checkout in setup mode to save a card for auto top-up."""
    if not stripe_api.payments_configured():
        return _billing_page(TopUpForm(formdata=None), status=200 if is_htmx() else 503, block="autotopup",
                             auto_message="Card payments are not configured on this server.")
    success_url = _with_session_id(_public_url("billing.card_saved"))
    try:
        url = refills.start_card_setup(selected_account().account_id, current_user, success_url,
                                       _public_url("billing.billing"))
    except stripe_api.StripeUnavailable:
        return _billing_page(TopUpForm(formdata=None), status=200 if is_htmx() else 503, block="autotopup",
                             auto_message="Stripe is unavailable right now; try again in a few minutes.")
    return redirect_to(url)


@bp.get("/billing/auto-top-up/card/done")
@login_required
def card_saved():
    """Back from saving a card: keep its payment-method id, then show Billing."""
    session_id = request.args.get("session_id", "")
    if not session_id or len(session_id) > 255:
        abort(404)
    try:
        refills.finish_card_setup(session_id, selected_account().account_id)
    except refills.RefillNotFound:
        abort(404)
    except (stripe_api.StripeUnavailable, GatewayUnavailable, GatewayError) as exc:
        # The webhook saves it too; the page says so meanwhile.
        log.warning("card setup %s not confirmed yet: %s", session_id, type(exc).__name__)
    return redirect_to(url_for("billing.billing") + "#autotopup")


@bp.post("/billing/checkout")
@login_required
def checkout():
    """Record a pending payment and send the browser to Stripe Checkout."""
    form = TopUpForm()
    if not stripe_api.payments_configured():
        return _billing_page(form, status=200 if is_htmx() else 503, block="topup",
                             error="Card payments are not configured on this server, so top-ups are switched off.")
    if not form.validate_on_submit():
        return _billing_page(form, status=422, block="topup")
    success_url = _with_session_id(_public_url("billing.success"))
    try:
        checkout_url = service.create_checkout(current_user, form.amount_cents, success_url,
                                               _public_url("billing.cancel"), account_id=_team_account_id())
    except service.CheckoutUnavailable as exc:
        # htmx swaps only 2xx and 422 answers (see base.html), and this message must show.
        return _billing_page(form, status=200 if is_htmx() else 503, block="topup", error=str(exc))
    return redirect_to(checkout_url)


def _success_context(session_id: str) -> dict:
    payment = service.payment_for_user(current_user, session_id) if session_id else None
    if payment is None:
        abort(404)
    if not payment.credited and payment.status not in (FAILED, EXPIRED):
        try:
            payment = service.fulfill_checkout(session_id)
        except (stripe_api.StripeUnavailable, GatewayUnavailable, GatewayError, service.BillingError) as exc:
            # The webhook, or the next poll, credits it; the page keeps waiting meanwhile.
            log.warning("checkout %s not confirmed yet: %s", payment.id, type(exc).__name__)
    return {"payment": payment, "account": current_account(), "session_id": session_id}


@bp.get("/billing/success")
@login_required
def success():
    """Back from Checkout: confirm the session now, then poll until the credit shows."""
    return render("billing/success.html", block="content", **_success_context(request.args.get("session_id", "")))


@bp.get("/billing/success/status")
@login_required
def balance_fragment():
    """The polled status panel; it drops its trigger once the payment is settled either way."""
    return render("billing/success.html", block="status", refresh_topbar=is_htmx(),
                  **_success_context(request.args.get("session_id", "")))


@bp.get("/billing/cancel")
@login_required
def cancel():
    """The customer left Checkout without paying."""
    return render("billing/cancel.html")


@bp.get("/payments")
@login_required
def payments():
    """Payment history, newest first; "Load more" fetches the next page as table rows."""
    before = service.page_cursor(request.args.get("before"))
    rows, next_cursor = service.payments_page(current_user, before, account_id=_team_account_id())
    block = "rows" if before is not None else "content"
    return render("billing/payments.html", block=block, payments=rows, next_cursor=next_cursor,
                  first_page=before is None)


@bp.post("/stripe/webhook")
@csrf.exempt
def webhook():
    """Stripe's event deliveries: verified, handled once, and retried by Stripe on a 5xx."""
    try:
        event = stripe_api.verify_webhook(request.get_data(), request.headers.get("Stripe-Signature"))
    except stripe_api.PaymentsNotConfigured as exc:
        log.error("stripe webhook received but %s", exc)
        return jsonify(error={"message": "Webhooks are not configured."}), 503
    except stripe_api.InvalidWebhook as exc:
        log.warning("rejected stripe webhook: %s", exc)
        return jsonify(error={"message": str(exc)}), 400
    try:
        outcome = service.handle_event(event)
    except (stripe_api.StripeUnavailable, GatewayUnavailable) as exc:
        log.warning("stripe event %s (%s) not handled yet: %s", event["id"], event["type"], exc)
        return jsonify(error={"message": "Temporarily unable to process this event; retry later."}), 503
    except GatewayError as exc:
        log.error("stripe event %s (%s) refused by the gateway: %s", event["id"], event["type"], exc.message)
        return jsonify(error={"message": "The ledger refused this event."}), 500
    except service.PaymentMismatch as exc:
        log.error("stripe event %s (%s): %s", event["id"], event["type"], exc)
        return jsonify(error={"message": str(exc)}), 422
    return jsonify(received=True, outcome=outcome)
