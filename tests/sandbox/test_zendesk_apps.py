"""The Zendesk emulator's installed app: the Apps API the bridge's setup reads, and the signed first load."""

from __future__ import annotations

import httpx
import jwt

from bridge.sandbox.runner import install_zendesk_app
from bridge.sandbox.server import BackgroundServer
from connectors.zendesk.console import verify_zendesk_app, zendesk_audience
from tests.conftest import ZD_TOKEN, ZendeskAdmin


def test_the_app_signs_the_sidebars_first_load_for_its_installation(zd_server: BackgroundServer) -> None:
    admin = ZendeskAdmin(zd_server)
    key, installation = install_zendesk_app(zd_server.url, ZD_TOKEN, "https://bridge.example.com")
    assert key.startswith("-----BEGIN PUBLIC KEY-----")
    ticket = admin.http.post(
        "/tickets.json", json={"ticket": {"subject": "s", "comment": {"body": "b"}, "assignee_id": admin.agents[0]}}
    ).json()["ticket"]
    page = httpx.get(
        zd_server.url + "/_emulator/apps/ticket_sidebar", params={"user_id": admin.agents[0], "ticket_id": ticket["id"]}
    )
    assert page.status_code == 200
    assert 'action="https://bridge.example.com/console/zendesk?origin=' in page.text  # the manifest's URL, resolved
    token = page.text.split('name="token" value="')[1].split('"')[0]
    assert verify_zendesk_app(key, zendesk_audience(zd_server.url, installation), token) == str(admin.agents[0])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 300 and claims["context"]["location"] == "ticket_sidebar"
    # The Apps API needs the API credentials like any other call.
    assert httpx.get(zd_server.url + "/api/v2/apps/installations.json").status_code == 401
    admin.http.close()
