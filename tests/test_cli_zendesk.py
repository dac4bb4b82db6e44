"""`helpdesk-bridge zendesk setup|teardown`, run as an operator would, against the Zendesk emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from bridge.sandbox.server import BackgroundServer, free_port
from connectors.zendesk import webhook
from connectors.zendesk.setup import WEBHOOK_NAME
from tests.conftest import ZD_EMAIL, ZD_TOKEN
from tests.test_cli import run
from tests.test_convergence import wait_for

SECRET = "zendesk-signing-secret-from-env"


def env_for(server: BackgroundServer, **extra: str) -> dict[str, str]:
    return {"ZENDESK_URL": server.url, "ZENDESK_EMAIL": ZD_EMAIL, "ZENDESK_API_TOKEN": ZD_TOKEN, **extra}


def zd_state(server: BackgroundServer) -> dict[str, Any]:
    return httpx.get(server.url + "/_emulator/state").json()  # type: ignore[no-any-return]


OLD_TRIGGER_BODY = json.dumps(
    {"ticket_id": "{{ticket.id}}", "assignee_id": "{{ticket.assignee.id}}", "status": "{{ticket.status}}"}
)


def test_setup_is_idempotent_and_teardown_removes_it(zd_server: BackgroundServer, tmp_path: Path) -> None:
    env = env_for(zd_server, ZENDESK_WEBHOOK_SECRET=SECRET)
    first = run(["zendesk", "setup", "--url", "https://bridge.example.com"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    out = first.stdout.decode()
    assert "created: POST https://bridge.example.com/webhooks/zendesk" in out
    assert "trigger" not in out and "Zendesk signs with ZENDESK_WEBHOOK_SECRET" in out and SECRET not in out
    state = zd_state(zd_server)
    [hook] = state["webhooks"].values()
    assert (hook["name"], hook["endpoint"]) == (WEBHOOK_NAME, "https://bridge.example.com/webhooks/zendesk")
    assert hook["subscriptions"] == webhook.SUBSCRIPTIONS and state["triggers"] == {}
    assert set(webhook.SUBSCRIPTIONS) == {
        "zen:event-type:ticket.agent_assignment_changed",
        "zen:event-type:ticket.status_changed",
        "zen:event-type:ticket.comment_added",
        "zen:event-type:ticket.soft_deleted",
        "zen:event-type:ticket.permanently_deleted",
        "zen:event-type:ticket.undeleted",
    }
    assert state["webhook_secrets"][hook["id"]] == SECRET

    again = run(["zendesk", "setup", "--url", "https://bridge.example.com"], env, tmp_path)
    assert again.returncode == 0 and again.stdout.decode().count("already up to date") == 1, again.stdout
    moved = run(["zendesk", "setup", "--url", "https://bridge2.example.com/"], env, tmp_path)
    assert (
        moved.returncode == 0 and "updated: POST https://bridge2.example.com/webhooks/zendesk" in moved.stdout.decode()
    )
    assert len(zd_state(zd_server)["webhooks"]) == 1

    down = run(["zendesk", "teardown"], env, tmp_path)
    assert down.returncode == 0 and down.stdout.decode().count("deleted") == 1, down.stdout
    assert zd_state(zd_server)["webhooks"] == {}
    empty = run(["zendesk", "teardown"], env, tmp_path)
    assert empty.returncode == 0 and b"nothing to remove" in empty.stdout


def test_setup_moves_an_install_from_triggers_to_event_subscriptions(
    zd_server: BackgroundServer, zd_admin: Any, tmp_path: Path
) -> None:
    """What earlier versions installed: the webhook serving two triggers. Setup removes the triggers (Zendesk keeps
    a webhook that triggers use from changing) and subscribes the same webhook to the ticket events."""
    made = zd_admin.http.post(
        "/webhooks",
        json={
            "webhook": {
                "name": WEBHOOK_NAME,
                "endpoint": "https://bridge.example.com/webhooks/zendesk",
                "http_method": "POST",
                "request_format": "json",
                "status": "active",
                "subscriptions": ["conditional_ticket_events"],
            }
        },
    )
    hook_id = made.json()["webhook"]["id"]
    for field in ("assignee_id", "status"):
        trigger = {
            "title": f"Helpdesk Bridge: {field} changed",
            "conditions": {"all": [{"field": field, "operator": "changed"}]},
            "actions": [{"field": "notification_webhook", "value": [hook_id, OLD_TRIGGER_BODY]}],
        }
        assert zd_admin.http.post("/triggers", json={"trigger": trigger}).status_code == 201
    mine: dict[str, Any] = {
        "title": "Notify the team",
        "conditions": {"all": [{"field": "status", "operator": "changed"}]},
        "actions": [{"field": "status", "value": "open"}],
    }
    assert zd_admin.http.post("/triggers", json={"trigger": mine}).status_code == 201

    env = env_for(zd_server, ZENDESK_WEBHOOK_SECRET=SECRET)
    result = run(["zendesk", "setup", "--url", "https://bridge.example.com"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert out.count("removed: the webhook subscribes to ticket events") == 2 and f"({hook_id}) updated" in out
    state = zd_state(zd_server)
    assert [t["title"] for t in state["triggers"].values()] == ["Notify the team"]  # only the bridge's go
    assert [w["subscriptions"] for w in state["webhooks"].values()] == [webhook.SUBSCRIPTIONS]


def test_setup_without_a_secret_prints_the_one_zendesk_made(zd_server: BackgroundServer, tmp_path: Path) -> None:
    result = run(["zendesk", "setup", "--url", "http://127.0.0.1:8000"], env_for(zd_server), tmp_path)
    assert result.returncode == 0, result.stderr
    [webhook_id] = zd_state(zd_server)["webhooks"]
    made = zd_state(zd_server)["webhook_secrets"][webhook_id]
    assert f"set ZENDESK_WEBHOOK_SECRET={made}" in result.stdout.decode()


def test_ticket_events_are_delivered_signed(zd_server: BackgroundServer, zd_admin: Any, tmp_path: Path) -> None:
    """What setup subscribes to arrives as Zendesk's own event payloads, signed with the secret, with no trigger."""
    receiver = _Receiver()
    with BackgroundServer(receiver.app) as server:
        env = env_for(zd_server, ZENDESK_WEBHOOK_SECRET=SECRET)
        assert run(["zendesk", "setup", "--url", server.url], env, tmp_path).returncode == 0
        ticket = zd_admin.http.post("/tickets.json", json={"ticket": {"subject": "s", "comment": {"body": "b"}}})
        ticket_id = ticket.json()["ticket"]["id"]
        zd_admin.update(ticket_id, status="open")
        zd_admin.update(ticket_id, assignee_id=zd_admin.agents[0])
        zd_admin.update(ticket_id, comment={"body": "Internal", "public": False})
        zd_admin.delete(ticket_id)
        wait_for(lambda: len(receiver.calls) == 4)
    bodies = [json.loads(c["body"]) for c in receiver.calls]
    assert [b["type"].removeprefix("zen:event-type:ticket.") for b in bodies] == [
        "status_changed",
        "agent_assignment_changed",
        "comment_added",
        "soft_deleted",
    ]
    status, assignment, comment, deleted = bodies
    assert status["event"]["previous"] == "NEW" and status["event"]["current"] == "OPEN"
    assert assignment["event"]["previous"] is None and assignment["event"]["current"] == str(zd_admin.agents[0])
    assert comment["event"]["comment"]["is_public"] is False and comment["event"]["comment"]["body"] == "Internal"
    assert deleted["detail"]["status"] == "DELETED"
    for body in bodies:
        assert body["subject"] == f"zen:ticket:{ticket_id}" and body["detail"]["id"] == str(ticket_id)
        assert {"id", "time", "account_id", "zendesk_event_version"} <= set(body)
    for call in receiver.calls:
        webhook.verify(SECRET, call["signature"], call["timestamp"], call["body"].encode())


