"""Routes: /operator/... — the console for the people who run SAMALink.

Every route here is refused to customers (403) and to visitors (sign-in redirect), and an
operator who has not turned on two-factor sign-in is sent to enrolment first.
Every action goes through ``service``, which writes the audit entry.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import partial
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, current_app, flash, request, url_for
from flask_login import current_user

from ..auth import twofactor
from ..extensions import db, login_manager
from ..gateway_client import gateway
from ..gateway_views import calling_gateway
from ..htmx import is_htmx, redirect_to, render
from ..mail import smtp_configured
from ..models import SupportMessage
from ..requests_log.filters import STATUS_CHOICES, parse_filters
from ..timeutil import zone
from ..usage.charts import cost_by_model, daily_totals, daily_usage
from ..usage.ranges import PRESETS, RangeError, resolve_range
from . import service
from .forms import (
    AdjustForm, ChannelSwitchForm, ChannelTestForm, PriceForm, ProviderKeyForm, ReasonForm, ReplyForm, StateForm,
    SwitchForm,
)
from .ledger_check import age_text, ledger_checks

bp = Blueprint("operator", __name__, url_prefix="/operator")

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PROVIDER = re.compile(r"^[a-z0-9_-]{1,64}$")
# Where an operator without two-factor sign-in is sent to turn it on.
TWO_FACTOR_ENROL_URL = "/settings/2fa"


def two_factor_ready(user: Any) -> bool:
    """True when the user has finished two-factor enrolment (an authenticator app is confirmed)."""
    return twofactor.is_enabled(user)


@bp.before_request
def operators_only():
    """Visitors sign in; customers get 403; operators without two-factor sign-in enrol first."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_operator:
        return render("errors/error.html", block=None, status=403, title="Not allowed",
                      message="This page is for SAMALink operators only.")
    if not two_factor_ready(current_user):
        if current_app.config.get("DEMO"):
            # Demo mode prompts (see the console's tabs) but lets the operator in.
            return None
        flash("Turn on two-factor sign-in to use the operator console.", "info")
        return redirect_to(TWO_FACTOR_ENROL_URL)
    return None


@bp.app_context_processor
def two_factor_prompt() -> dict:
    """Whether the console's tabs prompt the operator to turn on two-factor sign-in (demo mode)."""
    if not request.path.startswith("/operator") or not current_user.is_authenticated:
        return {"two_factor_missing": False}
    return {"two_factor_missing": current_user.is_operator and not two_factor_ready(current_user)}


def _account_id(value: str) -> str:
    if not _UUID.match(value):
        abort(404)
    return value


# Operators see the gateway's refusals as they are. An outage drops the session's unfinished
# work: an adjustment sent again later reuses its form key, so it can never apply twice.
console_call = partial(calling_gateway, "The gateway is unavailable right now; try again in a minute.",
                       show_refusal=True, rollback=True)


@bp.route("/")
def index():
    """The console opens on the customer search."""
    return redirect_to(url_for("operator.customers"))


# --- customers ---------------------------------------------------------------------------

@bp.route("/customers")
def customers():
    """Search by e-mail (or part of it) or account id; recent accounts without a query."""
    query = (request.args.get("q") or "").strip()[:320]
    hits = []
    with console_call() as call:
        hits = service.find_customers(query)
    return render("operator/customers.html", block="results", q=query, hits=hits, error=call.message)


def _customer_context(account_id: str, **forms: Any) -> dict:
    account = None
    with calling_gateway("The gateway is unavailable; the account cannot be shown.", show_refusal=True) as call:
        account = gateway().get_account(account_id)
    if call.refusal and call.refusal.status == 404:
        abort(404)
    error = call.message
    user = service.customer_user(account_id)
    tz = user.tz if user else "UTC"
    date_range = resolve_range("30d", None, None, tz)
    # Each part of the page stands alone: one that cannot be read leaves the others.
    keys = ledger = log_page = usage = None
    with console_call():
        keys = gateway().list_keys(account_id)
    with console_call():
        ledger = gateway().ledger_page(account_id, None, 50)
    with console_call():
        log_page = gateway().requests_page(account_id, {"tz": tz}, None, 50)
    with console_call():
        usage = gateway().usage(account_id, date_range.start.isoformat(), date_range.end.isoformat(), tz)
    adjust = forms.get("adjust_form") or AdjustForm(formdata=None)
    if not adjust.form_key.data:
        adjust.new_key()
    context = {
        "account_id": account_id, "account": account, "error": error, "customer": user, "tz": tz,
        "keys": keys or [], "ledger": (ledger or {}).get("data") or [], "log_rows": (log_page or {}).get("data") or [],
        "payments": service.customer_payments(user),
        "messages": service.customer_messages(user, (account or {}).get("email")),
        "audit": service.audit_entries("account", account_id, 50),
        "usage": usage, "range": date_range,
        "adjust_form": adjust, "status_form": forms.get("status_form") or ReasonForm(formdata=None),
        "revoke_form": ReasonForm(formdata=None),
    }
    if usage:
        context.update(cost_chart=cost_by_model(usage.get("by_model") or []),
                       daily_chart=daily_usage(usage.get("daily") or [], date_range),
                       daily_rows=daily_totals(usage.get("daily") or [], date_range))
    return context


