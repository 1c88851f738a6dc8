"""Disputes take back exactly what Stripe says is disputed, once, and give it back when won.

Every figure is checked in micro-P against the gateway's balance and its ledger entries
(keyed ``dispute:<id>`` and ``dispute-won:<id>``), after signed webhook deliveries from
the fake Stripe API in order, out of order and repeated.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.billing.models import MICRO_P_PER_CENT

MPC = MICRO_P_PER_CENT


def _paid(billing, buyer, cents):
    payment = billing.checkout(buyer, cents)
    billing.fake.pay(payment.stripe_session_id)
    assert billing.deliver("checkout.session.completed", billing.session(payment)).status_code == 200
    return payment


def _open(billing, payment, cents=None):
    """Open a dispute at Stripe; (its id, the ``charge.dispute.created`` event)."""
    dispute = billing.fake.dispute(payment.stripe_session_id, cents)
    return dispute["id"], billing.fake.event("charge.dispute.created", dispute)


def _close(billing, dispute_id, status):
    return billing.fake.event("charge.dispute.closed", billing.fake.set_dispute_status(dispute_id, status))


def _again(billing, event):
    """A redelivery of ``event`` under a fresh event id, as Stripe sends after a timeout."""
    return billing.post_event(dict(event, id=event["id"] + "_again"))


def _dispute_entries(billing, buyer):
    return {k: v for k, v in billing.entries(buyer).items() if k.startswith("dispute")}


def test_full_dispute_takes_back_the_whole_top_up(billing, user):
    payment = _paid(billing, user, 1000)
    dispute_id, created = _open(billing, payment)
    assert billing.post_event(created).status_code == 200
    assert billing.balance(user) == 0
    assert _dispute_entries(billing, user) == {f"dispute:{dispute_id}": -1000 * MPC}
    assert billing.payment(payment).status == "disputed"
    billing.ledger_agrees(user)


def test_partial_dispute_takes_back_only_the_disputed_amount(billing, user):
    payment = _paid(billing, user, 1000)
    dispute_id, created = _open(billing, payment, 300)
    assert billing.post_event(created).status_code == 200
    assert billing.balance(user) == 700 * MPC == 7_000_000_000
    assert _dispute_entries(billing, user) == {f"dispute:{dispute_id}": -300 * MPC}
    assert billing.payment(payment).status == "disputed"
    billing.ledger_agrees(user)


def test_second_partial_dispute_takes_only_its_own_amount(billing, user):
    payment = _paid(billing, user, 1000)
    first_id, first = _open(billing, payment, 300)
    second_id, second = _open(billing, payment, 200)
    billing.post_event(first)
    billing.post_event(second)
    _again(billing, first)
    _again(billing, second)
    assert billing.balance(user) == 500 * MPC
    assert _dispute_entries(billing, user) == {f"dispute:{first_id}": -300 * MPC,
                                              f"dispute:{second_id}": -200 * MPC}
    billing.ledger_agrees(user)


def test_won_dispute_gives_back_what_it_took_once(billing, user):
    payment = _paid(billing, user, 1000)
    dispute_id, created = _open(billing, payment, 300)
    billing.post_event(created)
    billing.post_event(billing.fake.event("charge.dispute.updated",
                                          billing.fake.set_dispute_status(dispute_id, "under_review")))
    assert billing.balance(user) == 700 * MPC
    closed = _close(billing, dispute_id, "won")
    assert billing.post_event(closed).status_code == 200
    _again(billing, closed)
    _again(billing, created)
    assert billing.balance(user) == 1000 * MPC
    assert _dispute_entries(billing, user) == {f"dispute:{dispute_id}": -300 * MPC,
                                              f"dispute-won:{dispute_id}": 300 * MPC}
    assert billing.payment(payment).status == "paid"
    billing.ledger_agrees(user)


def test_lost_dispute_keeps_what_it_took(billing, user):
    payment = _paid(billing, user, 1000)
    dispute_id, created = _open(billing, payment, 300)
    billing.post_event(created)
    closed = _close(billing, dispute_id, "lost")
    billing.post_event(closed)
    _again(billing, closed)
    assert billing.balance(user) == 700 * MPC
    assert _dispute_entries(billing, user) == {f"dispute:{dispute_id}": -300 * MPC}
    assert billing.payment(payment).status == "disputed"
    billing.ledger_agrees(user)


def test_won_dispute_delivered_before_its_creation_moves_nothing(billing, user):
    payment = _paid(billing, user, 1000)
    dispute_id, created = _open(billing, payment, 400)
    closed = _close(billing, dispute_id, "won")
    billing.post_event(closed)
    billing.post_event(created)
    assert billing.balance(user) == 1000 * MPC
    assert _dispute_entries(billing, user) == {}
    assert billing.payment(payment).status == "paid"
    billing.ledger_agrees(user)


def test_one_dispute_won_and_another_lost(billing, user):
    payment = _paid(billing, user, 2000)
    won_id, won_created = _open(billing, payment, 500)
    lost_id, lost_created = _open(billing, payment, 700)
    billing.post_event(lost_created)
    billing.post_event(won_created)
    billing.post_event(_close(billing, won_id, "won"))
    assert billing.payment(payment).status == "disputed"  # the other one is still open
    billing.post_event(_close(billing, lost_id, "lost"))
    assert billing.balance(user) == 1300 * MPC
    assert billing.payment(payment).status == "disputed"
    billing.ledger_agrees(user)


def test_refund_of_the_undisputed_part_after_a_partial_dispute(billing, user):
    payment = _paid(billing, user, 1000)
    _, created = _open(billing, payment, 300)
    billing.post_event(created)
    billing.deliver("charge.refunded", billing.fake.refund(payment.stripe_session_id, 700))
    assert billing.balance(user) == 0
    assert billing.entries(user)[f"refund:{billing.fake.charge_for(payment.stripe_session_id)['id']}:700"] == -700 * MPC
    billing.ledger_agrees(user)


def test_dispute_after_a_refund_takes_at_most_what_is_left(billing, user):
    payment = _paid(billing, user, 1000)
    billing.deliver("charge.refunded", billing.fake.refund(payment.stripe_session_id, 400))
    dispute_id, created = _open(billing, payment, 800)
    billing.post_event(created)
    assert billing.balance(user) == 0
    assert _dispute_entries(billing, user) == {f"dispute:{dispute_id}": -600 * MPC}
    billing.post_event(_close(billing, dispute_id, "won"))
    assert billing.balance(user) == 600 * MPC
    billing.ledger_agrees(user)


def test_dispute_in_another_currency_is_refused_and_takes_nothing(billing, user):
    payment = _paid(billing, user, 1000)
    dispute_id, created = _open(billing, payment, 300)
    billing.fake.disputes[dispute_id]["currency"] = "eur"
    assert billing.post_event(created).status_code == 422
    assert billing.balance(user) == 1000 * MPC
    assert _dispute_entries(billing, user) == {}


@st.composite
def dispute_stories(draw):
    """A charge, disputes and a refund that together stay within it, in a drawn order."""
    charge = draw(st.integers(500, 5000))
    left = charge
    disputes = []
    for _ in range(draw(st.integers(1, 3))):
        if left < 1:
            break
        amount = draw(st.integers(1, left))
        left -= amount
        disputes.append((amount, draw(st.sampled_from(["open", "won", "lost"]))))
    refund = draw(st.integers(0, left))
    actions = [("open", i) for i in range(len(disputes))] + ([("refund", refund)] if refund else [])
    actions = draw(st.permutations(actions))
    closes = draw(st.permutations([("close", i) for i, (_, end) in enumerate(disputes) if end != "open"]))
    steps = actions + closes
    # For each step: deliver its event at once, or hold it back to deliver late.
    held = draw(st.lists(st.booleans(), min_size=len(steps), max_size=len(steps)))
    late_order = draw(st.randoms(use_true_random=False))
    return charge, disputes, refund, steps, held, late_order


@settings(max_examples=15, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(dispute_stories())
def test_any_order_of_dispute_and_refund_events_ends_at_stripes_figures(billing, story):
    charge, disputes, refund, steps, held, late_order = story
    buyer = billing.make_buyer()
    payment = _paid(billing, buyer, charge)
    ids: dict[int, str] = {}
    sent, late = [], []
    for (kind, arg), hold in zip(steps, held):
        if kind == "open":
            ids[arg], event = _open(billing, payment, disputes[arg][0])
        elif kind == "close":
            event = _close(billing, ids[arg], disputes[arg][1])
        else:
            event = billing.fake.event("charge.refunded", billing.fake.refund(payment.stripe_session_id, arg))
        (late if hold else sent).append(event)
        if not hold:
            assert billing.post_event(event).status_code == 200
    late_order.shuffle(late)
    for event in late:
        assert billing.post_event(event).status_code == 200
    for event in sent + late:
        assert _again(billing, event).status_code == 200

    kept = sum(amount for amount, end in disputes if end != "won")
    assert billing.balance(buyer) == (charge - refund - kept) * MPC
    entries = _dispute_entries(billing, buyer)
    for i, (amount, end) in enumerate(disputes):
        taken = entries.get(f"dispute:{ids[i]}", 0)
        assert taken in (0, -amount * MPC)
        assert entries.get(f"dispute-won:{ids[i]}", 0) == (-taken if end == "won" else 0)
    billing.ledger_agrees(buyer)