def test_errors_are_sentences_not_tracebacks(zd_server: BackgroundServer, tmp_path: Path) -> None:
    missing = run(["zendesk", "setup", "--url", "https://bridge.example.com"], {}, tmp_path)
    assert missing.returncode == 2 and b"ZENDESK_URL" in missing.stderr
    bad_url = run(["zendesk", "setup", "--url", "bridge.example.com"], env_for(zd_server), tmp_path)
    assert bad_url.returncode == 2 and b"--url" in bad_url.stderr
    refused = run(["zendesk", "teardown"], env_for(zd_server, ZENDESK_API_TOKEN="wrong-token"), tmp_path)
    assert refused.returncode == 1 and b"credentials" in refused.stderr
    unreachable = {
        "ZENDESK_URL": f"http://127.0.0.1:{free_port()}",
        "ZENDESK_EMAIL": ZD_EMAIL,
        "ZENDESK_API_TOKEN": ZD_TOKEN,
    }
    down = run(["zendesk", "setup", "--url", "https://bridge.example.com"], unreachable, tmp_path)
    assert down.returncode == 1 and b"zendesk setup failed" in down.stderr
    placeholder = run(["zendesk", "teardown"], env_for(zd_server, ZENDESK_WEBHOOK_SECRET="changeme"), tmp_path)
    assert placeholder.returncode == 2 and b"ZENDESK_WEBHOOK_SECRET" in placeholder.stderr
    for result in (missing, bad_url, refused, down, placeholder):
        assert b"Traceback" not in result.stderr and ZD_TOKEN.encode() not in result.stderr


class _Receiver:
    """A webhook endpoint that records each delivery."""

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        self.calls: list[dict[str, str]] = []

        async def hook(request: Request) -> Response:
            self.calls.append(
                {
                    "body": (await request.body()).decode(),
                    "signature": request.headers.get("x-zendesk-webhook-signature", ""),
                    "timestamp": request.headers.get("x-zendesk-webhook-signature-timestamp", ""),
                }
            )
            return Response(status_code=200)

        self.app = Starlette(routes=[Route("/webhooks/zendesk", hook, methods=["POST"])])
