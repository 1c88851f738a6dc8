"""Routes: /teams (yours, and a new one), /team (the selected team's members, invitations and
caps, and what its owner and admins do there) and /teams/invite/<token> (accepting)."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, g, request, url_for
from flask_login import current_user, login_required

from ..extensions import db
from ..gateway_client import gateway
from ..gateway_views import calling_gateway
from ..htmx import redirect_to, render
from ..keys.controls import PERIODS
from ..keys.forms import limit_text
from . import service
from .forms import CreateTeamForm, InviteForm, MemberBudgetForm
from .models import GRANTABLE, OWNER, ROLE_HINTS, ROLE_LABELS
from .selection import Selection, id_from, selected_account, selected_team
from .service import TeamError

bp = Blueprint("teams", __name__)
log = logging.getLogger(__name__)


@bp.route("/teams", methods=["GET", "POST"])
@login_required
def index():
    """The user's teams, and a form to start one (the creator owns it)."""
    form = CreateTeamForm()
    status = 200
    if form.validate_on_submit():
        try:
            team = service.create_team(current_user, form.name.data)
        except TeamError as exc:
            form.name.errors = [str(exc)]
            status = 422
        else:
            with calling_gateway() as call:
                service.ensure_team_account(team)
            if call.failed:
                flash("The team is created; its balance appears as soon as the usage service answers.", "warning")
            else:
                flash(f"Team “{team.name}” created. Invite its members below.", "success")
            return redirect_to(url_for("teams.members", account=team.id))
    elif form.errors:
        status = 422
    return render("teams/index.html", status=status, form=form, role_labels=ROLE_LABELS)


def _members_page(status: int = 200, invite_form: InviteForm | None = None, error: str | None = None):
    selection = selected_team()
    team = selection.team
    budgets: dict[str, dict] = {}
    if selection.role in (OWNER, "admin"):
        with calling_gateway() as call:
            budgets = {str(row.get("member_id")): dict(row, budget_text=limit_text(row.get("budget_micro_p")))
                       for row in gateway().member_budgets(selection.account_id)}
        if call.failed:
            budgets = {}
    return render("teams/members.html", status=status, team=team, role=selection.role,
                  members=service.members(team), invitations=service.open_invitations(team),
                  invite_form=invite_form or InviteForm(formdata=None), error=error, role_labels=ROLE_LABELS,
                  role_hints=ROLE_HINTS, grantable=GRANTABLE, budgets=budgets, periods=PERIODS)


@bp.get("/team")
@login_required
def members():
    """The selected team: members and roles, open invitations, caps, ownership."""
    return _members_page()


def _back(message: str, category: str = "success"):
    flash(message, category)
    return redirect_to(url_for("teams.members"))


@bp.post("/team/invitations")
@login_required
def invite():
    """Invite an address into the selected team; the link is e-mailed."""
    selection = selected_team()
    form = InviteForm()
    if not form.validate_on_submit():
        return _members_page(status=422, invite_form=form)
    try:
        invitation = service.invite(selection.team, current_user, form.email.data, form.role.data)
    except TeamError as exc:
        form.email.errors = [str(exc)]
        return _members_page(status=422, invite_form=form)
    return _back(f"Invitation sent to {invitation.email}. The link works once, for "
                 f"{service.INVITATION_DAYS} days.")


@bp.post("/team/invitations/<int(max=2147483647):invitation_id>/revoke")
@login_required
def revoke_invitation(invitation_id: int):
    """Void an open invitation; its link stops working."""
    try:
        invitation = service.revoke_invitation(selected_team().team, invitation_id)
    except TeamError:
        abort(404)
    return _back(f"The invitation to {invitation.email} is revoked; its link no longer works.")


@bp.post("/team/members/<int(max=2147483647):user_id>/role")
@login_required
def change_role(user_id: int):
    """Give a member another role."""
    selection = selected_team()
    try:
        service.change_role(selection.team, selection.role, user_id, request.form.get("role"))
    except TeamError as exc:
        return _members_page(status=422, error=str(exc))
    return _back("Role changed.")


