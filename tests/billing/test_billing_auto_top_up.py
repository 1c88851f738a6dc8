"""Auto top-up: a card saved with Checkout in setup mode, charged off-session once per
balance crossing, credited once on payment_intent.succeeded, switched off by a decline,
and never past the monthly maximum — with several event workers and webhook deliveries at once."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.portal import mail_log
from portal.billing import refills
from portal.billing.models import REFILL_FAILED, REFILL_SUCCEEDED, AutoTopUp, Refill
from portal.events import process_events
from portal.extensions import db
from portal.models import User

P = 1_000_000
MID_MONTH = datetime(2026, 11, 15, 12, tzinfo=timezone.utc)


def save_card(billing, buyer, decline: str | None = None) -> AutoTopUp:
    with billing.app.test_request_context():
        user = db.session.get(User, buyer.id)
        url = refills.start_card_setup(user.account_id, user, "http://portal.test/done?session_id={CHECKOUT_SESSION_ID}",
                                       "http://portal.test/billing")
    session_id = url.rsplit("/", 1)[1]
    billing.fake.complete_setup(session_id, decline)
    with billing.app.app_context():
        row = refills.finish_card_setup(session_id)
        db.session.expunge(row)
        return row


def enable(billing, buyer, threshold_p: int, amount_cents: int, max_cents: int) -> None:
    with billing.app.test_request_context():
        refills.save_settings(buyer.account_id, True, threshold_p * P, amount_cents, max_cents)


def refills_of(billing, buyer) -> list[Refill]:
    with billing.app.app_context():
        rows = list(db.session.scalars(sa.select(Refill).where(Refill.account_id == buyer.account_id).order_by(Refill.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def settings_of(billing, buyer) -> AutoTopUp:
    with billing.app.app_context():
        row = db.session.get(AutoTopUp, buyer.account_id)
        db.session.expunge(row)
        return row


def run_events(app, until, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with app.test_request_context():
            process_events()
        if until():
            return
        assert time.monotonic() < deadline, "the event worker did not get there"
        time.sleep(0.2)


def spend(billing, buyer, micro_p: int) -> None:
    answer = billing.app.extensions["gateway_client"].post_ledger_entry(
        buyer.account_id, "debit", micro_p, f"test-spend-{time.monotonic_ns()}", "test spend")
    assert answer["entry"]["amount_micro_p"] == -micro_p


def test_saving_a_card_through_checkout_keeps_only_stripe_ids(billing, web, user, fake_stripe):
    answer = web.post("/billing/auto-top-up/card")
    assert answer.status_code == 303 and answer.headers["Location"].startswith(fake_stripe.base_url + "/pay/cs_")
    session_id = answer.headers["Location"].rsplit("/", 1)[1]
    assert fake_stripe.sessions[session_id]["mode"] == "setup"
    fake_stripe.complete_setup(session_id)
    back = web.get(f"/billing/auto-top-up/card/done?session_id={session_id}")
    assert back.status_code == 303
    row = settings_of(billing, user)
    assert row.stripe_customer_id.startswith("cus_") and row.stripe_payment_method_id.startswith("pm_")
    assert "data-card-saved" in web.get("/billing").get_data(as_text=True)
    # Someone else's setup session is not taken.
    other = billing.make_buyer()
    with billing.app.test_request_context():
        url = refills.start_card_setup(other.account_id, db.session.get(User, other.id), "http://portal.test/done",
                                       "http://portal.test/")
    fake_stripe.complete_setup(url.rsplit("/", 1)[1])
    assert web.get(f"/billing/auto-top-up/card/done?session_id={url.rsplit('/', 1)[1]}").status_code == 404


def test_a_crossing_charges_once_with_several_workers_and_credits_once(billing, fake_stripe):
    buyer = billing.make_buyer()
    save_card(billing, buyer)
    with time_machine.travel(MID_MONTH, tick=True):
        enable(billing, buyer, threshold_p=5_000, amount_cents=1_000, max_cents=10_000)  # balance 0: crossed
        barrier = threading.Barrier(4)

        def worker():
            barrier.wait()
            for _ in range(10):
                with billing.app.test_request_context():
                    process_events()
                time.sleep(0.15)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        run_events(billing.app, lambda: any(r.status == REFILL_SUCCEEDED for r in refills_of(billing, buyer)))
    [refill] = refills_of(billing, buyer)
    assert len({r["idempotency_key"] for r in fake_stripe.payment_intent_creations()}) == 1
    params = fake_stripe.payment_intent_creations()[0]["params"]
    assert params["off_session"] == "true" and params["confirm"] == "true" and params["amount"] == "1000"
    # Stripe's webhook, delivered twice at once, finds it credited already.
    intent = fake_stripe.intents[refill.payment_intent_id]
    outcomes = []
    deliveries = [threading.Thread(target=lambda: outcomes.append(
        billing.deliver("payment_intent.succeeded", intent).status_code)) for _ in range(2)]
    for thread in deliveries:
        thread.start()
    for thread in deliveries:
        thread.join()
    assert outcomes == [200, 200]
    assert billing.balance(buyer) == 10_000 * P
    assert billing.entries(buyer) == {f"refill:{refill.payment_intent_id}": 10_000 * P}
    assert settings_of(billing, buyer).in_flight_refill_id is None


def test_the_monthly_maximum_is_never_passed(billing, fake_stripe):
    buyer = billing.make_buyer()
    save_card(billing, buyer)
    with time_machine.travel(MID_MONTH, tick=True):
        enable(billing, buyer, threshold_p=5_000, amount_cents=1_000, max_cents=2_500)
        run_events(billing.app, lambda: len(refills_of(billing, buyer)) == 1 and billing.balance(buyer) == 10_000 * P)
        spend(billing, buyer, 6_000 * P)  # 4,000 P: the second crossing
        run_events(billing.app, lambda: billing.balance(buyer) == 14_000 * P)
        spend(billing, buyer, 10_000 * P)  # 4,000 P: a third refill would make $30 of $25
        time.sleep(1.5)
        run_events(billing.app, lambda: True)
        run_events(billing.app, lambda: True)
    assert [r.amount_cents for r in refills_of(billing, buyer)] == [1_000, 1_000]
    assert billing.balance(buyer) == 4_000 * P
    assert len(fake_stripe.payment_intent_creations()) == 2


def credit(billing, buyer, micro_p: int) -> None:
    billing.app.extensions["gateway_client"].post_ledger_entry(
        buyer.account_id, "credit", micro_p, f"test-credit-{time.monotonic_ns()}", "test credit")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


@pytest.mark.parametrize("zone, first, late_same_month, early_next_month", [
    # 22:00 and 23:30 on 30 November in Auckland, then 00:30 on 1 December there: still November in UTC.
    ("Pacific/Auckland", utc(2026, 11, 30, 9), utc(2026, 11, 30, 10, 30), utc(2026, 11, 30, 11, 30)),
    # Noon and 23:30 on 30 November in Los Angeles (already December in UTC), then 00:30 on 1 December there.
    ("America/Los_Angeles", utc(2026, 11, 30, 20), utc(2026, 12, 1, 7, 30), utc(2026, 12, 1, 8, 30)),
])
def test_the_monthly_maximum_counts_calendar_months_in_the_accounts_zone(
        billing, fake_stripe, zone, first, late_same_month, early_next_month):
    buyer = billing.make_buyer(timezone=zone)
    save_card(billing, buyer)
    with time_machine.travel(first, tick=True) as clock:
        # A maximum of one $10 refill a month; the balance of 0 is a crossing at once.
        enable(billing, buyer, threshold_p=5_000, amount_cents=1_000, max_cents=1_000)
        run_events(billing.app, lambda: billing.balance(buyer) == 10_000 * P)

        clock.move_to(late_same_month)
        spend(billing, buyer, 6_000 * P)  # 4,000 P: crossed, but November's refill is spent
        time.sleep(1.5)
        run_events(billing.app, lambda: True)
        run_events(billing.app, lambda: True)
        assert len(refills_of(billing, buyer)) == 1 and billing.balance(buyer) == 4_000 * P

        credit(billing, buyer, 2_000 * P)  # back to the threshold: watched again
        clock.move_to(early_next_month)
        spend(billing, buyer, 2_000 * P)  # 4,000 P on 1 December in the account's zone
        run_events(billing.app, lambda: billing.balance(buyer) == 14_000 * P)
    assert [(r.amount_cents, r.month) for r in refills_of(billing, buyer)] == [(1_000, "2026-11"), (1_000, "2026-12")]
    assert len(fake_stripe.payment_intent_creations()) == 2


@settings(max_examples=50, derandomize=True, deadline=None)
@given(when=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31)),
       zone=st.sampled_from(["UTC", "Pacific/Auckland", "America/Los_Angeles", "Australia/Lord_Howe",
                             "Asia/Kathmandu", "America/Santiago"]))
def test_every_instant_lies_in_the_month_its_zone_names(when, zone):
    start, end = refills.month_bounds(when, zone)
    assert start <= when < end
    assert refills.month_of(start, zone) == refills.month_of(when, zone) != refills.month_of(end, zone)
    assert refills.month_bounds(end, zone)[0] == end  # months follow each other without a gap


@pytest.mark.parametrize("code", ["card_declined", "authentication_required"])
def test_a_declined_card_switches_auto_top_up_off_and_mails(billing, fake_stripe, gateway, code):
    buyer = billing.make_buyer()
    save_card(billing, buyer, decline=code)
    with mail_log() as mail, time_machine.travel(MID_MONTH, tick=True):
        enable(billing, buyer, threshold_p=5_000, amount_cents=1_000, max_cents=10_000)
        run_events(billing.app, lambda: any(r.status == REFILL_FAILED for r in refills_of(billing, buyer)))
        assert (buyer.email, refills.DECLINED_SUBJECT) in [(to, subject) for to, subject, _ in mail.messages]
    [refill] = refills_of(billing, buyer)
    assert refill.failure_code == code
    row = settings_of(billing, buyer)
    assert row.enabled is False and code in row.stopped_reason and row.in_flight_refill_id is None
    assert billing.balance(buyer) == 0
    watched = gateway.internal("GET", f"/accounts/{buyer.account_id}").json()["thresholds"]["auto_top_up"]
    assert watched["threshold_micro_p"] is None


def test_switching_on_needs_a_saved_card_and_a_sensible_maximum(billing, web):
    fields = {"enabled": "y", "threshold_p": "5000", "amount_usd": "10", "monthly_max_usd": "50"}
    answer = web.post("/billing/auto-top-up", data=fields)
    assert answer.status_code == 422 and "Save a card first" in answer.get_data(as_text=True)
    answer = web.post("/billing/auto-top-up", data={**fields, "monthly_max_usd": "5"})
    assert answer.status_code == 422 and "at least the amount of one refill" in answer.get_data(as_text=True)
    answer = web.post("/billing/auto-top-up", data={**fields, "amount_usd": "1e9"})
    assert answer.status_code == 422


def test_a_refill_event_for_someone_elses_intent_is_not_ours(billing, fake_stripe):
    intent = {"id": "pi_test_unknown", "object": "payment_intent", "amount": 1000, "currency": "usd",
              "metadata": {"refill_id": "999999999"}, "status": "succeeded"}
    fake_stripe.intents[intent["id"]] = dict(intent)
    answer = billing.deliver("payment_intent.succeeded", intent)
    assert answer.status_code == 200 and answer.get_json()["outcome"] == "not ours"


def test_settings_and_refills_from_before_teams_move_to_their_account(tmp_path, gateway):
    from flask_migrate import downgrade, upgrade

    from fixtures.portal import portal_config
    from portal import create_app

    app = create_app(portal_config(f"sqlite:///{tmp_path / 'before.db'}", gateway.internal_url, gateway.token,
                                   tmp_path / "instance", public_url=gateway.url + "/v1"))
    when = datetime(2026, 11, 2, 3, 4, 5)
    with app.app_context():
        upgrade(revision="0011_teams")
        with db.engine.begin() as conn:
            for user_id, account in ((1, "acct-with-card"), (2, None)):
                conn.execute(sa.text(
                    "INSERT INTO users (id, email, password_hash, session_version, is_operator, created_at, account_id) "
                    "VALUES (:id, :email, 'x', 1, false, :when, :account)"),
                    {"id": user_id, "email": f"u{user_id}@example.com", "when": when, "account": account})
                conn.execute(sa.text(
                    "INSERT INTO auto_top_ups (user_id, enabled, threshold_micro_p, amount_cents, monthly_max_cents, "
                    "stripe_customer_id, stripe_payment_method_id, updated_at) "
                    "VALUES (:id, true, 5000000000, 1000, 5000, 'cus_1', 'pm_1', :when)"), {"id": user_id, "when": when})
            conn.execute(sa.text(
                "INSERT INTO refills (id, user_id, event_id, amount_cents, month, status, created_at, updated_at) "
                "VALUES (7, 1, 70, 1000, '2026-11', 'succeeded', :when, :when)"), {"when": when})
        upgrade()
        with db.engine.connect() as conn:
            settings_rows = conn.execute(sa.text(
                "SELECT account_id, saved_by, enabled, amount_cents, stripe_payment_method_id FROM auto_top_ups")).all()
            refill_rows = conn.execute(sa.text("SELECT id, account_id, amount_cents FROM refills")).all()
        # The card and its refill follow the account; a user who never had one never watched a balance.
        assert [tuple(r) for r in settings_rows] == [("acct-with-card", 1, True, 1000, "pm_1")]
        assert [tuple(r) for r in refill_rows] == [(7, "acct-with-card", 1000)]
        downgrade(revision="0011_teams")
        with db.engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(sa.text("SELECT user_id, amount_cents FROM auto_top_ups"))] == [(1, 1000)]
            assert [tuple(r) for r in conn.execute(sa.text("SELECT id, user_id FROM refills"))] == [(7, 1)]
        db.engine.dispose()
