"""Money in a team: a top-up by a billing member credits the team's account, and the team's
payment history is the team's, apart from each member's own."""

from __future__ import annotations

import re

import pytest

from fixtures.portal import login


@pytest.fixture
def paying_app(portal_app, fake_stripe):
    portal_app.config.update(STRIPE_SECRET_KEY=fake_stripe.secret_key,
                             STRIPE_WEBHOOK_SECRET=fake_stripe.webhook_secret,
                             STRIPE_API_BASE=fake_stripe.base_url, PUBLIC_URL="")
    portal_app.extensions.pop("samalink_stripe_client", None)
    yield portal_app
    portal_app.extensions.pop("samalink_stripe_client", None)


def _signed_in(app, user):
    client = app.test_client()
    assert login(client, user.email, user.password).status_code == 303
    return client


def test_a_billing_members_top_up_credits_the_team(paying_app, fake_stripe, make_user, gateway):
    from portal.extensions import db
    from portal.teams.models import Membership, Team

    owner, payer = make_user(timezone="UTC"), make_user(timezone="UTC")
    owner_client = _signed_in(paying_app, owner)
    created = owner_client.post("/teams", data={"name": "Payers"})
    team_id = int(re.search(r"account=(\d+)", created.headers["Location"]).group(1))
    with paying_app.app_context():
        db.session.add(Membership(team_id=team_id, user_id=payer.id, role="billing"))
        db.session.commit()
        team_account = db.session.get(Team, team_id).account_id

    client = _signed_in(paying_app, payer)
    started = client.post(f"/billing/checkout?account={team_id}", data={"amount_usd": "20"})
    assert started.status_code == 303, started.get_data(as_text=True)[:1000]
    session_id = next(iter(fake_stripe.sessions))
    session = fake_stripe.sessions[session_id]
    assert session["success_url"].endswith(f"/billing/success?account={team_id}&session_id={{CHECKOUT_SESSION_ID}}")
    paid = fake_stripe.pay(session_id)
    body, headers = fake_stripe.signed(fake_stripe.event("checkout.session.completed", paid))
    assert client.post("/stripe/webhook", data=body, headers=headers).status_code == 200

    def balance(account_id):
        return gateway.internal("GET", f"/accounts/{account_id}").json()["balance_micro_p"]

    assert balance(team_account) == 20_000 * 10**6
    assert balance(payer.account_id) == 0
    # The team's payment history is the team's: the owner sees the payer's top-up there,
    # and nobody's personal history lists it.
    team_history = owner_client.get(f"/payments?account={team_id}").get_data(as_text=True)
    assert "$20.00" in team_history
    assert "$20.00" not in client.get("/payments").get_data(as_text=True)
    success = client.get(f"/billing/success?account={team_id}&session_id={session_id}").get_data(as_text=True)
    assert "20,000" in success


def test_a_team_statement_breaks_usage_down_by_member(portal_app, make_user, gateway):
    import csv
    import io
    import time
    import uuid

    import requests

    from portal.extensions import db
    from portal.teams.models import Membership, Team

    owner, developer = make_user(timezone="UTC"), make_user(timezone="UTC")
    owner_client = _signed_in(portal_app, owner)
    created = owner_client.post("/teams", data={"name": "Statements"})
    team_id = int(re.search(r"account=(\d+)", created.headers["Location"]).group(1))
    with portal_app.app_context():
        db.session.add(Membership(team_id=team_id, user_id=developer.id, role="developer"))
        db.session.commit()
        team_account = db.session.get(Team, team_id).account_id
    credit = gateway.internal("POST", f"/accounts/{team_account}/ledger", json={
        "kind": "credit", "amount_micro_p": 100 * 10**6, "idempotency_key": f"test-credit-{uuid.uuid4()}"})
    assert credit.status_code == 201
    for member, calls in ((owner, 1), (developer, 2)):
        key = gateway.create_key(team_account, name=f"key of {member.id}", member_id=str(member.id))["key"]
        for _ in range(calls):
            answer = requests.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                                   headers={"Authorization": f"Bearer {key}"},
                                   json={"model": "deepseek-v3.2", "max_tokens": 50,
                                         "messages": [{"role": "user", "content": "[[usage:100:10]] Hi"}]})
            assert answer.status_code == 200, answer.text
    month = time.strftime("%Y-%m", time.gmtime())
    deadline = time.monotonic() + 15
    # Charges are written in batches: wait for all three requests, not for the first row of each member.
    while sum(int(r["requests"]) for r in (rows := [r for r in csv.DictReader(io.StringIO(owner_client.get(
            f"/billing/statements/{month}.csv?account={team_id}").get_data(as_text=True)))
            if r["kind"] == "usage_member"])) < 3:
        assert time.monotonic() < deadline, "the usage was not charged"
        time.sleep(0.1)
    assert {r["member"]: r["requests"] for r in rows} == {owner.email: "1", developer.email: "2"}
    page = owner_client.get(f"/billing/statements/{month}?account={team_id}").get_data(as_text=True)
    assert "Usage by member" in page and developer.email in page
    # A personal statement has no member breakdown.
    personal = owner_client.get(f"/billing/statements/{month}").get_data(as_text=True)
    assert "Usage by member" not in personal
