"""The operator console: customers, support inbox, catalogue, traffic and health, with an audit log.

``install(app)`` registers the ``/operator`` blueprint and the ``create-operator`` command.
"""

from __future__ import annotations

import click
from flask import Flask

from .routes import bp


def install(app: Flask) -> None:
    """Register the console's routes and its command on ``app``."""
    app.register_blueprint(bp)

    @app.cli.command("create-operator")
    @click.argument("email")
    def create_operator(email: str) -> None:
        """Give the signed-up user EMAIL the operator role."""
        from . import service

        try:
            user = service.make_operator(email)
        except service.OperatorError as exc:
            raise click.ClickException(str(exc)) from None
        service.record_audit(None, "user.make_operator", "user", str(user.id), {"is_operator": False},
                             {"is_operator": True}, "create-operator command")
        click.echo(f"{user.email} is now an operator. Operators must turn on two-factor sign-in "
                   "where the portal offers it.")


__all__ = ["bp", "install"]
