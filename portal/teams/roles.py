"""Which team roles may use each page and action: one table, checked before every request.

Every endpoint of the app has a rule here (a test fails for one without). A rule says
which roles may reach the endpoint while a team is selected (``?account=<team id>``)
and whether the endpoint shows the selected account at all: pages that do not (sign-in,
the docs, the operator console, personal settings) are reached the same way by every
role, and links to them do not carry the team. With no team selected, the user acts on
their personal account and no rule applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import ADMIN, BILLING, DEVELOPER, OWNER, ROLES


@dataclass(frozen=True)
class Rule:
    """The roles allowed on one endpoint in a team, and whether it shows the selected account."""

    roles: frozenset[str]
    scoped: bool = True


EVERYONE = frozenset(ROLES)
KEYS = frozenset({OWNER, ADMIN, DEVELOPER})
MONEY = frozenset({OWNER, BILLING})
MANAGERS = frozenset({OWNER, ADMIN})
USAGE = frozenset({OWNER, ADMIN, DEVELOPER, BILLING})
OWNERS = frozenset({OWNER})

_PERSONAL = Rule(EVERYONE, scoped=False)

RULES: dict[str, Rule] = {
    # Pages that are the same whichever account is selected.
    "static": _PERSONAL,
    "auth.confirm_email": _PERSONAL,
    "auth.confirm_resend": _PERSONAL,
    "auth.login": _PERSONAL,
    "auth.logout": _PERSONAL,
    "auth.logout_everywhere": _PERSONAL,
    "auth.reset_password": _PERSONAL,
    "auth.reset_request": _PERSONAL,
    "auth.signup": _PERSONAL,
    "auth.signup_sent": _PERSONAL,
    "twofactor.disable": _PERSONAL,
    "twofactor.enable": _PERSONAL,
    "twofactor.second_step": _PERSONAL,
    "twofactor.setup": _PERSONAL,
    "account.change_password": _PERSONAL,
    "account.detect_timezone": _PERSONAL,
    "account.settings": _PERSONAL,
    "account.update_timezone": _PERSONAL,
    "demo.mailbox": _PERSONAL,
    "docs.api_docs": _PERSONAL,
    "docs.models": _PERSONAL,
    "docs.pricing": _PERSONAL,
    "support.support": _PERSONAL,
    "billing.webhook": _PERSONAL,
    "teams.invitation": _PERSONAL,
    # The operator console checks operators itself; teams play no part there.
    **{name: _PERSONAL for name in (
        "operator.account_status", "operator.adjust", "operator.audit", "operator.catalog",
        "operator.change_price", "operator.channels", "operator.customer", "operator.customers",
        "operator.delete_provider_key", "operator.health", "operator.index", "operator.margin_csv",
        "operator.recheck_ledger", "operator.revoke_key", "operator.set_provider_key", "operator.support",
        "operator.support_message", "operator.support_reply", "operator.support_state", "operator.switch_channel",
        "operator.switch_model", "operator.test_channel", "operator.traffic")},
    # The selected account's pages.
    "dashboard.index": Rule(EVERYONE),
    "dashboard.dashboard": Rule(EVERYONE),
    "docs.quickstart": Rule(EVERYONE),
    "keys.keys": Rule(KEYS),
    "keys.check_ips": Rule(KEYS),
    "keys.controls": Rule(KEYS),
    "keys.detail": Rule(KEYS),
    "keys.limits": Rule(KEYS),
    "keys.rename": Rule(KEYS),
    "keys.revoke": Rule(KEYS),
    "keys.row": Rule(KEYS),
    "usage.usage": Rule(USAGE),
    "requests_log.request_log": Rule(USAGE),
    "requests_log.export_csv": Rule(USAGE),
    "billing.billing": Rule(MONEY),
    "billing.alerts": Rule(MONEY),
    "billing.checkout": Rule(MONEY),
    "billing.success": Rule(MONEY),
    "billing.balance_fragment": Rule(MONEY),
    "billing.cancel": Rule(MONEY),
    "billing.payments": Rule(MONEY),
    "billing.statement_list": Rule(MONEY),
    "billing.statement_page": Rule(MONEY),
    "billing.statement_csv": Rule(MONEY),
    "billing.auto_top_up": Rule(MONEY),
    "billing.save_card": Rule(MONEY),
    "billing.card_saved": Rule(MONEY),
    # Teams themselves.
    "teams.index": Rule(EVERYONE),
    "teams.members": Rule(EVERYONE),
    "teams.invite": Rule(MANAGERS),
    "teams.revoke_invitation": Rule(MANAGERS),
    "teams.change_role": Rule(MANAGERS),
    "teams.remove_member": Rule(MANAGERS),
    "teams.member_budget": Rule(MANAGERS),
    "teams.leave": Rule(frozenset({ADMIN, DEVELOPER, BILLING})),
    "teams.transfer": Rule(OWNERS),
    "teams.delete": Rule(OWNERS),
}


def rule_for(endpoint: str | None) -> Rule | None:
    """The endpoint's rule, or None for an endpoint without one (refused in a team)."""
    return RULES.get(endpoint or "")


def allows(endpoint: str | None, role: str) -> bool:
    """True when ``role`` may use ``endpoint`` while a team is selected."""
    rule = rule_for(endpoint)
    return rule is not None and role in rule.roles


def sees_all_keys(role: str | None) -> bool:
    """True for a role that sees and manages every key of the account (not only its own)."""
    return role in (None, OWNER, ADMIN)


def filters_by_member(role: str | None) -> bool:
    """True for a team role that may narrow usage and the request log to one member."""
    return role in (OWNER, ADMIN)


def sees_all_usage(role: str | None) -> bool:
    """True for a role whose usage and request log cover every key, not only its own."""
    return role in (None, OWNER, ADMIN, BILLING)
