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

    def member_rows():
        csv_text = owner_client.get(f"/billing/statements/{month}.csv?account={team_id}").get_data(as_text=True)
        return [r for r in csv.DictReader(io.StringIO(csv_text)) if r["kind"] == "usage_member"]

    # Charges are written in batches: wait for all three requests, not for the first row of each member.
    while sum(int(r["requests"]) for r in member_rows()) < 3:
        assert time.monotonic() < deadline, "the usage was not charged"
        time.sleep(0.1)
    rows = member_rows()
    assert {r["member"]: r["requests"] for r in rows} == {owner.email: "1", developer.email: "2"}
    page = owner_client.get(f"/billing/statements/{month}?account={team_id}").get_data(as_text=True)
    assert "Usage by member" in page and developer.email in page
    # A personal statement has no member breakdown.
    personal = owner_client.get(f"/billing/statements/{month}").get_data(as_text=True)
    assert "Usage by member" not in personal


def _team_with(app, owner, members: dict) -> tuple[int, str]:
    """A team created by ``owner`` through the page, with ``members`` ({user: role}) added; its id and account."""
    from portal.extensions import db
    from portal.teams.models import Membership, Team

    created = _signed_in(app, owner).post("/teams", data={"name": "Refilled"})
    team_id = int(re.search(r"account=(\d+)", created.headers["Location"]).group(1))
    with app.app_context():
        for user, role in members.items():
            db.session.add(Membership(team_id=team_id, user_id=user.id, role=role))
        db.session.commit()
        return team_id, db.session.get(Team, team_id).account_id


def _save_card_and_switch_on(app, fake_stripe, client, team_id: int) -> None:
    started = client.post(f"/billing/auto-top-up/card?account={team_id}")
    assert started.status_code == 303, started.get_data(as_text=True)[:500]
    session_id = started.headers["Location"].rsplit("/", 1)[1]
    assert fake_stripe.sessions[session_id]["success_url"].startswith(
        f"http://localhost/billing/auto-top-up/card/done?account={team_id}&session_id=")
    fake_stripe.complete_setup(session_id)
    back = client.get(f"/billing/auto-top-up/card/done?account={team_id}&session_id={session_id}")
    assert back.status_code == 303
    saved = client.post(f"/billing/auto-top-up?account={team_id}", data={
        "enabled": "y", "threshold_p": "5000", "amount_usd": "10", "monthly_max_usd": "50"})
    assert saved.status_code == 200 and "Auto top-up is on." in saved.get_data(as_text=True)


def _run_events(app, until) -> None:
    import time

    from portal.events import process_events

    deadline = time.monotonic() + 30
    while not until():
        assert time.monotonic() < deadline, "the event worker did not get there"
        with app.test_request_context():
            process_events()
        time.sleep(0.2)


def test_a_team_refills_itself_from_a_billing_members_card(paying_app, fake_stripe, make_user, gateway):
    from portal.billing.models import AutoTopUp

    owner, payer, developer = make_user(timezone="UTC"), make_user(timezone="UTC"), make_user(timezone="UTC")
    team_id, team_account = _team_with(paying_app, owner, {payer: "billing", developer: "developer"})

    def balance(account_id):
        return gateway.internal("GET", f"/accounts/{account_id}").json()["balance_micro_p"]

    # A developer may neither see nor change how the team pays.
    developer_client = _signed_in(paying_app, developer)
    assert developer_client.post(f"/billing/auto-top-up/card?account={team_id}").status_code == 403
    payer_client = _signed_in(paying_app, payer)
    _save_card_and_switch_on(paying_app, fake_stripe, payer_client, team_id)
    # The balance (0) is below the threshold already: the team's balance is refilled, once.
    _run_events(paying_app, lambda: balance(team_account) == 10_000 * 10**6)
    assert balance(payer.account_id) == 0
    [creation] = fake_stripe.payment_intent_creations()
    [intent] = fake_stripe.intents.values()
    assert creation["params"]["amount"] == "1000" and intent["metadata"]["account_id"] == team_account
    with paying_app.app_context():
        from portal.extensions import db

        row = db.session.get(AutoTopUp, team_account)
        assert row.saved_by == payer.id and row.in_flight_refill_id is None
    # The owner sees whose card it is; the payer's personal Billing has no card saved.
    team_page = _signed_in(paying_app, owner).get(f"/billing?account={team_id}").get_data(as_text=True)
    assert "data-card-saved" in team_page and payer.email in team_page
    assert "data-card-saved" not in payer_client.get("/billing").get_data(as_text=True)


def test_a_card_leaves_the_team_with_its_holder(paying_app, fake_stripe, make_user, gateway):
    import uuid

    from fixtures.portal import mail_log
    from portal.billing import refills
    from portal.billing.models import AutoTopUp

    owner, payer = make_user(timezone="UTC"), make_user(timezone="UTC")
    team_id, team_account = _team_with(paying_app, owner, {payer: "billing"})
    credit = gateway.internal("POST", f"/accounts/{team_account}/ledger", json={
        "kind": "credit", "amount_micro_p": 8_000 * 10**6, "idempotency_key": f"test-credit-{uuid.uuid4()}"})
    assert credit.status_code == 201
    _save_card_and_switch_on(paying_app, fake_stripe, _signed_in(paying_app, payer), team_id)
    owner_client = _signed_in(paying_app, owner)
    removed = owner_client.post(f"/team/members/{payer.id}/remove?account={team_id}")
    assert removed.status_code in (200, 303), removed.get_data(as_text=True)[:500]
    spent = gateway.internal("POST", f"/accounts/{team_account}/ledger", json={
        "kind": "debit", "amount_micro_p": 4_000 * 10**6, "idempotency_key": f"test-spend-{uuid.uuid4()}"})
    assert spent.status_code == 201

    def stopped():
        with paying_app.app_context():
            from portal.extensions import db

            return not db.session.get(AutoTopUp, team_account).enabled

    with mail_log():
        _run_events(paying_app, stopped)
    # Nothing was charged to the card of someone who no longer pays for the team.
    assert fake_stripe.payment_intent_creations() == []
    page = owner_client.get(f"/billing?account={team_id}").get_data(as_text=True)
    assert "data-auto-stopped" in page and "no longer pays for this account" in page
    # Switching it on again needs a card of someone who does.
    again = owner_client.post(f"/billing/auto-top-up?account={team_id}", data={
        "enabled": "y", "threshold_p": "5000", "amount_usd": "10", "monthly_max_usd": "50"})
    assert again.status_code == 422 and "save a card again" in again.get_data(as_text=True)
    with paying_app.app_context():
        from portal.extensions import db

        assert refills.card_holder_may_pay(db.session.get(AutoTopUp, team_account)) is False
