"""A team's alerts reach every owner and billing member, and nobody else; a member's spend cap
alert reaches the member too."""

from __future__ import annotations

import uuid

from fixtures.portal import login, mail_log
from test_portal_balance_alerts import P, SUBJECT, add_user, own_url, run_worker, sink, smtp_app  # noqa: F401
from test_portal_teams import _add_member, _create_team, _signed_in, _team_account


def test_a_team_alert_is_mailed_to_its_owners_and_billing_members(own_url, gateway, tmp_path, sink):
    from portal.extensions import db
    from portal.teams.models import Membership, Team

    account_id = gateway.create_account(1000 * P)
    app = smtp_app(own_url, gateway, tmp_path, sink.port)
    emails = {role: add_user(app, None) for role in ("owner", "admin", "developer", "billing")}
    with app.app_context():
        from portal.models import User

        team = Team(name="Alerted", account_id=account_id)
        db.session.add(team)
        db.session.flush()
        for role, email in emails.items():
            user = db.session.query(User).filter_by(email=email).one()
            db.session.add(Membership(team_id=team.id, user_id=user.id, role=role))
        db.session.commit()
        team_id = team.id
    client = app.test_client()
    assert login(client, emails["billing"]).status_code == 303
    saved = client.post(f"/billing/alerts?account={team_id}", data={"low_balance_threshold_p": "500"})
    assert saved.status_code == 200 and "data-alert-saved" in saved.get_data(as_text=True)
    gateway.internal("POST", f"/accounts/{account_id}/ledger", json={
        "kind": "debit", "amount_micro_p": 600 * P, "idempotency_key": f"spend-{uuid.uuid4()}"})

    def mailed_to(email):
        return [content for to, content in sink.received if to == [email] and SUBJECT in content]

    run_worker(app, lambda: mailed_to(emails["owner"]) and mailed_to(emails["billing"]))
    assert not mailed_to(emails["admin"]) and not mailed_to(emails["developer"])
    assert "data-low-balance" in client.get(f"/dashboard?account={team_id}").get_data(as_text=True)


def test_a_members_spend_cap_alert_reaches_the_member_and_the_teams_owners_and_billing(portal_app, make_user):
    from portal.extensions import db
    from portal.keys.budget_alerts import mail_budget_alert

    owner, developer, billing, admin = (make_user(timezone=tz) for tz in
                                        ("UTC", "Pacific/Auckland", "UTC", "UTC"))
    team_id = _create_team(_signed_in(portal_app, owner), "Night Shift")
    _add_member(portal_app, team_id, developer, "developer")
    _add_member(portal_app, team_id, billing, "billing")
    _add_member(portal_app, team_id, admin, "admin")
    event = {"kind": "budget_80", "account_id": _team_account(portal_app, team_id), "subject_kind": "member",
             "subject_id": str(developer.id), "budget_micro_p": 10_000_000, "spent_micro_p": 8_000_000,
             "resets_at": "2026-12-01T00:00:00Z"}
    with portal_app.test_request_context(), mail_log() as mail:
        mail_budget_alert(event)
        db.session.commit()
    sent = {to: (subject, body) for to, subject, body in mail.messages}
    assert set(sent) == {owner.email, developer.email, billing.email}  # admins are not mailed about money
    subject, body = sent[developer.email]
    assert subject == f'The spend cap of {developer.email} in "Night Shift" has used 80% of its budget'
    assert "8.00 P spent of 10.00 P (80% reached)" in body
    assert "resets on Tue 1 Dec 2026, 13:00 (Pacific/Auckland)" in body  # in the reader's own zone
    assert f"/team?account={team_id}" in body
