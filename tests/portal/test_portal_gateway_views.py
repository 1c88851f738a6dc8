"""One way for a view to meet a gateway failure: ``calling_gateway`` and what the pages show with it."""

from __future__ import annotations

import pytest

from portal.gateway_client import GatewayError, GatewayUnavailable
from portal.gateway_views import calling_gateway, gateway_down

NOTICE = "Usage service unavailable."


def _fail(exc: Exception):
    def call(*args, **kwargs):
        raise exc
    return call


def test_an_outage_shows_the_notice_and_the_pages_own_message(portal_app):
    with portal_app.test_request_context("/"):
        value = "before"
        with calling_gateway("The key could not be created.") as call:
            value = _fail(GatewayUnavailable("gateway answered 502"))()
        assert value == "before"
        assert (call.failed, call.unavailable, call.status, call.message) == (True, True, 503, "The key could not be created.")
        assert call.refusal is None and gateway_down()


def test_a_refused_read_is_treated_as_an_outage(portal_app):
    with portal_app.test_request_context("/"):
        with calling_gateway() as call:
            _fail(GatewayError(404, "account not found", "not_found"))()
        assert call.failed and not call.unavailable and call.status == 503 and gateway_down()
        assert call.refusal.status == 404


def test_a_refused_action_hands_its_message_to_the_page_without_the_notice(portal_app):
    with portal_app.test_request_context("/"):
        with calling_gateway("down", show_refusal=True) as call:
            _fail(GatewayError(422, "name is too long.", "invalid_request"))()
        assert (call.failed, call.unavailable, call.status, call.message) == (True, False, 422, "name is too long.")
        assert call.refusal.code == "invalid_request" and not gateway_down()


def test_success_and_other_errors_pass_through(portal_app):
    with portal_app.test_request_context("/"):
        with calling_gateway() as call:
            pass
        assert not call.failed and call.status == 200 and not gateway_down()
        with pytest.raises(KeyError), calling_gateway():
            raise KeyError("not the gateway's")


def _key_id(client, gateway) -> str:
    assert client.post("/keys", data={"name": "kept"}).status_code == 200
    return gateway.internal("GET", f"/accounts/{client.user.account_id}/keys").json()["data"][0]["id"]


def test_a_revoke_the_gateway_refuses_says_why(logged_in_client, gateway, portal_app, monkeypatch):
    key_id = _key_id(logged_in_client, gateway)
    monkeypatch.setattr(portal_app.extensions["gateway_client"], "revoke_key",
                        _fail(GatewayError(409, "This key is already being revoked.", "conflict")))
    response = logged_in_client.post(f"/keys/{key_id}/revoke")
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "This key is already being revoked." in body and "Revoke key?" in body
    assert NOTICE not in body


def test_a_rename_while_the_gateway_is_down_keeps_the_form_and_shows_the_notice(logged_in_client, gateway,
                                                                                portal_app, monkeypatch):
    key_id = _key_id(logged_in_client, gateway)
    monkeypatch.setattr(portal_app.extensions["gateway_client"], "update_key",
                        _fail(GatewayUnavailable("gateway unreachable (ConnectionError)")))
    response = logged_in_client.post(f"/keys/{key_id}/rename", data={"name": "wanted name"})
    body = response.get_data(as_text=True)
    assert response.status_code == 503
    assert NOTICE in body and "could not be renamed because the usage service is unavailable" in body
    assert 'value="wanted name"' in body


def test_an_account_the_gateway_refuses_still_renders_the_page_with_the_notice(logged_in_client, portal_app,
                                                                              monkeypatch):
    monkeypatch.setattr(portal_app.extensions["gateway_client"], "get_account",
                        _fail(GatewayError(404, "account not found", "not_found")))
    response = logged_in_client.get("/settings")
    assert response.status_code == 200
    assert NOTICE in response.get_data(as_text=True)
