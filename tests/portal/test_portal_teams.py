"""Teams: a shared account picked in the URL, members in roles, and e-mailed invitations."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
import time_machine

from fixtures.portal import DEFAULT_PASSWORD, login, mail_log

INVITE_SUBJECT = "You are invited to a team on SAMALink"


def _signed_in(app, user):
    client = app.test_client()
    assert login(client, user.email, user.password).status_code == 303
    return client


def _create_team(client, name="Acme") -> int:
    response = client.post("/teams", data={"name": name})
    assert response.status_code == 303, response.get_data(as_text=True)[:1500]
    match = re.search(r"[?&]account=(\d+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def _add_member(app, team_id: int, user, role: str) -> None:
    from portal.extensions import db
    from portal.teams.models import Membership

    with app.app_context():
        db.session.add(Membership(team_id=team_id, user_id=user.id, role=role))
        db.session.commit()


def _invite(client, team_id: int, email: str, role: str = "developer") -> str:
    with mail_log() as mail:
        response = client.post(f"/team/invitations?account={team_id}", data={"email": email, "role": role})
        assert response.status_code == 303, response.get_data(as_text=True)[:1500]
        return mail.link(email, "teams/invite", INVITE_SUBJECT)


def _team_account(app, team_id: int) -> str:
    from portal.extensions import db
    from portal.teams.models import Team

    with app.app_context():
        return db.session.get(Team, team_id).account_id


def test_a_team_is_its_own_gateway_account_shown_when_the_url_names_it(portal_app, make_user, gateway):
    owner = make_user(timezone="UTC")
    client = _signed_in(portal_app, owner)
    team_id = _create_team(client, "Acme Research")
    account_id = _team_account(portal_app, team_id)
    assert account_id and account_id != owner.account_id
    account = gateway.internal("GET", f"/accounts/{account_id}").json()
    assert account["external_id"] == f"team:{team_id}"

    gateway.internal("POST", f"/accounts/{account_id}/ledger", json={
        "kind": "adjustment", "amount_micro_p": 1234 * 10**6, "idempotency_key": f"t-{account_id}"})
    team_page = client.get(f"/dashboard?account={team_id}").get_data(as_text=True)
    personal_page = client.get("/dashboard").get_data(as_text=True)
    assert "1,234" in team_page and "1,234" not in personal_page
    # The switcher names the selected account; links of the team's pages keep it.
    assert 'class="switcher-label">Acme Research<' in team_page
    assert 'class="switcher-label">Personal<' in personal_page
    assert f'href="/billing?account={team_id}"' in team_page
    assert f'href="/keys?account={team_id}"' in team_page


def test_someone_outside_the_team_gets_404_for_its_pages(portal_app, make_user):
    owner, stranger = make_user(), make_user()
    team_id = _create_team(_signed_in(portal_app, owner))
    client = _signed_in(portal_app, stranger)
    for path in ("/dashboard", "/keys", "/billing", "/usage", "/requests", "/team", "/payments"):
        assert client.get(f"{path}?account={team_id}").status_code == 404, path
    assert client.post(f"/keys?account={team_id}", data={"name": "x"}).status_code == 404
    for bad in ("abc", "-1", "1" * 40, str(team_id + 10_000), str(2**31), "9" * 10):
        assert client.get(f"/dashboard?account={bad}").status_code == 404, bad


def test_a_team_name_is_required_and_bounded(portal_app, make_user):
    client = _signed_in(portal_app, make_user())
    assert client.post("/teams", data={"name": "   "}).status_code == 422
    assert client.post("/teams", data={"name": "x" * 81}).status_code == 422
    assert client.post("/teams", data={"name": "bad\x00name"}).status_code == 422


def test_an_invited_user_joins_once_in_the_role_given(portal_app, make_user):
    owner, invitee = make_user(), make_user()
    owner_client = _signed_in(portal_app, owner)
    team_id = _create_team(owner_client)
    link = _invite(owner_client, team_id, invitee.email, "billing")

    client = _signed_in(portal_app, invitee)
    page = client.get(link)
    assert page.status_code == 200 and "Join Acme" in page.get_data(as_text=True)
    accepted = client.post(link)
    assert accepted.status_code == 303
    assert accepted.headers["Location"].endswith(f"/dashboard?account={team_id}")
    assert client.get(f"/billing?account={team_id}").status_code == 200
    # A billing member has no keys page.
    assert client.get(f"/keys?account={team_id}").status_code == 403
    members = owner_client.get(f"/team?account={team_id}").get_data(as_text=True)
    assert f'data-member="{invitee.email}"' in members
    # Single use.
    assert client.get(link).status_code == 410
    assert client.post(link).status_code == 410


def test_an_invitation_is_for_its_address_only(portal_app, make_user):
    owner, invitee, other = make_user(), make_user(), make_user()
    owner_client = _signed_in(portal_app, owner)
    team_id = _create_team(owner_client)
    link = _invite(owner_client, team_id, invitee.email)
    other_client = _signed_in(portal_app, other)
    refused = other_client.post(link)
    assert refused.status_code == 422
    assert invitee.email in refused.get_data(as_text=True)
    assert other_client.get(f"/dashboard?account={team_id}").status_code == 404
    # The link still works for its own address.
    assert _signed_in(portal_app, invitee).post(link).status_code == 303


def test_a_revoked_invitation_no_longer_works(portal_app, make_user):
    from portal.extensions import db
    from portal.teams.models import Invitation

    owner, invitee = make_user(), make_user()
    owner_client = _signed_in(portal_app, owner)
    team_id = _create_team(owner_client)
    link = _invite(owner_client, team_id, invitee.email)
    with portal_app.app_context():
        invitation_id = db.session.scalar(sa.select(Invitation.id).where(Invitation.team_id == team_id))
    assert owner_client.post(f"/team/invitations/{invitation_id}/revoke?account={team_id}").status_code == 303
    assert _signed_in(portal_app, invitee).post(link).status_code == 410
    # Another team's owner cannot revoke this team's invitations.
    other_owner = _signed_in(portal_app, make_user())
    other_team = _create_team(other_owner, "Other")
    assert other_owner.post(f"/team/invitations/{invitation_id}/revoke?account={other_team}").status_code == 404


def test_an_invitation_expires_after_seven_days(portal_app, make_user):
    owner, invitee = make_user(), make_user()
    start = datetime(2031, 3, 2, 9, 0, tzinfo=timezone.utc)
    with time_machine.travel(start, tick=False):
        owner_client = _signed_in(portal_app, owner)
        team_id = _create_team(owner_client)
        link = _invite(owner_client, team_id, invitee.email)
    with time_machine.travel(start + timedelta(days=6, hours=23), tick=False):
        assert _signed_in(portal_app, invitee).get(link).status_code == 200
    with time_machine.travel(start + timedelta(days=7, minutes=1), tick=False):
        client = _signed_in(portal_app, invitee)
        assert client.get(link).status_code == 410
        assert client.post(link).status_code == 410


def test_a_tampered_invitation_link_is_refused(portal_app, make_user):
    owner, invitee = make_user(), make_user()
    owner_client = _signed_in(portal_app, owner)
    link = _invite(owner_client, _create_team(owner_client), invitee.email)
    client = _signed_in(portal_app, invitee)
    for bad in (link[:-2] + ("aa" if not link.endswith("aa") else "bb"), "/teams/invite/x", "/teams/invite/" + "a" * 600):
        assert client.get(bad).status_code == 410, bad


def test_someone_without_an_account_signs_up_through_the_link_and_joins(portal_app, make_user):
    owner = make_user()
    owner_client = _signed_in(portal_app, owner)
    team_id = _create_team(owner_client)
    email = f"newcomer-{team_id}@example.com"
    link = _invite(owner_client, team_id, email, "developer")

    visitor = portal_app.test_client()
    page = visitor.get(link).get_data(as_text=True)
    signup = re.search(r'href="(/signup\?next=[^"]+)"', page).group(1).replace("&amp;", "&")
    with mail_log() as mail:
        assert visitor.post(signup, data={"email": email, "password": DEFAULT_PASSWORD,
                                          "confirm": DEFAULT_PASSWORD}).status_code == 303
        confirm = mail.confirmation_link(email)
    # Confirming the address through the invitation is joining: they land in the team.
    landed = visitor.get(confirm)
    assert landed.status_code == 303 and landed.headers["Location"] == f"/dashboard?account={team_id}"
    assert visitor.get(f"/keys?account={team_id}").status_code == 200
    assert visitor.get(link).status_code == 410


def test_inviting_needs_a_valid_address_and_a_grantable_role(portal_app, make_user):
    owner = make_user()
    client = _signed_in(portal_app, owner)
    team_id = _create_team(client)
    for data in ({"email": "not-an-address", "role": "developer"}, {"email": "a@example.com", "role": "owner"},
                 {"email": "a@example.com", "role": "root"}, {"email": owner.email, "role": "admin"}):
        assert client.post(f"/team/invitations?account={team_id}", data=data).status_code == 422, data


def test_only_owners_and_admins_manage_members(portal_app, make_user):
    owner, admin, developer, billing = make_user(), make_user(), make_user(), make_user()
    team_id = _create_team(_signed_in(portal_app, owner))
    _add_member(portal_app, team_id, admin, "admin")
    _add_member(portal_app, team_id, developer, "developer")
    _add_member(portal_app, team_id, billing, "billing")
    for user in (developer, billing):
        client = _signed_in(portal_app, user)
        assert client.post(f"/team/invitations?account={team_id}",
                           data={"email": "x@example.com", "role": "developer"}).status_code == 403
        assert client.post(f"/team/members/{admin.id}/remove?account={team_id}").status_code == 403
    admin_client = _signed_in(portal_app, admin)
    # An admin may not touch the owner, nor make admins.
    assert admin_client.post(f"/team/members/{owner.id}/remove?account={team_id}").status_code == 422
    assert admin_client.post(f"/team/members/{developer.id}/role?account={team_id}",
                             data={"role": "admin"}).status_code == 422
    assert admin_client.post(f"/team/members/{developer.id}/role?account={team_id}",
                             data={"role": "billing"}).status_code == 303
    for huge in (2**31, 10**15):
        assert admin_client.post(f"/team/members/{huge}/remove?account={team_id}").status_code == 404
        assert admin_client.post(f"/team/invitations/{huge}/revoke?account={team_id}").status_code == 404
    assert admin_client.post(f"/team/delete?account={team_id}", data={"confirm_name": "Acme"}).status_code == 403
    assert admin_client.post(f"/team/transfer?account={team_id}", data={"user_id": admin.id}).status_code == 403


def test_the_owner_transfers_ownership_and_deletes_the_team(portal_app, make_user):
    owner, admin = make_user(), make_user()
    owner_client = _signed_in(portal_app, owner)
    team_id = _create_team(owner_client)
    _add_member(portal_app, team_id, admin, "admin")
    assert owner_client.post(f"/team/transfer?account={team_id}", data={"user_id": str(admin.id)}).status_code == 303
    assert owner_client.post(f"/team/delete?account={team_id}", data={"confirm_name": "Acme"}).status_code == 403
    new_owner = _signed_in(portal_app, admin)
    assert new_owner.post(f"/team/delete?account={team_id}", data={"confirm_name": "wrong"}).status_code == 422
    deleted = new_owner.post(f"/team/delete?account={team_id}", data={"confirm_name": "Acme"})
    assert deleted.status_code == 303 and deleted.headers["Location"] == "/teams"
    assert new_owner.get(f"/dashboard?account={team_id}").status_code == 404
    assert owner_client.get(f"/dashboard?account={team_id}").status_code == 404


def test_redirects_keep_the_selected_team(portal_app, make_user):
    owner = make_user()
    client = _signed_in(portal_app, owner)
    team_id = _create_team(client)
    response = client.post(f"/team/invitations?account={team_id}", data={"email": "a@example.com", "role": "admin"})
    assert response.headers["Location"] == f"/team?account={team_id}"


def test_alert_mail_goes_to_every_owner_and_billing_member(portal_app, make_user):
    from portal.teams import recipients

    owner, admin, developer, billing = make_user(), make_user(), make_user(), make_user()
    team_id = _create_team(_signed_in(portal_app, owner))
    _add_member(portal_app, team_id, admin, "admin")
    _add_member(portal_app, team_id, developer, "developer")
    _add_member(portal_app, team_id, billing, "billing")
    with portal_app.app_context():
        team_account = _team_account(portal_app, team_id)
        assert sorted(u.email for u in recipients(team_account)) == sorted([owner.email, billing.email])
        assert [u.email for u in recipients(owner.account_id)] == [owner.email]


KEY = re.compile(r"sama_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _new_key(client, team_id: int, name: str) -> str:
    response = client.post(f"/keys?account={team_id}", data={"name": name, "spend_limit": "", "expires_on": ""})
    assert response.status_code == 200, response.get_data(as_text=True)[:1500]
    return KEY.search(response.get_data(as_text=True)).group(0)


def _team_of_four(portal_app, make_user):
    users = {role: make_user(timezone="UTC") for role in ("owner", "admin", "developer", "billing")}
    team_id = _create_team(_signed_in(portal_app, users["owner"]))
    for role in ("admin", "developer", "billing"):
        _add_member(portal_app, team_id, users[role], role)
    return team_id, users


def test_developers_see_and_manage_only_their_own_keys(portal_app, make_user, gateway):
    team_id, users = _team_of_four(portal_app, make_user)
    owner = _signed_in(portal_app, users["owner"])
    dev = _signed_in(portal_app, users["developer"])
    other_dev_user = make_user()
    _add_member(portal_app, team_id, other_dev_user, "developer")
    other_dev = _signed_in(portal_app, other_dev_user)
    _new_key(owner, team_id, "owner-key")
    _new_key(dev, team_id, "dev-key")
    _new_key(other_dev, team_id, "other-dev-key")

    account_id = _team_account(portal_app, team_id)
    keys = {k["name"]: k for k in gateway.internal("GET", f"/accounts/{account_id}/keys").json()["data"]}
    assert keys["dev-key"]["member_id"] == str(users["developer"].id)
    assert keys["owner-key"]["member_id"] == str(users["owner"].id)

    dev_page = dev.get(f"/keys?account={team_id}").get_data(as_text=True)
    assert "dev-key" in dev_page and "owner-key" not in dev_page and "other-dev-key" not in dev_page
    # Another member's key is not there for a developer, whatever the action.
    other_id = keys["other-dev-key"]["id"]
    assert dev.get(f"/keys/{other_id}?account={team_id}").status_code == 404
    assert dev.post(f"/keys/{other_id}/revoke?account={team_id}").status_code == 404
    # Owners and admins see every key of the team.
    for manager in (owner, _signed_in(portal_app, users["admin"])):
        page = manager.get(f"/keys?account={team_id}").get_data(as_text=True)
        assert all(name in page for name in ("owner-key", "dev-key", "other-dev-key"))
    # The personal account's keys are apart from the team's.
    assert "dev-key" not in dev.get("/keys").get_data(as_text=True)


def test_removing_a_member_revokes_their_keys_in_the_team_at_once(portal_app, make_user, gateway):
    from fixtures.portal import call_api, wait_for_status

    team_id, users = _team_of_four(portal_app, make_user)
    account_id = _team_account(portal_app, team_id)
    gateway.internal("POST", f"/accounts/{account_id}/ledger", json={
        "kind": "adjustment", "amount_micro_p": 100 * 10**6, "idempotency_key": f"r-{account_id}"})
    dev = _signed_in(portal_app, users["developer"])
    dev_key = _new_key(dev, team_id, "dev-key")
    personal_key = KEY.search(dev.post("/keys", data={"name": "mine", "spend_limit": "",
                                                      "expires_on": ""}).get_data(as_text=True)).group(0)
    assert call_api(gateway, dev_key)["status"] == 200

    owner = _signed_in(portal_app, users["owner"])
    removed = owner.post(f"/team/members/{users['developer'].id}/remove?account={team_id}")
    assert removed.status_code == 303
    assert wait_for_status(gateway, dev_key, 401)["status"] == 401
    assert dev.get(f"/keys?account={team_id}").status_code == 404
    # Their personal key is theirs, not the team's.
    assert call_api(gateway, personal_key)["status"] in (200, 402)


def test_the_sidebar_shows_a_role_only_what_it_may_open(portal_app, make_user):
    team_id, users = _team_of_four(portal_app, make_user)
    developer = _signed_in(portal_app, users["developer"]).get(f"/keys?account={team_id}").get_data(as_text=True)
    assert f'href="/keys?account={team_id}"' in developer
    assert 'href="/billing' not in developer and 'href="/payments' not in developer
    billing = _signed_in(portal_app, users["billing"]).get(f"/billing?account={team_id}").get_data(as_text=True)
    assert f'href="/payments?account={team_id}"' in billing and 'href="/keys' not in billing
    dashboard = _signed_in(portal_app, users["billing"]).get(f"/dashboard?account={team_id}").get_data(as_text=True)
    assert 'href="/keys' not in dashboard and f'href="/billing?account={team_id}"' in dashboard
    dev_dashboard = _signed_in(portal_app, users["developer"]).get(f"/dashboard?account={team_id}")
    assert 'href="/billing' not in dev_dashboard.get_data(as_text=True)
    # Pages that are the same for every account keep their plain address.
    assert 'href="/docs"' in billing and 'href="/settings"' in billing


def test_owners_and_admins_filter_usage_and_the_log_by_member(portal_app, make_user):
    team_id, users = _team_of_four(portal_app, make_user)
    outsider = make_user()
    for role in ("owner", "admin"):
        client = _signed_in(portal_app, users[role])
        for path in ("/usage", "/requests"):
            page = client.get(f"{path}?account={team_id}").get_data(as_text=True)
            assert 'name="member"' in page and users["developer"].email in page, (role, path)
            chosen = client.get(f"{path}?account={team_id}&member={users['developer'].id}")
            assert chosen.status_code == 200
            assert f'value="{users["developer"].id}" selected' in chosen.get_data(as_text=True)
            for bad in (str(outsider.id), "abc", "9" * 20, str(2**31), "999999999999"):
                assert client.get(f"{path}?account={team_id}&member={bad}").status_code == 404, (path, bad)
    for role in ("developer", "billing"):
        page = _signed_in(portal_app, users[role]).get(f"/requests?account={team_id}").get_data(as_text=True)
        assert 'name="member"' not in page


def _funded_team(portal_app, make_user, gateway):
    team_id, users = _team_of_four(portal_app, make_user)
    account_id = _team_account(portal_app, team_id)
    gateway.internal("POST", f"/accounts/{account_id}/ledger", json={
        "kind": "adjustment", "amount_micro_p": 1000 * 10**6, "idempotency_key": f"fund-{account_id}"})
    return team_id, users, account_id


def test_a_developer_sees_the_usage_and_log_of_their_own_keys_only(portal_app, make_user, gateway):
    from fixtures.portal import call_api, wait_for_requests

    team_id, users, account_id = _funded_team(portal_app, make_user, gateway)
    owner, dev = _signed_in(portal_app, users["owner"]), _signed_in(portal_app, users["developer"])
    owner_key, dev_key = _new_key(owner, team_id, "owner-key"), _new_key(dev, team_id, "dev-key")
    for key in (owner_key, owner_key, dev_key):
        assert call_api(gateway, key)["status"] == 200
    assert len(wait_for_requests(gateway, account_id, 3)) == 3

    dev_log = dev.get(f"/requests?account={team_id}").get_data(as_text=True)
    assert dev_log.count('class="log-row"') == 1 and "owner-key" not in dev_log
    owner_log = owner.get(f"/requests?account={team_id}").get_data(as_text=True)
    assert owner_log.count('class="log-row"') == 3
    filtered = owner.get(f"/requests?account={team_id}&member={users['developer'].id}").get_data(as_text=True)
    assert filtered.count('class="log-row"') == 1 and "dev-key" in filtered
    csv_rows = dev.get(f"/requests.csv?account={team_id}").get_data(as_text=True).strip().splitlines()
    assert len(csv_rows) == 2  # the header and the developer's one request

    def usage_requests(client, extra=""):
        page = client.get(f"/usage?account={team_id}{extra}").get_data(as_text=True)
        return re.search(r'<p class="stat-label">Requests</p><p class="stat-value">([\d,]+)</p>', page).group(1)

    assert usage_requests(owner) == "3"
    assert usage_requests(dev) == "1"
    assert usage_requests(owner, f"&member={users['owner'].id}") == "2"


def test_owners_and_admins_set_a_spend_cap_per_member(portal_app, make_user, gateway):
    team_id, users, account_id = _funded_team(portal_app, make_user, gateway)
    developer_id = users["developer"].id
    admin = _signed_in(portal_app, users["admin"])
    saved = admin.post(f"/team/members/{developer_id}/budget?account={team_id}",
                       data={"budget": "12.5", "budget_period": "day"})
    assert saved.status_code == 303
    caps = gateway.internal("GET", f"/accounts/{account_id}/members").json()["data"]
    assert [(c["member_id"], c["budget_micro_p"], c["budget_period"]) for c in caps] == \
        [(str(developer_id), 12_500_000, "day")]
    page = admin.get(f"/team?account={team_id}").get_data(as_text=True)
    assert re.search(rf'id="cap-{developer_id}"[^>]*value="12.5"', page)
    for bad in ({"budget": "-1", "budget_period": "day"}, {"budget": "5", "budget_period": ""},
                {"budget": "5", "budget_period": "year"}, {"budget": "lots", "budget_period": "week"}):
        assert admin.post(f"/team/members/{developer_id}/budget?account={team_id}", data=bad).status_code == 422, bad
    assert admin.post(f"/team/members/{make_user().id}/budget?account={team_id}",
                      data={"budget": "5", "budget_period": "day"}).status_code == 404
    removed = admin.post(f"/team/members/{developer_id}/budget?account={team_id}",
                         data={"budget": "", "budget_period": ""})
    assert removed.status_code == 303
    assert gateway.internal("GET", f"/accounts/{account_id}/members").json()["data"] == []


def test_a_member_cap_stops_the_members_keys_not_the_others(portal_app, make_user, gateway):
    from fixtures.portal import call_api, wait_for_requests

    team_id, users, account_id = _funded_team(portal_app, make_user, gateway)
    owner, dev = _signed_in(portal_app, users["owner"]), _signed_in(portal_app, users["developer"])
    owner_key, dev_key = _new_key(owner, team_id, "owner-key"), _new_key(dev, team_id, "dev-key")
    assert call_api(gateway, dev_key)["status"] == 200
    spent = wait_for_requests(gateway, account_id, 1)[0]["cost_micro_p"]
    assert spent > 0
    cap = f"{spent / 10**6:.6f}"
    assert owner.post(f"/team/members/{users['developer'].id}/budget?account={team_id}",
                      data={"budget": cap, "budget_period": "month"}).status_code == 303
    from fixtures.portal import wait_for_status

    assert wait_for_status(gateway, dev_key, 402)["status"] == 402
    assert call_api(gateway, owner_key)["status"] == 200


def test_any_account_parameter_is_a_team_of_yours_or_404(portal_app, make_user):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    owner, stranger = make_user(), make_user()
    team_id = _create_team(_signed_in(portal_app, owner))
    client = _signed_in(portal_app, stranger)

    @settings(max_examples=50, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.one_of(st.text(max_size=30), st.integers(min_value=-10, max_value=10**15).map(str),
                     st.just(str(team_id))))
    def check(raw):
        response = client.get("/keys", query_string={"account": raw})
        assert response.status_code == 404, (raw, response.status_code)

    check()


def test_a_member_leaves_and_their_keys_in_the_team_stop(portal_app, make_user, gateway):
    from fixtures.portal import wait_for_status

    team_id, users, account_id = _funded_team(portal_app, make_user, gateway)
    dev = _signed_in(portal_app, users["developer"])
    key = _new_key(dev, team_id, "dev-key")
    left = dev.post(f"/team/leave?account={team_id}")
    assert left.status_code == 303 and left.headers["Location"] == "/dashboard"
    assert wait_for_status(gateway, key, 401)["status"] == 401
    assert dev.get(f"/team?account={team_id}").status_code == 404
    # The owner cannot leave; they transfer ownership or delete the team.
    owner = _signed_in(portal_app, users["owner"])
    assert owner.post(f"/team/leave?account={team_id}").status_code == 403


def test_a_team_made_while_the_gateway_is_down_gets_its_account_later(down_portal_app, portal_app, make_user):
    user = make_user(timezone="UTC")
    down = down_portal_app.test_client()
    assert login(down, user.email, user.password).status_code == 303
    created = down.post("/teams", data={"name": "Patient"})
    assert created.status_code == 303
    team_id = int(re.search(r"account=(\d+)", created.headers["Location"]).group(1))
    page = down.get(f"/team?account={team_id}")
    assert page.status_code == 200 and "Patient" in page.get_data(as_text=True)
    assert _team_account(portal_app, team_id) is None
    # Back up: the first page that needs the account makes it.
    up = _signed_in(portal_app, user)
    assert up.get(f"/dashboard?account={team_id}").status_code == 200
    assert _team_account(portal_app, team_id)


def test_inviting_an_address_again_leaves_only_the_newest_link(portal_app, make_user):
    owner, invitee = make_user(), make_user()
    owner_client = _signed_in(portal_app, owner)
    team_id = _create_team(owner_client)
    first = _invite(owner_client, team_id, invitee.email, "developer")
    second = _invite(owner_client, team_id, invitee.email, "admin")
    assert first != second
    client = _signed_in(portal_app, invitee)
    assert client.get(first).status_code == 410
    assert client.post(second).status_code == 303
    # The newest invitation's role is the one given: an admin manages members.
    assert client.get(f"/team?account={team_id}").get_data(as_text=True).count('id="invite-form"') == 1


def test_an_invitation_opened_twice_at_once_joins_once(portal_app, make_user):
    from concurrent.futures import ThreadPoolExecutor

    from portal.extensions import db
    from portal.teams.models import Membership

    owner, invitee = make_user(), make_user()
    owner_client = _signed_in(portal_app, owner)
    team_id = _create_team(owner_client)
    link = _invite(owner_client, team_id, invitee.email)
    clients = [_signed_in(portal_app, invitee) for _ in range(4)]
    with ThreadPoolExecutor(len(clients)) as pool:
        statuses = sorted(pool.map(lambda client: client.post(link).status_code, clients))
    assert statuses == [303, 410, 410, 410]
    with portal_app.app_context():
        count = db.session.scalar(sa.select(sa.func.count()).select_from(Membership).where(
            Membership.team_id == team_id, Membership.user_id == invitee.id))
    assert count == 1
