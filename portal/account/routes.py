"""Routes: /settings, /settings/timezone, /settings/timezone/detect, /settings/password."""

from __future__ import annotations

from flask import Blueprint, flash, request
from flask_login import current_user, login_required

from ..accounts import ensure_account, sync_usage_zone
from ..auth.passwords import hash_password, verify_password
from ..auth.routes import start_session
from ..extensions import db
from ..gateway_views import calling_gateway
from ..htmx import is_htmx, redirect_to, render
from ..timeutil import is_valid_zone
from .forms import ChangePasswordForm, TimezoneForm

bp = Blueprint("account", __name__)


def _page(tz_form=None, password_form=None, status=200, block="content", **extra):
    account_id = current_user.account_id
    if account_id is None:
        with calling_gateway():
            account_id = ensure_account(current_user)
    tz_form = tz_form or TimezoneForm(data={"timezone": current_user.tz})
    password_form = password_form or ChangePasswordForm(formdata=None)
    return render("account/settings.html", block=block, status=status, tz_form=tz_form,
                  password_form=password_form, account_id=account_id, **extra)


@bp.route("/settings")
@login_required
def settings():
    """Account info, time zone and change password."""
    return _page()


@bp.route("/settings/timezone", methods=["POST"])
@login_required
def update_timezone():
    """Save the chosen zone."""
    form = TimezoneForm()
    if form.validate_on_submit():
        current_user.timezone = form.timezone.data
        db.session.commit()
        sync_usage_zone(current_user)
        if not is_htmx():
            flash(f"Time zone set to {form.timezone.data}.", "success")
            return redirect_to("/settings")
        return _page(tz_form=form, block="tz_form", tz_saved=True)
    return _page(tz_form=form, status=422, block="tz_form")


@bp.route("/settings/timezone/detect", methods=["POST"])
@login_required
def detect_timezone():
    """Take the browser's zone on the first visit; an explicit choice is never overwritten."""
    name = (request.form.get("timezone") or "").strip()
    if current_user.timezone is None and is_valid_zone(name):
        current_user.timezone = name
        db.session.commit()
        sync_usage_zone(current_user)
    return "", 204


@bp.route("/settings/password", methods=["POST"])
@login_required
def change_password():
    """Change the password; every other session is signed out, this one continues."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        if not verify_password(current_user.password_hash, form.current_password.data):
            form.current_password.errors.append("That is not your current password.")
        else:
            user = current_user._get_current_object()
            user.password_hash = hash_password(form.password.data)
            user.session_version += 1
            db.session.commit()
            start_session(user)
            flash("Password changed. Other devices have been signed out.", "success")
            return redirect_to("/settings")
    return _page(password_form=form, status=422, block="password_form")
