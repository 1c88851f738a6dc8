"""Which account a page shows: the signed-in user's own, or a team's named in the URL.

``?account=<team id>`` selects a team; every ``url_for`` link of an account page carries
it while a team is selected (``install`` adds it), as do the redirects the portal
answers with, so the address says which account is shown and can be shared with the
team. Someone who is not a member of the team in the URL gets a 404, as if it did not
exist; a member whose role may not use the page gets a 403 (see ``roles``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from flask import Flask, abort, g, request
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from portal.accounts import ensure_account
from portal.extensions import db
from portal.htmx import render
from portal.models import User

from . import roles
from .models import ROLE_LABELS, Membership, Team
from .service import ensure_team_account

PARAM = "account"
# Row ids are 32-bit integers on PostgreSQL: a larger number names no row, and must not reach a query.
MAX_ID = 2**31 - 1


def id_from(raw: str | None) -> int | None:
    """A row id typed in a URL, or None when it cannot be one."""
    if not raw or not raw.isdigit() or len(raw) > 10 or int(raw) > MAX_ID:
        return None
    return int(raw)


@dataclass
class Selection:
    """The account a request acts on: the team (None for the personal account) and the user's role in it."""

    team: Team | None = None
    role: str | None = None
    _account_id: str | None = field(default=None, repr=False)

    @property
    def account_id(self) -> str:
        """The gateway account id, creating the account on first use. Raises ``GatewayUnavailable``."""
        if self._account_id is None:
            if self.team is None:
                self._account_id = ensure_account(current_user)
            else:
                self._account_id = ensure_team_account(self.team)
        return self._account_id

    @property
    def member_filter(self) -> str | None:
        """The ``member_id`` the gateway lists keys by for this role: only a developer's own keys."""
        if self.team is None or roles.sees_all_keys(self.role):
            return None
        return str(current_user.id)

    @property
    def usage_member(self) -> str | None:
        """The ``member_id`` usage and the request log are limited to: a developer's own keys,
        or the member an owner or admin picked (``?member=<user id>``, 404 for a non-member)."""
        if self.team is None:
            return None
        if not roles.sees_all_usage(self.role):
            return str(current_user.id)
        raw = request.args.get("member") or ""
        if not raw or not roles.filters_by_member(self.role):
            return None
        member = id_from(raw)
        if member is None or membership(self.team.id, member) is None:
            abort(404)
        return str(member)

    def member_choices(self) -> list[tuple[str, str]]:
        """The members an owner or admin may filter usage and the log by, as (user id, e-mail)."""
        if self.team is None or not roles.filters_by_member(self.role):
            return []
        rows = db.session.execute(sa.select(User.id, User.email).join(Membership, Membership.user_id == User.id)
                                  .where(Membership.team_id == self.team.id).order_by(User.email)).all()
        return [(str(user_id), email) for user_id, email in rows]

    @property
    def key_owner(self) -> str | None:
        """The ``member_id`` a key created now belongs to (the creator, in a team)."""
        return str(current_user.id) if self.team is not None else None


def _team_param() -> int | None:
    raw = request.args.get(PARAM)
    if raw is None:
        return None
    team_id = id_from(raw)
    if team_id is None:
        abort(404)
    return team_id


def membership(team_id: int, user_id: int) -> tuple[Team, Membership] | None:
    """The live team and the user's membership in it, or None."""
    row = db.session.execute(
        sa.select(Team, Membership).join(Membership, Membership.team_id == Team.id)
        .where(Team.id == team_id, Team.deleted_at.is_(None), Membership.user_id == user_id)
    ).first()
    return (row[0], row[1]) if row else None


def selected_account() -> Selection:
    """The selected account of this request (cached): personal, or a team the user is in.

    Aborts with 404 when the URL names a team the signed-in user is not a member of.
    """
    if "team_selection" in g:
        return g.team_selection
    # The error page drawn for a refused selection shows the personal account.
    g.team_selection = Selection()
    team_id = _team_param() if current_user.is_authenticated else None
    if team_id is not None:
        found = membership(team_id, current_user.id)
        if found is None:
            abort(404)
        g.team_selection = Selection(team=found[0], role=found[1].role)
    return g.team_selection


