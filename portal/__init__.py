"""The SAMALink customer portal (Flask): ``create_app(config)`` builds it."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask, redirect, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from . import events, mail, security
from .accounts import current_account
from .auth import sessions
from .config import Config
from .extensions import csrf, db, login_manager, migrate
from .filters import register_filters
from .macros import register_macros
from .gateway_client import GatewayClient, GatewayUnavailable
from .gateway_views import gateway_down, mark_gateway_down
from .htmx import redirect_to, render
from .models import User
from .navigation import nav_for

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = ROOT / "migrations"

log = logging.getLogger(__name__)


def create_app(config: Config | None = None) -> Flask:
    """Build the portal app from ``config`` (default: ``Config()`` read from the environment)."""
    config = config or Config()
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(Path(config.INSTANCE_DIR).resolve()),
    )
    app.config.from_object(config)
    if app.config.get("TRUST_PROXY"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUST_PROXY"], x_proto=1, x_host=1)

    db.init_app(app)
    # Mail leaves through the outbox, delivered by one background sender per process.
    mail.install(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    app.extensions["gateway_client"] = GatewayClient(app.config["GATEWAY_URL"], app.config["INTERNAL_API_TOKEN"])

    register_filters(app)
    register_macros(app)
    security.install(app)
    sessions.install(app)
    _register_blueprints(app)
    _register_template_context(app)
    _register_error_handlers(app)
    # Balance alerts from the gateway, handled by one worker per process (once routes exist).
    events.install(app)
    return app


@login_manager.user_loader
def load_user(identity: str) -> User | None:
    """Find the session's user; a stale session version (password changed) signs it out."""
    user_id, _, version = identity.partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version):
        return None
    return user


@login_manager.unauthorized_handler
def sign_in_first():
    """Send visitors to the sign-in page; htmx requests get a whole-page redirect, not a swapped-in form."""
    target = request.full_path.rstrip("?") if request.method == "GET" else request.path
    url = "/login?" + urlencode({"next": target})
    if request.headers.get("HX-Request") == "true":
        return redirect_to(url)
    return redirect(url)


def _register_blueprints(app: Flask) -> None:
    from .account.routes import bp as account_bp
    from .auth.routes import bp as auth_bp
    from .auth.twofactor_routes import bp as twofactor_bp
    from .billing import bp as billing_bp
    from .dashboard.routes import bp as dashboard_bp
    from .demo.routes import bp as demo_bp
    from .docs.routes import bp as docs_bp
    from .keys.routes import bp as keys_bp
    from .requests_log.routes import bp as requests_log_bp
    from .support.routes import bp as support_bp
    from .usage.routes import bp as usage_bp

    for blueprint in (auth_bp, twofactor_bp, dashboard_bp, docs_bp, keys_bp, billing_bp, usage_bp, requests_log_bp,
                      account_bp, support_bp, demo_bp):
        app.register_blueprint(blueprint)
    from .operator import install as install_operator_console

    install_operator_console(app)
    from . import teams

    teams.install(app)


def _register_template_context(app: Flask) -> None:
    @app.context_processor
    def frame_context() -> dict:
        signed_in = current_user.is_authenticated
        return {
            "nav_items": nav_for(request.path, signed_in),
            "topbar_account": current_account,
            "gateway_down": gateway_down,
            "public_base_url": app.config["GATEWAY_PUBLIC_URL"],
            "support_email": app.config["SUPPORT_EMAIL"],
            "demo_mode": bool(app.config.get("DEMO")),
        }


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError):
        return render("errors/error.html", status=400, title="Form expired",
                      message="This form expired or was sent from another site. Reload the page and try again.")

    @app.errorhandler(GatewayUnavailable)
    def usage_service_down(error: GatewayUnavailable):
        log.warning("usage service unavailable: %s", error)
        mark_gateway_down()
        return render("errors/error.html", status=503, title="Usage service unavailable",
                      message="The usage service is unavailable right now. Your data is safe; try again in a minute.")

    @app.errorhandler(404)
    def not_found(error):
        return render("errors/error.html", status=404, title="Page not found",
                      message="There is no page at this address.")

    @app.errorhandler(405)
    def not_allowed(error):
        return render("errors/error.html", status=405, title="Not allowed",
                      message="This page does not accept that kind of request.")

    @app.errorhandler(413)
    def too_large(error):
        return render("errors/error.html", status=413, title="Too large",
                      message="That request was too large.")

    @app.errorhandler(500)
    def server_error(error):
        db.session.rollback()
        return render("errors/error.html", status=500, title="Something went wrong",
                      message="Something went wrong on our side. Please try again.")
