"""Who may see which page: public pages for everyone, the rest only after signing in."""

from __future__ import annotations

import pytest

PRIVATE = ["/dashboard", "/quickstart", "/models", "/keys", "/billing", "/usage", "/requests",
           "/payments", "/settings", "/requests.csv"]
PUBLIC = ["/pricing", "/docs", "/support", "/login", "/signup", "/reset"]
SIDEBAR = ["/dashboard", "/quickstart", "/models", "/keys", "/billing", "/pricing", "/usage", "/requests",
           "/payments", "/settings", "/support", "/docs"]


@pytest.mark.parametrize("path", PRIVATE)
def test_private_pages_send_visitors_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("path", [p for p in PRIVATE + PUBLIC if p not in ("/login", "/signup")])
def test_signed_in_user_sees_every_page(logged_in_client, path):
    response = logged_in_client.get(path)
    assert response.status_code == 200, (path, response.status_code)


@pytest.mark.parametrize("path", ["/login", "/signup"])
def test_signed_in_user_is_sent_from_auth_pages_to_the_dashboard(logged_in_client, path):
    response = logged_in_client.get(path)
    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard"


@pytest.mark.parametrize("path", PUBLIC)
def test_public_pages_render_for_visitors(client, path):
    response = client.get(path)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Sign in" in body and "Create account" in body


def test_sidebar_lists_pages_in_product_order_and_marks_the_current_one(logged_in_client):
    body = logged_in_client.get("/usage").get_data(as_text=True)
    positions = [body.index(f'href="{path}" class="nav-link') for path in SIDEBAR]
    assert positions == sorted(positions)
    assert 'href="/usage" class="nav-link active" aria-current="page"' in body


def test_visitors_see_only_public_links_in_the_sidebar(client):
    body = client.get("/pricing").get_data(as_text=True)
    assert 'href="/pricing" class="nav-link' in body and 'href="/docs" class="nav-link' in body
    assert 'href="/keys" class="nav-link' not in body


def test_root_redirects_by_sign_in_state(client, logged_in_client):
    assert client.get("/").headers["Location"] == "/pricing"
    assert logged_in_client.get("/").headers["Location"] == "/dashboard"


def test_unknown_page_is_a_clean_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)


def test_htmx_request_after_sign_out_redirects_the_whole_page(client):
    response = client.get("/usage?range=30d", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/login?next=%2Fusage%3Frange%3D30d"


def test_sign_in_returns_to_the_page_asked_for(client, user):
    target = client.get("/requests?model=glm-5").headers["Location"]
    assert target == "/login?next=%2Frequests%3Fmodel%3Dglm-5"
    response = client.post(target, data={"email": user.email, "password": user.password})
    assert response.headers["Location"] == "/requests?model=glm-5"
