"""Routes: /keys (list and create), /keys/<id> (its controls and usage), /keys/<id>/rename,
/keys/<id>/limits, /keys/<id>/controls, /keys/<id>/revoke, and /keys/check-ips (the
allow-list's inline check)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import Blueprint, abort, flash, request
from flask_login import current_user, login_required

from ..teams.selection import selected_account
from ..catalog_view import load_catalog
from ..gateway_client import GatewayUnavailable, gateway
from ..gateway_views import calling_gateway
from ..htmx import is_htmx, redirect_to, render
from ..money import format_p
from ..timeutil import today_in
from . import budget_alerts  # noqa: F401 - registers the budget alert mails with the event worker
from .controls import budget_is_spent, budget_line, check_ip_text, model_groups, period_days, rate_line, reset_day
from .forms import (
    CreateKeyForm,
    KeyControlsForm,
    KeyLimitsForm,
    RenameKeyForm,
    controls_data,
    last_day,
    limit_text,
)

bp = Blueprint("keys", __name__)
log = logging.getLogger(__name__)


def _shown(key: dict) -> dict:
    """The key plus what its row shows in the user's zone: the last day it works, and
    whether its spending limit already stops it (the gateway refuses a key whose spend
    has reached its limit)."""
    limit = key.get("spend_limit_micro_p")
    return {
        **key,
        "last_day": last_day(key.get("expires_at"), current_user.tz),
        "limit_reached": limit is not None and (key.get("spent_micro_p") or 0) >= limit,
        "budget_spent": budget_is_spent(key, datetime.now(timezone.utc)),
        "budget_line": budget_line(key),
        "budget_resets": reset_day(key.get("budget_resets_at"), current_user.tz),
        "rate_line": rate_line(key),
    }


def _keys() -> list[dict] | None:
    selection = selected_account()
    member = selection.member_filter
    with calling_gateway() as call:
        keys = gateway().list_keys(selection.account_id, member_id=member)
    if call.failed:
        return None
    if member is not None:
        # A developer sees and manages only the keys they own in the team.
        keys = [k for k in keys if k.get("member_id") == member]
    # Active keys first, newest first within each status.
    order = {"active": 0, "expired": 1, "revoked": 2}
    keys.sort(key=lambda k: k.get("created_at") or "", reverse=True)
    keys.sort(key=lambda k: order.get(k.get("status"), 3))
    return [_shown(k) for k in keys]


def _key(key_id: str) -> dict:
    keys = _keys()
    if keys is None:
        # No page can be drawn for a key that cannot be read: the app's handler answers 503.
        raise GatewayUnavailable("keys unavailable")
    for key in keys:
        if key["id"] == key_id:
            return key
    abort(404)


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def _row(key: dict):
    return render("keys/row.html", block="row", key=key)


def _picker() -> tuple[list[tuple[str, list[dict]]], list[str]]:
    """The model picker's groups and every id it offers (none while the gateway is down)."""
    catalog = load_catalog()
    groups = model_groups(catalog.models) if catalog else []
    return groups, [model["id"] for _, members in groups for model in members]


@bp.route("/keys", methods=["GET", "POST"])
@login_required
def keys():
    """List keys; create one (with any controls) and show its full value exactly once."""
    groups, model_ids = _picker()
    form = CreateKeyForm(tz=current_user.tz)
    form.set_models(model_ids)
    new_key = None
    error = None
    status = 200
    if form.validate_on_submit():
        with calling_gateway("The key could not be created because the usage service is unavailable. "
                             "Try again in a minute.", show_refusal=True) as call:
            selection = selected_account()
            new_key = gateway().create_key(selection.account_id, form.name.data, form.spend_limit_micro_p(),
                                           form.expires_at_iso(), member_id=selection.key_owner,
                                           **form.controls())
            form = CreateKeyForm(formdata=None, tz=current_user.tz)
            form.set_models(model_ids)
        error, status = call.message, call.status
    elif form.errors:
        status = 422
    response = render("keys/keys.html", block="keys_section", status=status, form=form,
                      keys=_keys(), new_key=new_key, error=error, model_groups=groups)
    return _no_store(response) if new_key else response


@bp.route("/keys/check-ips", methods=["POST"])
@login_required
def check_ips():
    """The allow-list box's inline check: what would be saved, or why it is refused."""
    field_id = request.args.get("field") or "allowed_ips"
    text = next((value for name, value in request.form.items() if name.endswith("allowed_ips")), "")
    entries, problem = check_ip_text(text)
    return render("keys/_ip_check.html", block=None, entries=entries, problem=problem,
                  field_id=field_id if field_id.replace("-", "").replace("_", "").isalnum() else "allowed_ips")


def _key_usage(key: dict) -> tuple[list[dict], tuple | None]:
    """The key's usage by day over its budget period (this month without a budget)."""
    today = today_in(current_user.tz)
    days = period_days(key, current_user.tz, today) or (today.replace(day=1), today)
    with calling_gateway() as call:
        data = gateway().key_usage(selected_account().account_id, key["id"], days[0].isoformat(),
                                   days[1].isoformat(), current_user.tz)
    if call.failed:
        return [], None
    return list(data.get("daily") or []), days


@bp.route("/keys/<key_id>", methods=["GET"])
@login_required
def detail(key_id: str):
    """One key: its controls at a glance and to edit, and its spend by day this period."""
    key = _key(key_id)
    groups, model_ids = _picker()
    form = KeyControlsForm(data=controls_data(key))
    form.set_models(model_ids)
    daily, days = _key_usage(key)
    return render("keys/detail.html", block=None, key=key, form=form, model_groups=groups, daily=daily,
                  days=days, most=max([row["cost_micro_p"] for row in daily] or [0]))


