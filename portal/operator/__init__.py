"""The operator console: customers, support inbox, catalogue, traffic and health, with an audit log.

``install(app)`` registers the ``/operator`` blueprint and the ``create-operator`` and
``verify-ledger`` commands.
"""

from __future__ import annotations

import click
from flask import Flask

from .ledger_check import install as install_ledger_check
from .routes import bp


def install(app: Flask) -> None:
    """Register the console's routes and its command on ``app``."""
    app.register_blueprint(bp)
    install_ledger_check(app)

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

    @app.cli.command("verify-ledger")
    def verify_ledger() -> None:
        """Recompute every account's balance from its ledger and its usage from the request log.

        Exits 1 when any stored figure differs, 2 when the gateway cannot be asked.
        """
        from ..gateway_client import GatewayError, GatewayUnavailable, gateway

        try:
            report = gateway().verify_ledger()
        except (GatewayUnavailable, GatewayError) as exc:
            click.echo(f"The gateway could not check the ledger: {exc}", err=True)
            raise SystemExit(2) from None
        for line in ledger_report_lines(report):
            click.echo(line)
        if not report.get("ok"):
            raise SystemExit(1)


def ledger_report_lines(report: dict) -> list[str]:
    """The ledger check's outcome as lines of text, one per difference."""
    differences = report.get("differences") or []
    lines = [f"{d['account_id']}: {d['field']} is {d['stored']}, its entries say {d['recomputed']}"
             for d in differences]
    checked = report.get("accounts_checked", 0)
    if differences:
        lines.append(f"{len(differences)} difference(s) in {checked} accounts.")
    else:
        lines.append(f"The books add up: {checked} accounts checked, no difference.")
    return lines


__all__ = ["bp", "install", "ledger_report_lines"]
