"""Demo mode in the portal: the local mailbox, demo credit through the ledger, the first user an
operator (two-factor prompted, not required), the banner, and none of it outside demo mode."""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from fixtures.gateway import start_gateway
from fixtures.portal import DEFAULT_PASSWORD, login, portal_config

ONE_P = 1_000_000
BANNER = "data-demo-banner"
_MAILBOX_LINK = re.compile(r'<a href="(http://[^"]+/confirm/[^"]+)"')


@pytest.fixture(scope="module")
def demo_gateway(gateway_env, tmp_path_factory):
    """A gateway with a database of its own: the demo portals' user ids start again at 1."""
    database = tmp_path_factory.mktemp("demo-gateway") / "gateway.db"
    handle = start_gateway({**gateway_env, "GATEWAY_DATABASE_URL": f"sqlite:///{database}", "SAMALINK_DEMO": "1"})
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def demo_app(demo_gateway, tmp_path_factory):
    """A demo-mode portal on a database of its own (so its first user is known), for the whole module."""
    from flask_migrate import upgrade

    from portal import create_app
    from portal.extensions import db

    gateway = demo_gateway
    folder = tmp_path_factory.mktemp("demo-portal")
    app = create_app(portal_config(f"sqlite:///{folder / 'portal.db'}", gateway.internal_url, gateway.token,
                                   folder / "instance", public_url=gateway.url + "/v1", DEMO=True,
                                   DEMO_CREDIT_MICRO_P=1000 * ONE_P))
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _sign_up(app, email: str) -> None:
    response = app.test_client().post("/signup", data={"email": email, "password": DEFAULT_PASSWORD,
                                                       "confirm": DEFAULT_PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]


def _mailbox_link(client, email: str) -> str:
    html = client.get("/dev/mailbox").get_data(as_text=True)
    for article in html.split("<article")[1:]:
        if email in article and "Confirm your SAMALink e-mail address" in article:
            match = _MAILBOX_LINK.search(article)
            assert match, article
            return urlsplit(match.group(1)).path
    raise AssertionError(f"no confirmation for {email} in the mailbox")


def _user(app, email: str):
    from portal.extensions import db
    from portal.models import User

    with app.app_context():
        return db.session.scalar(sa.select(User).where(User.email == email))


def test_a_newcomer_confirms_through_the_mailbox_and_gets_demo_credit(demo_app, demo_gateway):
    gateway = demo_gateway
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    _sign_up(demo_app, email)
    client = demo_app.test_client()
    sent = client.get("/signup/sent").get_data(as_text=True)
    assert 'href="/dev/mailbox"' in sent and "local mailbox" in sent
    confirmed = client.get(_mailbox_link(client, email))
    assert confirmed.status_code == 303
    user = _user(demo_app, email)
    account = gateway.internal("GET", f"/accounts/{user.account_id}").json()
    assert account["balance_micro_p"] == 1000 * ONE_P
    [entry] = gateway.internal("GET", f"/accounts/{user.account_id}/ledger").json()["data"]
    assert (entry["kind"], entry["amount_micro_p"]) == ("adjustment", 1000 * ONE_P)
    assert "Demo credit" in entry["description"] and "not real money" in entry["description"]
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert BANNER in dashboard and "1,000" in dashboard


def test_the_demo_credit_is_granted_once_however_often_it_is_asked_for(demo_app, demo_gateway):
    gateway = demo_gateway
    from portal.demo import grant_demo_credit

    email = f"twice-{uuid.uuid4().hex[:8]}@example.com"
    _sign_up(demo_app, email)
    client = demo_app.test_client()
    client.get(_mailbox_link(client, email))
    user = _user(demo_app, email)
    with demo_app.app_context():
        grant_demo_credit(user.account_id, user)
    assert gateway.internal("GET", f"/accounts/{user.account_id}").json()["balance_micro_p"] == 1000 * ONE_P


def test_the_first_user_is_an_operator_let_in_without_two_factor_but_prompted(demo_app):
    from portal.extensions import db
    from portal.models import User

    for name in ("one", "two"):
        _sign_up(demo_app, f"{name}-{uuid.uuid4().hex[:8]}@example.com")
    with demo_app.app_context():
        users = db.session.scalars(sa.select(User).order_by(User.id)).all()
        first, later = users[0], users[-1]
        assert [user.is_operator for user in users] == [True] + [False] * (len(users) - 1)
        first_confirmed = first.email_confirmed_at is not None
    client = demo_app.test_client()
    if first_confirmed:
        login(client, first.email, DEFAULT_PASSWORD)
    else:
        client.get(_mailbox_link(client, first.email))
    console = client.get("/operator/customers")
    assert console.status_code == 200
    html = console.get_data(as_text=True)
    assert "data-two-factor-prompt" in html and 'href="/settings/2fa"' in html
    other = demo_app.test_client()
    other.get(_mailbox_link(other, later.email))
    assert other.get("/operator/customers").status_code == 403


def test_every_message_is_in_the_mailbox_with_its_links_clickable(demo_app):
    email = f"reset-{uuid.uuid4().hex[:8]}@example.com"
    _sign_up(demo_app, email)
    client = demo_app.test_client()
    client.get(_mailbox_link(client, email))
    demo_app.test_client().post("/reset", data={"email": email})
    html = demo_app.test_client().get("/dev/mailbox").get_data(as_text=True)
    assert re.search(r'<a href="http://[^"]+/reset/[^"]+" rel="noreferrer">', html)
    assert BANNER in html


@pytest.mark.parametrize("path", ["/pricing", "/login", "/signup", "/support", "/docs", "/dev/mailbox"])
def test_the_banner_is_on_every_page_in_demo_mode_only(demo_app, portal_app, path):
    assert BANNER in demo_app.test_client().get(path).get_data(as_text=True)
    if path != "/dev/mailbox":
        assert BANNER not in portal_app.test_client().get(path).get_data(as_text=True)


def test_outside_demo_mode_there_is_no_mailbox_no_credit_and_no_operator(portal_app, make_user, gateway):
    assert portal_app.test_client().get("/dev/mailbox").status_code == 404
    assert "/dev/mailbox" not in portal_app.test_client().get("/signup/sent").get_data(as_text=True)
    user = make_user()
    assert gateway.internal("GET", f"/accounts/{user.account_id}").json()["balance_micro_p"] == 0
    client = portal_app.test_client()
    login(client, user.email, user.password)
    assert client.get("/operator/customers").status_code == 403