@bp.route("/keys/<key_id>/controls", methods=["POST"])
@login_required
def controls(key_id: str):
    """Save a key's budget, allow-lists and rate limits; empty fields remove them."""
    key = _key(key_id)
    groups, model_ids = _picker()
    form = KeyControlsForm()
    form.set_models(model_ids)
    error = None
    status = 200
    if key.get("status") == "revoked":
        error, status = f"“{key['name']}” is revoked; its controls can no longer change.", 409
    elif form.validate_on_submit():
        with calling_gateway("The controls could not be saved because the usage service is unavailable. "
                             "Try again in a minute.", show_refusal=True) as call:
            key = _shown(gateway().update_key(selected_account().account_id, key_id, **form.controls()))
        if call.failed:
            error, status = call.message, call.status
        else:
            if is_htmx():
                return render("keys/detail.html", block="controls_section", key=key, form=form,
                              model_groups=groups, saved=True)
            flash(f"Controls of “{key['name']}” saved. Every gateway applies them within 2 seconds.", "success")
            return redirect_to(f"/keys/{key_id}")
    else:
        status = 422
    return render("keys/detail.html", block="controls_section", status=status, key=key, form=form,
                  model_groups=groups, error=error, daily=[], days=None, most=0)


@bp.route("/keys/<key_id>/rename", methods=["GET", "POST"])
@login_required
def rename(key_id: str):
    """Rename inline (htmx swaps the table row) or on its own page without JavaScript."""
    key = _key(key_id)
    form = RenameKeyForm(data={"name": key.get("name")})
    status = 200
    if form.validate_on_submit():
        with calling_gateway("The key could not be renamed because the usage service is unavailable. "
                             "Try again in a minute.", show_refusal=True) as call:
            key = _shown(gateway().update_key(selected_account().account_id, key_id, name=form.name.data))
        if call.failed:
            form.name.errors.append(call.message)
            status = call.status
        else:
            if is_htmx():
                return _row(key)
            flash(f"Key renamed to “{key['name']}”.", "success")
            return redirect_to("/keys")
    elif form.errors:
        status = 422
    return render("keys/rename.html", block="row", status=status, form=form, key=key)


def _limits_summary(key: dict) -> str:
    limit = key.get("spend_limit_micro_p")
    spending = f"a spending limit of {format_p(limit)}" if limit is not None else "no spending limit"
    day = key.get("last_day")
    ending = f"works until the end of {day.isoformat()} ({current_user.tz})" if day else "never expires"
    return f"“{key['name']}” now has {spending} and {ending}."


def _limit_reached_warning(key: dict) -> str:
    return (f"“{key['name']}” has already spent {format_p(key.get('spent_micro_p') or 0)}, which reaches its "
            f"limit: requests with it are refused until you raise or remove the limit.")


@bp.route("/keys/<key_id>/limits", methods=["GET", "POST"])
@login_required
def limits(key_id: str):
    """Change a key's spending limit and expiry inline (htmx swaps the table row) or on
    its own page without JavaScript. Empty fields remove the limit or the expiry."""
    key = _key(key_id)
    if key.get("status") == "revoked":
        if is_htmx():
            return _row(key)
        flash(f"“{key['name']}” is revoked; its limits can no longer change.", "warning")
        return redirect_to("/keys")
    current_limit = key.get("spend_limit_micro_p")
    form = KeyLimitsForm(data={"spend_limit": limit_text(current_limit), "expires_on": key["last_day"]},
                         tz=current_user.tz, current_limit_micro_p=current_limit,
                         current_expires_on=key["last_day"])
    error = None
    status = 200
    if form.validate_on_submit():
        changes = form.limit_changes()
        with calling_gateway("The limits could not be saved because the usage service is unavailable. "
                             "Try again in a minute.", show_refusal=True) as call:
            if changes:
                key = _shown(gateway().update_key(selected_account().account_id, key_id, **changes))
        if call.refusal:
            # The gateway's word is final; show it beside the field it concerns.
            target = {"spend_limit_micro_p": form.spend_limit, "expires_at": form.expires_on}
            field = next((f for name, f in target.items() if name in call.message), None)
            if field is None:
                error = call.message
            else:
                field.errors.append(call.message)
            status = call.status
        elif call.failed:
            error, status = call.message, call.status
        else:
            if is_htmx():
                return _row(key)
            flash(_limits_summary(key), "success")
            if key["limit_reached"] and key.get("status") == "active":
                flash(_limit_reached_warning(key), "warning")
            return redirect_to("/keys")
    elif form.errors:
        status = 422
    return render("keys/limits.html", block="row", status=status, form=form, key=key, error=error)


@bp.route("/keys/<key_id>/revoke", methods=["GET", "POST"])
@login_required
def revoke(key_id: str):
    """Revoke after confirmation: a GET shows the question, a POST does it."""
    key = _key(key_id)
    if key.get("status") == "revoked":
        if is_htmx():
            return _row(key)
        return redirect_to("/keys")
    if request.method != "POST":
        return render("keys/revoke.html", key=key)
    with calling_gateway("The key could not be revoked because the usage service is unavailable. "
                         "Try again in a minute.", show_refusal=True) as call:
        key = _shown(gateway().revoke_key(selected_account().account_id, key_id))
    if call.failed:
        return render("keys/revoke.html", status=call.status, key=key, error=call.message)
    if is_htmx():
        return _row(key)
    flash(f"Key “{key['name']}” revoked. Requests with it are refused from now on.", "success")
    return redirect_to("/keys")


@bp.route("/keys/<key_id>/row")
@login_required
def row(key_id: str):
    """One table row (used to cancel an inline edit); the full list without htmx."""
    if not is_htmx():
        return redirect_to("/keys")
    return _row(_key(key_id))