@bp.route("/customers/<account_id>")
def customer(account_id: str):
    """Balance, ledger, keys, payments, requests, usage charts, support messages, audit trail."""
    context = _customer_context(_account_id(account_id))
    return render("operator/customer.html", block=None, **context)


def _customer_page_with(account_id: str, status: int, **forms: Any):
    return render("operator/customer.html", block=None, status=status, **_customer_context(account_id, **forms))


@bp.route("/customers/<account_id>/status", methods=["POST"])
def account_status(account_id: str):
    """Suspend (keys answer 403) or reactivate the account."""
    account_id = _account_id(account_id)
    form = ReasonForm()
    status = request.form.get("status", "")
    if not form.validate_on_submit():
        return _customer_page_with(account_id, 422, status_form=form)
    try:
        with console_call() as call:
            service.set_account_status(current_user, account_id, status, form.reason.data)
        error = call.message
    except service.OperatorError as exc:
        error = str(exc)
    if error:
        form.reason.errors = [error]
        return _customer_page_with(account_id, 422, status_form=form)
    flash("Account suspended: its keys are refused." if status == "suspended" else "Account reactivated.", "success")
    return redirect_to(url_for("operator.customer", account_id=account_id))


@bp.route("/customers/<account_id>/adjust", methods=["POST"])
def adjust(account_id: str):
    """A signed ledger adjustment, applied once per form however often it is sent."""
    account_id = _account_id(account_id)
    form = AdjustForm()
    if not form.validate_on_submit():
        return _customer_page_with(account_id, 422, adjust_form=form)
    try:
        with console_call() as call:
            service.adjust_balance(current_user, account_id, form.amount_p.micro_p, form.reason.data,
                                   form.form_key.data)
        error = call.message
    except service.AlreadyApplied as exc:
        flash(str(exc), "info")
        return redirect_to(url_for("operator.customer", account_id=account_id))
    except service.OperatorError as exc:
        error = str(exc)
    if error:
        form.amount_p.errors = [error]
        return _customer_page_with(account_id, 422, adjust_form=form)
    flash("Balance adjusted.", "success")
    return redirect_to(url_for("operator.customer", account_id=account_id))


