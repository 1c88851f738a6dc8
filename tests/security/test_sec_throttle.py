"""Login throttling: at most 100 failed guesses an hour per account, fewer per address,
and no way for a stranger to keep the owner out for long.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from fixtures.portal import mail_log

START = datetime(2026, 11, 25, 6, 0, tzinfo=timezone.utc)


def _attempt(app, email: str, password: str, address: str, client=None):
    client = client or app.test_client()
    return client.post("/login", data={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address})


# 180 sign-in attempts, each written and counted in the database: slow on a busy machine.
@pytest.mark.timeout(300)
def test_guesses_from_many_addresses_stop_at_100_an_hour_but_not_for_the_owners_device(portal_app, user):
    with time_machine.travel(START, tick=False) as clock:
        owner = portal_app.test_client()
        assert _attempt(portal_app, user.email, user.password, "198.51.100.7", owner).status_code == 303
        owner.post("/logout")
        checked = 0
        for minute in range(60):  # a botnet: a new address every attempt, three attempts a minute
            for n in range(3):
                answer = _attempt(portal_app, user.email, f"guess {minute}-{n}", f"10.{minute}.{n}.1")
                assert answer.status_code in (422, 429)
                checked += answer.status_code == 422
            clock.shift(timedelta(minutes=1))
        assert checked == 100
        # Even the right password from a new device waits now ...
        stranger = _attempt(portal_app, user.email, user.password, "203.0.113.9")
        assert stranger.status_code == 429
        # ... but the owner's browser, which signed in before, is let in at once.
        assert _attempt(portal_app, user.email, user.password, "198.51.100.7", owner).status_code == 303
        owner.post("/logout")
        # And the ceiling lifts as the oldest failures age past the hour.
        clock.shift(timedelta(minutes=1))
        assert _attempt(portal_app, user.email, user.password, "203.0.113.9").status_code == 303


def test_one_address_is_slowed_after_20_failures_across_accounts(portal_app, make_user):
    victims = [make_user() for _ in range(21)]
    with time_machine.travel(START, tick=False):
        for victim in victims[:20]:
            assert _attempt(portal_app, victim.email, "wrong guess", "192.0.2.50").status_code == 422
        blocked = _attempt(portal_app, victims[20].email, victims[20].password, "192.0.2.50")
        assert blocked.status_code == 429
        # Other addresses are not affected.
        assert _attempt(portal_app, victims[20].email, victims[20].password, "192.0.2.51").status_code == 303


def test_failures_from_one_address_do_not_delay_the_owner_elsewhere(portal_app, user):
    with time_machine.travel(START, tick=False):
        for _ in range(12):
            _attempt(portal_app, user.email, "attacker guess", "192.0.2.66")
        assert _attempt(portal_app, user.email, "attacker guess", "192.0.2.66").status_code == 429
        assert _attempt(portal_app, user.email, user.password, "198.51.100.20").status_code == 303


def test_a_password_reset_clears_the_accounts_failures(portal_app, user):
    from portal.auth.reset import SUBJECT as RESET_SUBJECT
    from portal.extensions import db
    from portal.models import LoginAttempt

    with time_machine.travel(START, tick=False):
        with portal_app.app_context():  # a hundred failures from a hundred addresses
            db.session.add_all(LoginAttempt(email=user.email, ip=f"10.9.{n}.1") for n in range(100))
            db.session.commit()
        assert _attempt(portal_app, user.email, user.password, "203.0.113.10").status_code == 429
        client = portal_app.test_client()
        with mail_log() as mail:
            client.post("/reset", data={"email": user.email})
        link = mail.link(user.email, "reset", RESET_SUBJECT)
        assert client.post(link, data={"password": "a new long passphrase", "confirm": "a new long passphrase"}
                           ).status_code == 303
        assert _attempt(portal_app, user.email, "a new long passphrase", "203.0.113.10").status_code == 303
