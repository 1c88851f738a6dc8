"""Every route × every team role: the one table of rules in ``portal.teams.roles`` decides.

The cases come from the app's own URL map, so a route added without a rule fails here.
A role the rule leaves out gets the 403 page from any route, whatever the method, before
the view runs; a role it lets in reaches the page (GET routes are opened for real).
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from fixtures.portal import DEFAULT_PASSWORD, login, mail_log, portal_config, take_confirmation_link

ROLES = ("owner", "admin", "developer", "billing")
REFUSED = "Not for your role"
# Values for the routes' path arguments: anything well-formed enough to reach the view.
SAMPLES = {"key_id": "00000000-0000-4000-8000-000000000000", "month": "2020-01", "token": "not-a-token",
           "account_id": "no-such-account", "model_id": "no-such-model", "provider": "nobody",
           "message_id": 999_999, "user_id": 999_999, "invitation_id": 999_999, "filename": "css/app.css"}


def _url_map_endpoints() -> list[tuple[str, str, tuple[str, ...]]]:
    """(endpoint, path with sample arguments, methods) for every route of a freshly built app."""
    from portal import create_app
    from portal.config import TestingConfig

    app = create_app(TestingConfig(env={"DATABASE_URL": "sqlite://", "SECRET_KEY": "roles-" + "x" * 30,
                                         "INTERNAL_API_TOKEN": "t" * 40, "GATEWAY_URL": "http://127.0.0.1:9"},
                                    instance_dir=Path(tempfile.mkdtemp(prefix="roles-"))))
    adapter = app.url_map.bind("localhost")
    found = []
    for rule in app.url_map.iter_rules():
        values = {name: SAMPLES.get(name, "x") for name in rule.arguments}
        methods = tuple(sorted(rule.methods - {"HEAD", "OPTIONS"}))
        found.append((rule.endpoint, adapter.build(rule.endpoint, values), methods))
    return sorted(found)


ENDPOINTS = _url_map_endpoints()


@pytest.fixture(scope="module")
def roles_app(portal_database_url, gateway, tmp_path_factory):
    from portal import create_app
    from portal.extensions import db

    app = create_app(portal_config(portal_database_url, gateway.internal_url, gateway.token,
                                   tmp_path_factory.mktemp("roles-instance"), public_url=gateway.url + "/v1"))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def team_clients(roles_app):
    """A team with one member in each role, and a signed-in client for each: (team id, {role: client})."""
    from portal.extensions import db
    from portal.models import User
    from portal.teams.models import Membership

    clients, ids = {}, {}
    for role in ROLES:
        email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
        with mail_log() as mail:
            roles_app.test_client().post("/signup", data={"email": email, "password": DEFAULT_PASSWORD,
                                                         "confirm": DEFAULT_PASSWORD})
            link = take_confirmation_link(roles_app, mail, email)
        assert roles_app.test_client().get(link).status_code == 303
        client = roles_app.test_client()
        assert login(client, email).status_code == 303
        clients[role] = client
        with roles_app.app_context():
            ids[role] = db.session.scalar(sa.select(User.id).where(User.email == email))
    created = clients["owner"].post("/teams", data={"name": "Roles"})
    team_id = int(created.headers["Location"].rsplit("account=", 1)[1])
    with roles_app.app_context():
        for role in ROLES[1:]:
            db.session.add(Membership(team_id=team_id, user_id=ids[role], role=role))
        db.session.commit()
    return team_id, clients


def test_every_route_has_a_rule_and_every_rule_a_route():
    from portal.teams.roles import RULES

    endpoints = {endpoint for endpoint, _, _ in ENDPOINTS}
    assert sorted(endpoints - set(RULES)) == [], "routes without a team rule"
    assert sorted(set(RULES) - endpoints) == [], "rules for routes that do not exist"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint,path,methods", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_a_route_answers_each_role_as_its_rule_says(team_clients, endpoint, path, methods, role):
    from portal.teams.roles import rule_for

    rule = rule_for(endpoint)
    assert rule is not None, f"{endpoint} has no rule in portal.teams.roles.RULES"
    team_id, clients = team_clients
    client = clients[role]
    url = f"{path}{'&' if '?' in path else '?'}account={team_id}"
    if not rule.scoped or role in rule.roles:
        if "GET" not in methods:
            return
        response = client.get(url)
        assert not (response.status_code == 403 and REFUSED in response.get_data(as_text=True)), url
        return
    for method in methods:
        response = client.open(url, method=method, data={})
        assert response.status_code == 403, (method, url, response.status_code)
        assert REFUSED in response.get_data(as_text=True)


def test_the_refusal_names_the_team_and_the_role(team_clients):
    team_id, clients = team_clients
    page = clients["billing"].get(f"/keys?account={team_id}").get_data(as_text=True)
    assert "Your role in Roles (Billing) does not include this page" in page
