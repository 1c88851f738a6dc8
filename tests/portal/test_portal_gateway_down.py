"""When the gateway cannot be reached every page still renders, with a clear notice."""

from __future__ import annotations

import pytest

from fixtures.portal import login

PAGES = ["/dashboard", "/quickstart", "/models", "/keys", "/pricing", "/usage", "/requests", "/settings",
         "/support", "/docs", "/billing", "/payments"]


@pytest.fixture
def down_client(down_portal_app, user):
    client = down_portal_app.test_client()
    assert login(client, user.email, user.password).status_code == 303
    return client


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_the_notice(down_client, path):
    response = down_client.get(path)
    assert response.status_code == 200, path
    body = response.get_data(as_text=True)
    assert "Usage service unavailable" in body or "usage service unavailable" in body.lower()
    assert "Traceback" not in body


@pytest.mark.parametrize("path", ["/pricing", "/docs", "/support"])
def test_public_pages_render_for_visitors_too(down_portal_app, path):
    response = down_portal_app.test_client().get(path)
    assert response.status_code == 200
    assert "usage service unavailable" in response.get_data(as_text=True).lower() or path == "/support"


def test_creating_a_key_while_down_says_so_and_keeps_the_form(down_client):
    response = down_client.post("/keys", data={"name": "keep me", "spend_limit": "10"})
    body = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "usage service is unavailable" in body
    assert 'value="keep me"' in body


def test_fragments_while_down(down_client):
    fragment = down_client.get("/usage?range=30d", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "usage service is unavailable" in fragment.get_data(as_text=True)
    log = down_client.get("/requests", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "usage service is unavailable" in log
