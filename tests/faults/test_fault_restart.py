"""The gateway restarted while the portal is up: the portal shows the notice, then recovers by itself."""

from __future__ import annotations

from fault_common import wait_until

from fixtures.gateway import free_port, start_gateway
from fixtures.portal import login, portal_config

NOTICE = "Usage service unavailable."


def test_portal_rides_out_a_gateway_restart(gateway_env, portal_database_url, user, tmp_path):
    from portal import create_app

    port, internal_port = free_port(), free_port()
    first = start_gateway(dict(gateway_env), port=port, internal_port=internal_port)
    app = create_app(portal_config(portal_database_url, first.internal_url, first.token, tmp_path / "instance",
                                   public_url=first.url + "/v1"))
    client = app.test_client()
    assert login(client, user.email, user.password).status_code == 303
    page = client.get("/dashboard")
    assert page.status_code == 200 and NOTICE not in page.get_data(as_text=True)

    first.stop()
    for path in ("/dashboard", "/keys", "/usage", "/billing"):
        down = client.get(path)
        assert down.status_code == 200, path
        assert NOTICE in down.get_data(as_text=True), path
    # Creating a key while down keeps the form and says why.
    refused = client.post("/keys", data={"name": "while down"})
    assert refused.status_code in (200, 503) and "unavailable" in refused.get_data(as_text=True).lower()

    second = start_gateway(dict(gateway_env), port=port, internal_port=internal_port)
    try:
        assert (second.url, second.internal_url) == (first.url, first.internal_url)
        assert wait_until(lambda: NOTICE not in client.get("/dashboard").get_data(as_text=True), timeout=30)
        created = client.post("/keys", data={"name": "after restart"})
        assert created.status_code == 200 and "after restart" in created.get_data(as_text=True)
    finally:
        second.stop()
