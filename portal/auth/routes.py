"""Routes: /signup, /signup/sent, /confirm/<token>, /confirm/resend, /login, /logout, /reset and /reset/<token>."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, Response, flash, request, session, url_for
from flask_login import current_user, login_required
from sqlalchemy.exc import IntegrityError

from ..accounts import ensure_account
from ..demo import make_first_user_operator
from ..extensions import db
from ..gateway_client import GatewayError, GatewayUnavailable
from ..htmx import redirect_to, render
from ..models import User
from ..teams.service import join_on_confirmation
from . import confirmation, devices, duplicates, throttle, twofactor
from .forms import LoginForm, ResendConfirmationForm, ResetPasswordForm, ResetRequestForm, SignupForm
from .passwords import burn_verify_time, hash_password, needs_rehash, verify_password
from .reset import reset_password as apply_reset
from .reset import send_reset_link, valid_token
from .second_step import begin_second_step
from .sessions import end_all_sessions, end_session, start_session

__all__ = ["bp", "start_session"]

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)


def _safe_next(default: str = "/dashboard") -> str:
    target = request.args.get("next") or request.form.get("next") or ""
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.netloc and not parts.scheme \
            and "\\" not in target:
        return target
    return default


SENT_PAGE = "/signup/sent"


def _check_your_inbox() -> Response:
    """The one answer to every accepted sign-up, new address or taken: nobody is signed in."""
    session.clear()
    return redirect_to(SENT_PAGE)


def _answer_taken_address(existing: User) -> Response:
    """Answer a sign-up for a taken address exactly like a new one; its owner gets an e-mail."""
    duplicates.notify_owner(existing)
    return _check_your_inbox()


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """Create a portal user and e-mail it a confirmation link; it signs in by opening the link."""
    if current_user.is_authenticated:
        return redirect_to("/dashboard")
    form = SignupForm()
    if form.validate_on_submit():
        email = form.email.data
        password_hash = hash_password(form.password.data)
        existing = db.session.scalar(sa.select(User).where(User.email == email))
        if existing is not None:
            return _answer_taken_address(existing)
        user = User(email=email, password_hash=password_hash)
        db.session.add(user)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return _answer_taken_address(db.session.scalar(sa.select(User).where(User.email == email)))
        make_first_user_operator(user)
        confirmation.send_link(user, _safe_next())
        return _check_your_inbox()
    status = 422 if form.errors else 200
    return render("auth/signup.html", block="form", status=status, form=form, next=_safe_next(""))


@bp.route("/signup/sent", methods=["GET"])
def signup_sent():
    """"Check your inbox": the page after every accepted sign-up."""
    return render("auth/signup_sent.html")


@bp.route("/confirm/<token>", methods=["GET"])
def confirm_email(token: str):
    """Confirm the address from the e-mailed link (once), create the gateway account, sign in."""
    confirmed = confirmation.confirm(token)
    if confirmed is None:
        response = render("auth/confirm_invalid.html", status=410)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    user, next_url = confirmed
    account_ready = True
    try:
        ensure_account(user)
    except (GatewayUnavailable, GatewayError) as exc:
        # The account is created on a later visit; creation is idempotent.
        log.warning("gateway account for user %s not created yet: %s", user.id, exc)
        db.session.rollback()
        account_ready = False
    # Flash after the fresh session starts: starting it clears everything before.
    start_session(user)
    flash("Your e-mail address is confirmed. Welcome to SAMALink.", "success")
    if not account_ready:
        flash("Balance and keys appear as soon as the usage service answers.", "warning")
    target = next_url if next_url.startswith("/") and not next_url.startswith("//") else "/dashboard"
    team = join_on_confirmation(user, target)
    if team is not None:
        flash(f"You joined {team.name}.", "success")
        target = url_for("dashboard.dashboard", account=team.id)
    response = devices.remember_device(redirect_to(target), user)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/confirm/resend", methods=["GET", "POST"])
def confirm_resend():
    """Ask for a new confirmation link; the answer is the same for every address."""
    form = ResendConfirmationForm()
    sent = False
    if form.validate_on_submit():
        confirmation.resend_for_address(form.email.data)
        sent = True
    status = 422 if form.errors else 200
    return render("auth/confirm_resend.html", block="form", status=status, form=form, sent=sent)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in, slowed down after repeated failures."""
    if current_user.is_authenticated:
        return redirect_to(_safe_next())
    form = LoginForm()
    status = 200
    error = None
    if form.validate_on_submit():
        email = form.email.data
        user = db.session.scalar(sa.select(User).where(User.email == email))
        attempt = throttle.begin_attempt(email, throttle.client_ip(), trusted=devices.is_trusted(user))
        if attempt.wait:
            error = f"Too many failed attempts. Try again in {attempt.wait} seconds."
            status = 429
        else:
            if user is None:
                burn_verify_time()
            if user is not None and verify_password(user.password_hash, form.password.data):
                if needs_rehash(user.password_hash):
                    user.password_hash = hash_password(form.password.data)
                    db.session.commit()
                if not confirmation.is_confirmed(user):
                    # Only someone who knows the password gets here, so saying so reveals nothing.
                    throttle.clear_failures(email)
                    if confirmation.resend_link(user):
                        error = "Confirm your e-mail address first; we have sent you a new link."
                    else:
                        error = ("Confirm your e-mail address first; we sent you a link less than a minute "
                                 "ago. Open the newest one in your inbox.")
                    return render("auth/login.html", block="form", status=422, form=form, error=error,
                                  next=_safe_next(""))
                if twofactor.is_enabled(user):
                    throttle.forget_attempt(attempt)
                    return begin_second_step(user, _safe_next())
                throttle.clear_failures(email)
                start_session(user)
                return devices.remember_device(redirect_to(_safe_next()), user)
            error = "Wrong e-mail or password."
            status = 422
    elif form.errors:
        status = 422
    return render("auth/login.html", block="form", status=status, form=form, error=error,
                  next=_safe_next(""))


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """Sign out (POST); a GET only asks for confirmation so a link cannot sign anyone out."""
    if request.method == "POST":
        end_session()
        flash("You are signed out.", "info")
        return redirect_to("/login")
    if not current_user.is_authenticated:
        return redirect_to("/login")
    return render("auth/logout.html")


@bp.route("/reset", methods=["GET", "POST"])
def reset_request():
    """Ask for a reset link; the answer is the same whether or not the address exists."""
    form = ResetRequestForm()
    sent = False
    if form.validate_on_submit():
        send_reset_link(form.email.data)
        sent = True
    status = 422 if form.errors else 200
    return render("auth/reset_request.html", block="form", status=status, form=form, sent=sent)


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    """Choose a new password from a single-use link."""
    if valid_token(token) is None:
        return render("auth/reset_invalid.html", status=410)
    form = ResetPasswordForm()
    if form.validate_on_submit():
        user = apply_reset(token, form.password.data)
        if user is None:
            return render("auth/reset_invalid.html", status=410)
        throttle.clear_failures(user.email)
        end_all_sessions(user)
        end_session()
        flash("Your password was changed. Sign in with the new one.", "success")
        return redirect_to("/login")
    status = 422 if form.errors else 200
    response = render("auth/reset_password.html", block="form", status=status, form=form, token=token)
    # The address holds a secret: keep it out of caches and Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/logout-everywhere", methods=["POST"])
@login_required
def logout_everywhere():
    """End every session of this user, this one included."""
    user = current_user._get_current_object()
    user.session_version += 1
    db.session.commit()
    end_all_sessions(user)
    end_session()
    flash("You are signed out on every device.", "info")
    return redirect_to("/login")