@bp.post("/team/members/<int(max=2147483647):user_id>/remove")
@login_required
def remove_member(user_id: int):
    """Take a member out of the team; their keys in it stop working at once."""
    selection = selected_team()
    if user_id == current_user.id:
        return _members_page(status=422, error="To leave the team yourself, use “Leave team”.")
    try:
        with calling_gateway("The member is removed, but their keys could not be revoked because the usage "
                             "service is unavailable. Remove them again in a minute.") as call:
            revoked = 0
            revoked = service.remove_member(selection.team, selection.role, user_id)
    except TeamError as exc:
        return _members_page(status=422, error=str(exc))
    if call.failed:
        return _back(call.message, "warning")
    return _back(f"Member removed; {revoked} key{'' if revoked == 1 else 's'} of theirs revoked.")


@bp.post("/team/members/<int(max=2147483647):user_id>/budget")
@login_required
def member_budget(user_id: int):
    """Set or remove a member's spend cap per period (kept and enforced by the gateway)."""
    selection = selected_team()
    try:
        service._member(selection.team, user_id)
    except TeamError:
        abort(404)
    form = MemberBudgetForm()
    if not form.validate_on_submit():
        problems = [message for errors in form.errors.values() for message in errors]
        return _members_page(status=422, error=" ".join(str(p) for p in problems))
    budget, period = form.cap()
    with calling_gateway("The cap could not be saved because the usage service is unavailable. "
                         "Try again in a minute.", show_refusal=True) as call:
        gateway().set_member_budget(selection.account_id, str(user_id), budget, period)
    if call.failed:
        return _members_page(status=call.status, error=call.message)
    return _back("Spend cap saved." if budget is not None else "Spend cap removed.")


@bp.post("/team/leave")
@login_required
def leave():
    """Leave the selected team; your keys in it are revoked."""
    selection = selected_team()
    try:
        with calling_gateway() as call:
            service.leave(selection.team, current_user.id)
    except TeamError as exc:
        return _members_page(status=422, error=str(exc))
    if call.failed:
        log.warning("keys of user %s in team %s not revoked yet", current_user.id, selection.team.id)
    flash(f"You left {selection.team.name}.", "success")
    return _to_personal("/dashboard")


@bp.post("/team/transfer")
@login_required
def transfer():
    """Hand the team to another member; you stay as an admin."""
    selection = selected_team()
    raw = request.form.get("user_id") or ""
    try:
        new_owner = id_from(raw)
        if new_owner is None:
            raise TeamError("Choose the member who becomes the owner.")
        service.transfer(selection.team, current_user.id, new_owner)
    except TeamError as exc:
        return _members_page(status=422, error=str(exc))
    return _back("Ownership transferred; you are now an admin of the team.")


@bp.post("/team/delete")
@login_required
def delete():
    """Delete the team: every member leaves and every key of its account is revoked."""
    selection = selected_team()
    try:
        with calling_gateway("The team could not be deleted because the usage service is unavailable. "
                             "Try again in a minute.") as call:
            service.delete_team(selection.team, request.form.get("confirm_name"))
    except TeamError as exc:
        db.session.rollback()
        return _members_page(status=422, error=str(exc))
    if call.failed:
        db.session.rollback()
        return _members_page(status=503, error=call.message)
    flash(f"Team “{selection.team.name}” deleted.", "success")
    return _to_personal("/teams")


def _to_personal(path: str):
    """Redirect to a page of the personal account: the team is no longer the user's to show."""
    g.team_selection = Selection()
    return redirect_to(path)


def _invitation_gone():
    response = render("teams/invitation_invalid.html", status=410)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/teams/invite/<token>", methods=["GET", "POST"])
def invitation(token: str):
    """An invitation link: sign in or sign up first, then accept it."""
    found = service.read_invitation(token)
    if found is None:
        return _invitation_gone()
    invite_row, team = found
    here = url_for("teams.invitation", token=token)
    error = None
    status = 200
    if request.method == "POST" and current_user.is_authenticated:
        try:
            team = service.accept(token, current_user)
        except service.InvitationGone:
            # Another tab or click used it a moment ago.
            return _invitation_gone()
        except TeamError as exc:
            error, status = str(exc), 422
        else:
            flash(f"Welcome to {team.name}. You are a {ROLE_LABELS[invite_row.role].lower()} of the team.",
                  "success")
            return redirect_to(url_for("dashboard.dashboard", account=team.id))
    elif request.method == "POST":
        abort(401)
    response = render("teams/invitation.html", status=status, invitation=invite_row, team=team, here=here,
                      error=error, role_label=ROLE_LABELS[invite_row.role], role_hint=ROLE_HINTS[invite_row.role])
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


__all__ = ["bp", "selected_account"]