@bp.route("/customers/<account_id>/keys/<key_id>/revoke", methods=["POST"])
def revoke_key(account_id: str, key_id: str):
    """Revoke any of the customer's keys."""
    account_id = _account_id(account_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        flash("Give a reason to revoke a key.", "error")
        return redirect_to(url_for("operator.customer", account_id=account_id))
    try:
        with console_call() as call:
            service.revoke_customer_key(current_user, account_id, key_id, form.reason.data)
        error = call.message
    except service.OperatorError as exc:
        error = str(exc)
    flash(error or "Key revoked.", "error" if error else "success")
    return redirect_to(url_for("operator.customer", account_id=account_id))


# --- support inbox -------------------------------------------------------------------------

@bp.route("/support")
def support():
    """Every message, newest first; ``state`` filters open or answered ones."""
    state = request.args.get("state", "")
    if state not in ("", "open", "answered"):
        state = ""
    return render("operator/support.html", block=None, items=service.inbox(state), state=state,
                  oldest_open=service.oldest_unanswered())


def _message_context(message: SupportMessage, reply_form: ReplyForm | None = None) -> dict:
    user = db.session.get(service.User, message.user_id) if message.user_id else None
    account_id = user.account_id if user else None
    account = None
    if account_id:
        with console_call():
            account = gateway().get_account(account_id)
    return {"message": message, "state": service.message_state(message.id),
            "actions": service.message_actions(message.id), "customer": user, "account": account,
            "payments": service.customer_payments(user, 5),
            "others": [m for m in service.customer_messages(user, message.email, 10) if m.id != message.id],
            "reply_form": reply_form or ReplyForm(formdata=None), "state_form": StateForm(formdata=None),
            "smtp": bool(current_app.config.get("SMTP_HOST"))}


def _message(message_id: int) -> SupportMessage:
    message = db.session.get(SupportMessage, message_id)
    if message is None:
        abort(404)
    return message


@bp.route("/support/<int:message_id>")
def support_message(message_id: int):
    """One message with the customer's context beside it."""
    return render("operator/message.html", block=None, **_message_context(_message(message_id)))


@bp.route("/support/<int:message_id>/reply", methods=["POST"])
def support_reply(message_id: int):
    """Mail a reply (SMTP) and mark the message answered."""
    message = _message(message_id)
    form = ReplyForm()
    if form.validate_on_submit():
        try:
            service.reply_to_message(current_user, message, form.body.data)
        except service.OperatorError as exc:
            form.body.errors = [str(exc)]
        else:
            flash("Reply sent.", "success")
            return redirect_to(url_for("operator.support_message", message_id=message_id))
    return render("operator/message.html", block=None, status=422, **_message_context(message, form))


@bp.route("/support/<int:message_id>/state", methods=["POST"])
def support_state(message_id: int):
    """Mark answered (handled elsewhere) or open again."""
    message = _message(message_id)
    form = StateForm()
    if form.validate_on_submit():
        try:
            service.set_message_state(current_user, message, form.state.data)
            flash("Marked answered." if form.state.data == "answered" else "Reopened.", "success")
        except service.OperatorError as exc:
            flash(str(exc), "error")
    return redirect_to(url_for("operator.support_message", message_id=message_id))


# --- catalogue ------------------------------------------------------------------------------

def _catalog_page(status: int = 200, forms: dict | None = None, error: str | None = None):
    catalog = None
    with console_call() as call:
        catalog = gateway().admin_catalog()
    return render("operator/catalog.html", block=None, status=status, catalog=catalog, error=error or call.message,
                  forms=forms or {}, audit=service.audit_entries("model", None, 50),
                  now_iso=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


@bp.route("/catalog")
def catalog():
    """Models with their prices in force, the file's prices, and the version history."""
    return _catalog_page()


@bp.route("/catalog/<model_id>/price", methods=["POST"])
def change_price(model_id: str):
    """A new price version for one model."""
    form = PriceForm()
    if not form.validate_on_submit():
        return _catalog_page(422, {model_id: form})
    # A cache price sent empty goes back to the input price; one not sent at all keeps its value.
    changes: dict[str, Any] = {name: getattr(form, name).data for name in service.PRICE_FIELDS
                               if name not in service.CACHE_PRICE_FIELDS or getattr(form, name).raw_data}
    if form.effective_from.data is not None:
        starts = form.effective_from.data.replace(tzinfo=zone(current_user.tz)).astimezone(timezone.utc)
        if starts <= datetime.now(timezone.utc):
            form.effective_from.errors = ["Pick a moment in the future, or leave it empty for now."]
            return _catalog_page(422, {model_id: form})
        changes["effective_from"] = starts.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        with console_call() as call:
            service.change_model(current_user, model_id, form.reason.data, **changes)
        error = call.message
    except service.OperatorError as exc:
        error = str(exc)
    if error:
        form.reason.errors = [error]
        return _catalog_page(422, {model_id: form}, error=f"{model_id}: {error}")
    if "effective_from" in changes:
        flash(f"New price for {model_id} scheduled.", "success")
    else:
        flash(f"New price for {model_id} recorded; every gateway applies it within seconds.", "success")
    return redirect_to(url_for("operator.catalog"))


@bp.route("/catalog/<model_id>/switch", methods=["POST"])
def switch_model(model_id: str):
    """Disable or enable a model."""
    form = SwitchForm()
    if not form.validate_on_submit():
        return _catalog_page(422, {model_id: form})
    try:
        with console_call() as call:
            service.change_model(current_user, model_id, form.reason.data, enabled=bool(form.enabled.data))
        error = call.message
    except service.OperatorError as exc:
        error = str(exc)
    if error:
        form.reason.errors = [error]
        return _catalog_page(422, {model_id: form}, error=f"{model_id}: {error}")
    flash(f"{model_id} {'enabled' if form.enabled.data else 'disabled'}.", "success")
    return redirect_to(url_for("operator.catalog"))


# --- channels and provider keys ---------------------------------------------------------------

def _channels_page(status: int = 200, forms: dict | None = None, error: str | None = None):
    """Every model's channels with live health, the provider keys, and their audit trail."""
    channels = keys = None
    with console_call() as call:
        channels = gateway().admin_channels()
    with console_call() as keys_call:
        keys = gateway().admin_provider_keys()
    return render("operator/channels.html", block="channel_table", status=status, channels=channels, keys=keys,
                  error=error or call.message or keys_call.message, forms=forms or {},
                  audit=sorted(service.audit_entries("channel", None, 30) + service.audit_entries("provider", None, 30),
                               key=lambda entry: entry.id, reverse=True))


@bp.route("/channels")
def channels():
    """Channels per model (health refreshed in place every few seconds) and provider keys."""
    return _channels_page()


@bp.route("/channels/switch", methods=["POST"])
def switch_channel():
    """Switch one channel off or on, for every gateway process."""
    form = ChannelSwitchForm()
    if not form.validate_on_submit():
        return _channels_page(422, {form.channel.data or "": form}, error="Say why; the reason goes into the audit log.")
    try:
        with console_call() as call:
            answer = service.switch_channel(current_user, form.channel.data, bool(form.enabled.data), form.reason.data)
        error = call.message
    except service.OperatorError as exc:
        error = str(exc)
    if error:
        return _channels_page(422, {form.channel.data: form}, error=f"{form.channel.data}: {error}")
    flash(f"{answer['channel']} is {'on' if answer['state'] != 'off' else 'off'} in every gateway within seconds.",
          "success")
    return redirect_to(url_for("operator.channels"))


@bp.route("/channels/test", methods=["POST"])
def test_channel():
    """Send a one-token request over one channel and say what it answered."""
    form = ChannelTestForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        with console_call() as call:
            answer = service.test_channel(current_user, form.channel.data)
        error = call.message
    except service.OperatorError as exc:
        error = str(exc)
    if error:
        flash(f"{form.channel.data}: {error}", "error")
    elif answer["ok"]:
        flash(f"{answer['channel']} answered in {answer['latency_ms']} ms.", "success")
    else:
        flash(f"{answer['channel']} failed: {answer['message']}", "error")
    return redirect_to(url_for("operator.channels"))


def _provider(value: str) -> str:
    if not _PROVIDER.match(value):
        abort(404)
    return value


@bp.route("/provider-keys/<provider>", methods=["POST"])
def set_provider_key(provider: str):
    """Hand a new key for ``provider`` to the gateway (stored encrypted; in force without restart)."""
    provider = _provider(provider)
    form = ProviderKeyForm()
    if not form.validate_on_submit():
        return _channels_page(422, {f"key-{provider}": form})
    try:
        with console_call() as call:
            answer = service.set_provider_key(current_user, provider, form.key.data, form.reason.data)
        error = call.message
    except service.OperatorError as exc:
        error = str(exc)
    if error:
        form.key.errors = [error]
        return _channels_page(422, {f"key-{provider}": form}, error=f"{provider}: {error}")
    flash(f"New key for {provider} ({answer['console_key']}) is in force in every gateway within seconds.", "success")
    return redirect_to(url_for("operator.channels"))


@bp.route("/provider-keys/<provider>/delete", methods=["POST"])
def delete_provider_key(provider: str):
    """Forget ``provider``'s console key (a key in the environment stays in force)."""
    provider = _provider(provider)
    form = ReasonForm()
    if not form.validate_on_submit():
        return _channels_page(422, {f"delete-{provider}": form})
    try:
        with console_call() as call:
            service.delete_provider_key(current_user, provider, form.reason.data)
        error = call.message
    except service.OperatorError as exc:
        error = str(exc)
    if error:
        return _channels_page(422, error=f"{provider}: {error}")
    flash(f"The console key for {provider} is forgotten.", "success")
    return redirect_to(url_for("operator.channels"))


# --- traffic, health, audit ------------------------------------------------------------------

USAGE_CHOICES = [("", "All usage"), ("true", "Flagged usage only")]


@bp.route("/traffic")
def traffic():
    """All requests (customer log filters plus customer and provider), money per day, provider health."""
    filters = parse_filters(request.args)
    errors = list(filters.errors)
    params = filters.params()
    account_id = typed_account_id = (request.args.get("account_id") or "").strip()[:100]
    if account_id and not _UUID.match(account_id):
        errors.append("The customer must be an account id.")
        account_id = ""
    provider = (request.args.get("provider") or "").strip()
    if provider and not _PROVIDER.match(provider):
        errors.append("Unknown provider.")
        provider = ""
    # Rows whose upstream usage was clamped or looked implausible, for review.
    flagged = "true" if request.args.get("flagged") == "true" else ""
    params.update({k: v for k, v in (("account_id", account_id), ("provider", provider), ("flagged", flagged)) if v})
    cursor = (request.args.get("cursor") or "").strip()[:500] or None
    tz = current_user.tz
    page = None
    with console_call() as call:
        page = gateway().admin_requests_page(dict(params, tz=tz), cursor, 50)
    if call.failed:
        errors.append(call.message)
    query = urlencode(params)
    # A refused customer id stays in its input beside the message, so it can be corrected.
    context = {"filters": filters, "errors": errors, "account_id": typed_account_id, "provider": provider,
               "flagged": flagged, "usage_choices": USAGE_CHOICES,
               "rows": (page or {}).get("data") or [], "page": page, "next_cursor": (page or {}).get("next_cursor"),
               "cursor": cursor, "query": query, "status_choices": STATUS_CHOICES}
    if is_htmx():
        return render("operator/traffic.html", block="rows" if cursor else "log_table", **context)
    try:
        date_range = resolve_range(request.args.get("range") or "30d", request.args.get("start_day"),
                                   request.args.get("end_day"), tz)
    except RangeError as exc:
        errors.append(str(exc))
        date_range = resolve_range("30d", None, None, tz)
    money = health = catalog = margin = None
    with console_call():
        money = gateway().admin_daily(date_range.start.isoformat(), date_range.end.isoformat(), tz)
    with console_call():
        margin = gateway().admin_margin(date_range.start.isoformat(), date_range.end.isoformat(), tz)
    with console_call():
        health = gateway().admin_providers()
    with console_call():
        catalog = gateway().catalog()
    days = (money or {}).get("days") or []
    totals = {k: sum(d[k] for d in days) for k in ("topups_micro_p", "refunds_micro_p", "adjustments_micro_p",
                                                   "spend_micro_p", "requests")}
    margin_rows = (margin or {}).get("rows")
    return render("operator/traffic.html", money=days, totals=totals, range=date_range, margin=margin_rows,
                  margin_totals=margin_totals(margin_rows or []),
                  presets=PRESETS, health=(health or {}).get("windows") or [],
                  providers=[p["id"] for p in (catalog or {}).get("providers") or []],
                  models=[m["id"] for m in (catalog or {}).get("models") or []], tz=tz, **context)


def margin_totals(rows: list[dict]) -> dict:
    """The margin report's sums over every day, model and channel."""
    return {name: sum(row[name] for row in rows)
            for name in ("requests", "revenue_micro_p", "upstream_cost_micro_p", "margin_micro_p")}


@bp.route("/traffic/margin.csv")
def margin_csv():
    """The margin per day, model and channel of the traffic page's range, as a CSV file."""
    tz = current_user.tz
    try:
        date_range = resolve_range(request.args.get("range") or "30d", request.args.get("start_day"),
                                   request.args.get("end_day"), tz)
    except RangeError as exc:
        abort(400, str(exc))
    start, end = date_range.start.isoformat(), date_range.end.isoformat()
    text = None
    with console_call() as call:
        text = gateway().admin_margin_csv(start, end, tz)
    if text is None:
        abort(call.status if call.status >= 400 else 503)
    return Response(text, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="margin-{start}-{end}.csv"'})


def _ledger_context(fresh: bool = False) -> dict:
    """The ledger check for the Health page (kept a minute, see ``ledger_check``) and its age."""
    check = None
    with console_call():
        check = ledger_checks(current_app).get(gateway().verify_ledger, fresh=fresh)
    if check is None:
        return {"ledger": None, "ledger_age": None, "ledger_checked_at": None}
    return {"ledger": check.report, "ledger_age": age_text(check.age_seconds()),
            "ledger_checked_at": check.checked_at.isoformat() + "Z"}


@bp.route("/health")
def health():
    """Whether the portal reaches the gateway, its version, the batch writer, the databases and the books."""
    status = gateway_state = None
    with console_call() as call:
        status = gateway().health()
        gateway_state = gateway().admin_status()
    # The gateway answered its health check but not the status: show the health, not the status's error.
    error = call.message if status is None else None
    portal_db = db.engine.url
    return render("operator/health.html", block=None, status_data=status, error=error, gateway_state=gateway_state,
                  gateway_url=current_app.config["GATEWAY_URL"], smtp_on=smtp_configured(),
                  oldest_open=service.oldest_unanswered(), **_ledger_context(),
                  portal_database=portal_db.get_backend_name(), portal_database_name=portal_db.database or "")


@bp.route("/health/ledger-check", methods=["POST"])
def recheck_ledger():
    """Run the ledger check again now: the section for htmx, the Health page otherwise."""
    context = _ledger_context(fresh=True)
    if is_htmx():
        return render("operator/_ledger_check.html", block=None, **context)
    return redirect_to(url_for("operator.health"))


@bp.route("/audit")
def audit():
    """Every operator action, newest first."""
    return render("operator/audit.html", block=None, entries=service.audit_entries(limit=300))
