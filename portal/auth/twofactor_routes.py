"""Routes: /login/2fa (the second sign-in step) and /settings/2fa (enrol, turn off)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, flash
from flask_login import current_user, login_required

from ..htmx import redirect_to, render
from . import devices, throttle, twofactor
from .passwords import verify_password
from .second_step import forget_pending, pending_user
from .sessions import start_session
from .twofactor_forms import DisableTwoFactorForm, EnableTwoFactorForm, SecondStepForm

bp = Blueprint("twofactor", __name__)


def _private(response: Response) -> Response:
    # Pages with a secret (the enrolment key, recovery codes) stay out of every cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/login/2fa", methods=["GET", "POST"])
def second_step():
    """The second sign-in step: a TOTP code or a recovery code."""
    user, next_url = pending_user()
    if user is None:
        forget_pending()
        flash("Sign in again: the code step expired.", "info")
        return redirect_to("/login")
    form = SecondStepForm()
    status, error = 200, None
    if form.validate_on_submit():
        attempt = throttle.begin_attempt(user.email, throttle.client_ip(), trusted=devices.is_trusted(user))
        if attempt.wait:
            error, status = f"Too many failed attempts. Try again in {attempt.wait} seconds.", 429
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
        attempt = throttle.begin_attempt(user.email, throttle.client_ip(), trusted=devices.is_trusted(user))
        if attempt.wait:
            form.code.errors.append(f"Too many failed attempts. Try again in {attempt.wait} seconds.")
        elif not verify_password(user.password_hash, form.password.data):
            form.password.errors.append("That is not your current password.")
        elif not twofactor.verify_second_factor(user, form.code.data):
            form.code.errors.append("That code is not valid.")
        else:
            throttle.forget_attempt(attempt)
            twofactor.disable(user)
            current_app.logger.info("two-factor sign-in turned off for user %s", user.id)
            flash("Two-factor sign-in is off.", "success")
            return redirect_to("/settings")
    return _private(render("auth/twofactor_setup.html", status=422, enabled=True, disable_form=form,
                           remaining=twofactor.unused_recovery_codes(user)))
