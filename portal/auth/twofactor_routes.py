"""Routes: /login/2fa (the second sign-in step) and /settings/2fa (enrol, turn off)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, flash, request, session
from flask_login import current_user, login_required

from ..extensions import db
from ..htmx import redirect_to, render
from ..models import User
from . import devices, throttle, twofactor
from .passwords import verify_password
from .twofactor_forms import DisableTwoFactorForm, EnableTwoFactorForm, SecondStepForm

bp = Blueprint("twofactor", __name__)

PENDING_KEY = "2fa_pending"
# How long the password step stays good while the user fetches a code.
PENDING_SECONDS = 300


def _client_ip() -> str:
    return request.remote_addr or "unknown"


def _private(response: Response) -> Response:
    # Pages with a secret (the enrolment key, recovery codes) stay out of every cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def begin_second_step(user: User, next_url: str) -> Response:
    """The password was right and the user has two-factor on: ask for the code next.

    The session is cleared, so nothing from before survives; only the pending user id
    (with its session version, so a password change in between voids it) is kept.
    """
    session.clear()
    session[PENDING_KEY] = {"uid": user.id, "v": user.session_version, "at": int(time.time()), "next": next_url}
    return redirect_to("/login/2fa")


def _pending_user() -> tuple[User | None, str]:
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None, "/dashboard"
    user = db.session.get(User, pending.get("uid"))
    if user is None or user.session_version != pending.get("v"):
        return None, "/dashboard"
    return user, pending.get("next") or "/dashboard"


@bp.route("/login/2fa", methods=["GET", "POST"])
def second_step():
    """The second sign-in step: a TOTP code or a recovery code."""
    from .routes import start_session

    user, next_url = _pending_user()
    if user is None:
        session.pop(PENDING_KEY, None)
        flash("Sign in again: the code step expired.", "info")
        return redirect_to("/login")
    form = SecondStepForm()
    status, error = 200, None
    if form.validate_on_submit():
        ip = _client_ip()
        wait = throttle.seconds_to_wait(user.email, ip, trusted=devices.is_trusted(user))
        if wait:
            error, status = f"Too many failed attempts. Try again in {wait} seconds.", 429
        elif twofactor.verify_second_factor(user, form.code.data):
            throttle.clear_failures(user.email)
            start_session(user)
            remaining = twofactor.unused_recovery_codes(user)
            if remaining <= 3:
                flash(f"You have {remaining} recovery codes left. Make new ones in Settings.", "warning")
            response = redirect_to(next_url)
            devices.remember_device(response, user)
            return response
        else:
            throttle.record_failure(user.email, ip)
            error, status = "That code is not valid. Try the current code from your app.", 422
    elif form.errors:
        status = 422
    return render("auth/twofactor_login.html", block="form", status=status, form=form, error=error)


@bp.route("/settings/2fa", methods=["GET"])
@login_required
def setup():
    """Two-factor status; while off, the QR code and secret to enrol an app."""
    user = current_user._get_current_object()
    context: dict = {"enabled": twofactor.is_enabled(user)}
    if context["enabled"]:
        context.update(disable_form=DisableTwoFactorForm(formdata=None),
                       remaining=twofactor.unused_recovery_codes(user))
    else:
        secret = twofactor.pending_secret(user)
        context.update(secret=secret, qr=twofactor.qr_svg(twofactor.provisioning_uri(user, secret)),
                       enable_form=EnableTwoFactorForm(formdata=None))
    return _private(render("auth/twofactor_setup.html", **context))


@bp.route("/settings/2fa/enable", methods=["POST"])
@login_required
def enable():
    """Check the first code; on success show the recovery codes once."""
    user = current_user._get_current_object()
    if twofactor.is_enabled(user):
        return redirect_to("/settings/2fa")
    form = EnableTwoFactorForm()
    if form.validate_on_submit():
        codes = twofactor.enable(user, form.code.data)
        if codes is not None:
            return _private(render("auth/twofactor_codes.html", block=None, codes=codes))
        form.code.errors.append("That code does not match. Check the time on your phone and try the current code.")
    secret = twofactor.pending_secret(user)
    return _private(render("auth/twofactor_setup.html", status=422, enabled=False, secret=secret,
                           qr=twofactor.qr_svg(twofactor.provisioning_uri(user, secret)), enable_form=form))


@bp.route("/settings/2fa/disable", methods=["POST"])
@login_required
def disable():
    """Turn two-factor off after re-authentication with the password and a current code."""
    user = current_user._get_current_object()
    if not twofactor.is_enabled(user):
        return redirect_to("/settings/2fa")
    form = DisableTwoFactorForm()
    if form.validate_on_submit():
        ip = _client_ip()
        wait = throttle.seconds_to_wait(user.email, ip, trusted=devices.is_trusted(user))
        if wait:
            form.code.errors.append(f"Too many failed attempts. Try again in {wait} seconds.")
        elif not verify_password(user.password_hash, form.password.data):
            throttle.record_failure(user.email, ip)
            form.password.errors.append("That is not your current password.")
        elif not twofactor.verify_second_factor(user, form.code.data):
            throttle.record_failure(user.email, ip)
            form.code.errors.append("That code is not valid.")
        else:
            twofactor.disable(user)
            current_app.logger.info("two-factor sign-in turned off for user %s", user.id)
            flash("Two-factor sign-in is off.", "success")
            return redirect_to("/settings")
    return _private(render("auth/twofactor_setup.html", status=422, enabled=True, disable_form=form,
                           remaining=twofactor.unused_recovery_codes(user)))
