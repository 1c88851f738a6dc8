"""Routes: /keys (list and create), /keys/<id>/rename, /keys/<id>/limits, /keys/<id>/revoke."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, request
from flask_login import current_user, login_required

from ..accounts import ensure_account
from ..gateway_client import GatewayUnavailable, gateway
from ..gateway_views import calling_gateway
from ..htmx import is_htmx, redirect_to, render
from ..money import format_p
from .forms import CreateKeyForm, KeyLimitsForm, RenameKeyForm, last_day, limit_text

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
    }


def _keys() -> list[dict] | None:
    with calling_gateway() as call:
        keys = gateway().list_keys(ensure_account(current_user))
    if call.failed:
        return None
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


@bp.route("/keys", methods=["GET", "POST"])
@login_required
def keys():
    """List keys; create one and show its full value exactly once."""
    form = CreateKeyForm(tz=current_user.tz)
    new_key = None
    error = None
    status = 200
    if form.validate_on_submit():
        with calling_gateway("The key could not be created because the usage service is unavailable. "
                             "Try again in a minute.", show_refusal=True) as call:
            new_key = gateway().create_key(ensure_account(current_user), form.name.data,
                                           form.spend_limit_micro_p(), form.expires_at_iso())
            form = CreateKeyForm(formdata=None, tz=current_user.tz)
        error, status = call.message, call.status
    elif form.errors:
        status = 422
    response = render("keys/keys.html", block="keys_section", status=status, form=form,
                      keys=_keys(), new_key=new_key, error=error)
    return _no_store(response) if new_key else response


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
            key = _shown(gateway().update_key(ensure_account(current_user), key_id, name=form.name.data))
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
                key = _shown(gateway().update_key(ensure_account(current_user), key_id, **changes))
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
        key = _shown(gateway().revoke_key(ensure_account(current_user), key_id))
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
