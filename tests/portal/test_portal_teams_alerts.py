"""A team's low-balance alert reaches every owner and billing member, and nobody else."""

from __future__ import annotations

import uuid

from fixtures.portal import login
from test_portal_balance_alerts import P, SUBJECT, add_user, own_url, run_worker, sink, smtp_app  # noqa: F401


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