def selected_team() -> Selection:
    """The selection, which must be a team (404 on the personal account)."""
    selection = selected_account()
    if selection.team is None:
        abort(404)
    return selection


def with_account(url: str) -> str:
    """``url`` with the selected team added, when it is a local link to an account page."""
    selection = g.get("team_selection")
    if selection is None or selection.team is None or not url.startswith("/") or url.startswith("//"):
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == PARAM for name, _ in query) or not _scoped_path(parts.path):
        return url
    query.append((PARAM, str(selection.team.id)))
    return urlunsplit(("", "", parts.path, urlencode(query), parts.fragment))


def _endpoint_of(path: str) -> str | None:
    from flask import current_app

    adapter = current_app.url_map.bind("localhost")
    for method in ("GET", "POST"):
        try:
            return adapter.match(path, method=method)[0]
        except HTTPException:
            continue
    return None


def _scoped_path(path: str) -> bool:
    rule = roles.rule_for(_endpoint_of(path))
    return rule is not None and rule.scoped


def role_may_open(path: str) -> bool:
    """Whether the selected role may open the page at ``path`` (always, on the personal account)."""
    selection = g.get("team_selection")
    if selection is None or selection.team is None:
        return True
    rule = roles.rule_for(_endpoint_of(path))
    return rule is not None and (not rule.scoped or selection.role in rule.roles)


def _refused(selection: Selection):
    label = ROLE_LABELS.get(selection.role, selection.role)
    return render("errors/error.html", status=403, title="Not for your role",
                  message=f"Your role in {selection.team.name} ({label}) does not include this page. "
                          "Ask an owner or admin of the team if you need it.")


def _check_role():
    """Before every request: resolve the selected team and refuse what the member's role may not use."""
    if request.url_rule is None:
        # No such page (or method): the 404 or 405 answers, whoever asks.
        return None
    rule = roles.rule_for(request.endpoint)
    if rule is not None and not rule.scoped:
        return None
    if not current_user.is_authenticated or request.args.get(PARAM) is None:
        return None
    selection = selected_account()
    if rule is None or selection.role not in rule.roles:
        return _refused(selection)
    return None


def _add_account(endpoint: str, values: dict) -> None:
    selection = g.get("team_selection")
    if selection is None or selection.team is None or PARAM in values:
        return
    rule = roles.rule_for(endpoint)
    if rule is not None and rule.scoped:
        values[PARAM] = selection.team.id


def _keep_account_on_redirect(response):
    for header in ("Location", "HX-Redirect"):
        target = response.headers.get(header)
        if target:
            response.headers[header] = with_account(target)
    return response


def _frame_context() -> dict:
    selection = g.get("team_selection")
    team = selection.team if selection is not None else None
    query = f"{PARAM}={team.id}" if team is not None else ""
    return {
        "selection": selection or Selection(),
        "acct_q": f"?{query}" if query else "",
        "acct_amp": f"&{query}" if query else "",
        "team_choices": _team_choices,
        "with_account": with_account,
        "role_may_open": role_may_open,
    }


def _team_choices() -> list[tuple[Team, str]]:
    """The signed-in user's teams and roles, for the switcher in the top bar."""
    if not current_user.is_authenticated:
        return []
    rows = db.session.execute(
        sa.select(Team, Membership.role).join(Membership, Membership.team_id == Team.id)
        .where(Membership.user_id == current_user.id, Team.deleted_at.is_(None)).order_by(Team.name, Team.id)
    ).all()
    return [(team, role) for team, role in rows]


def install(app: Flask) -> None:
    """Resolve the selection and check the role before each request, and keep the team in links."""
    app.before_request(_check_role)
    app.url_defaults(_add_account)
    app.after_request(_keep_account_on_redirect)
    app.context_processor(_frame_context)


__all__ = ["PARAM", "Selection", "selected_account", "selected_team", "with_account", "membership", "install"]
