"""No account enumeration: sign-up, sign-in and reset answer alike for known and unknown addresses.

Alike by message and status, and by time: attempts for known and unknown addresses are
interleaved (so a busy machine slows both alike), and their medians differ by less than
half of one password verification, measured on this machine - skipping the hash for
unknown addresses would show a whole verification.
"""

from __future__ import annotations

import re
import statistics
import time
import uuid

import sqlalchemy as sa

from fixtures.portal import DEFAULT_PASSWORD, login, mail_log

ATTEMPTS = 9
_CSRF = re.compile(r"(csrf_token\" value=\"|X-CSRFToken\": \")[^\"]+")


def timing_bound() -> float:
    """Half the median time of one argon2 verification here."""
    from portal.auth.passwords import burn_verify_time

    samples = []
    for _ in range(5):
        started = time.perf_counter()
        burn_verify_time()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) / 2


def _forget_failures(app) -> None:
    from portal.extensions import db
    from portal.models import LoginAttempt

    with app.app_context():
        db.session.execute(sa.delete(LoginAttempt))
        db.session.commit()


def _interleaved_medians(first, second) -> tuple[float, float]:
    """Median seconds of ``first()`` and of ``second()``, run alternately ATTEMPTS times each."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(ATTEMPTS):
        for call, out in ((first, samples[0]), (second, samples[1])):
            started = time.perf_counter()
            call()
            out.append(time.perf_counter() - started)
    return statistics.median(samples[0]), statistics.median(samples[1])


def _body_without(response, *texts: str) -> str:
    body = _CSRF.sub("", response.get_data(as_text=True))
    for text in texts:
        body = body.replace(text, "")
    return body


def test_sign_in_answers_alike_by_message_status_and_time(portal_app, make_user):
    users = [make_user() for _ in range(ATTEMPTS + 1)]
    client = portal_app.test_client()
    known = login(client, users[0].email, "a wrong password here")
    unknown = login(client, "nobody-" + users[0].email, "a wrong password here")
    assert known.status_code == unknown.status_code == 422
    assert _body_without(known, users[0].email) == _body_without(unknown, "nobody-" + users[0].email)

    known_emails = iter(u.email for u in users[1:])
    unknown_emails = iter(f"missing-{uuid.uuid4().hex[:10]}@example.com" for _ in range(ATTEMPTS))

    def attempt(emails):
        def call():
            response = login(portal_app.test_client(), next(emails), "a wrong password here")
            assert response.status_code == 422
            _forget_failures(portal_app)
        return call

    login(portal_app.test_client(), "warm-up@example.com", "a wrong password here")
    known_time, unknown_time = _interleaved_medians(attempt(known_emails), attempt(unknown_emails))
    assert abs(known_time - unknown_time) < timing_bound(), (known_time, unknown_time)


def test_sign_up_with_a_taken_address_answers_like_a_new_one(portal_app, make_user):
    taken = make_user()
    new_email = f"fresh-{uuid.uuid4().hex[:10]}@example.com"
    data = {"password": "another long passphrase 9", "confirm": "another long passphrase 9"}
    with mail_log() as mail:
        for_taken = portal_app.test_client().post("/signup", data={"email": taken.email, **data})
        for_new = portal_app.test_client().post("/signup", data={"email": new_email, **data})
    assert for_taken.status_code == for_new.status_code == 303
    assert for_taken.headers["Location"] == for_new.headers["Location"] == "/signup/sent"
    assert for_taken.get_data() == for_new.get_data()
    # The owner hears about it; the existing account and its password are untouched.
    assert (taken.email, "Sign-up attempt with your SAMALink address") in [(to, subject) for to, subject, _ in mail.messages]
    assert login(portal_app.test_client(), taken.email, taken.password).status_code == 303
    assert login(portal_app.test_client(), taken.email, data["password"]).status_code == 422


def test_sign_up_takes_as_long_for_a_taken_address(portal_app, make_user):
    taken = [make_user() for _ in range(ATTEMPTS)]
    taken_emails = iter(u.email for u in taken)
    new_emails = iter(f"timing-{uuid.uuid4().hex[:10]}@example.com" for _ in range(ATTEMPTS))

    def attempt(emails):
        def call():
            answer = portal_app.test_client().post("/signup", data={
                "email": next(emails), "password": DEFAULT_PASSWORD, "confirm": DEFAULT_PASSWORD})
            assert answer.status_code == 303
        return call

    taken_time, new_time = _interleaved_medians(attempt(taken_emails), attempt(new_emails))
    assert abs(taken_time - new_time) < timing_bound(), (taken_time, new_time)


def test_password_reset_answers_alike_by_message_status_and_time(portal_app, make_user):
    users = [make_user() for _ in range(ATTEMPTS)]
    known_emails = iter(u.email for u in users)
    unknown_emails = iter(f"nobody-{uuid.uuid4().hex[:10]}@example.com" for _ in range(ATTEMPTS))
    bodies = {}

    def attempt(emails, label):
        def call():
            email = next(emails)
            answer = portal_app.test_client().post("/reset", data={"email": email})
            assert answer.status_code == 200
            bodies[label] = _body_without(answer, email)
        return call

    known_time, unknown_time = _interleaved_medians(attempt(known_emails, "known"), attempt(unknown_emails, "unknown"))
    assert bodies["known"] == bodies["unknown"]
    assert abs(known_time - unknown_time) < timing_bound(), (known_time, unknown_time)
