"""`helpdesk-bridge zendesk setup|teardown`, run as an operator would, against the Zendesk emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from bridge.sandbox.server import BackgroundServer, free_port
from connectors.zendesk import webhook
from connectors.zendesk.setup import TRIGGERS, WEBHOOK_NAME, trigger_body
from tests.conftest import ZD_EMAIL, ZD_TOKEN
from tests.test_cli import run
from tests.test_convergence import wait_for

SECRET = "zendesk-signing-secret-from-env"


def env_for(server: BackgroundServer, **extra: str) -> dict[str, str]:
    return {"ZENDESK_URL": server.url, "ZENDESK_EMAIL": ZD_EMAIL, "ZENDESK_API_TOKEN": ZD_TOKEN, **extra}


def zd_state(server: BackgroundServer) -> dict[str, Any]:
    return httpx.get(server.url + "/_emulator/state").json()  # type: ignore[no-any-return]


def test_setup_is_idempotent_and_teardown_removes_it(zd_server: BackgroundServer, tmp_path: Path) -> None:
    env = env_for(zd_server, ZENDESK_WEBHOOK_SECRET=SECRET)
    first = run(["zendesk", "setup", "--url", "https://bridge.example.com"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    out = first.stdout.decode()
    assert "created: POST https://bridge.example.com/webhooks/zendesk" in out
    assert out.count("trigger") == 2 and "Zendesk signs with ZENDESK_WEBHOOK_SECRET" in out and SECRET not in out
    state = zd_state(zd_server)
    [webhook] = state["webhooks"].values()
    assert (webhook["name"], webhook["endpoint"]) == (WEBHOOK_NAME, "https://bridge.example.com/webhooks/zendesk")
    assert state["webhook_secrets"][webhook["id"]] == SECRET
    triggers = list(state["triggers"].values())
    assert sorted(t["title"] for t in triggers) == sorted(title for title, _ in TRIGGERS.values())
    bodies = {json.loads(t["actions"][0]["value"][1])["event"] for t in triggers}
    assert bodies == set(TRIGGERS) and all(t["actions"][0]["value"][0] == webhook["id"] for t in triggers)
    assert json.loads(trigger_body("x")) == {
        "ticket_id": "{{ticket.id}}",
        "assignee_id": "{{ticket.assignee.id}}",
        "status": "{{ticket.status}}",
        "event": "x",
    }

    again = run(["zendesk", "setup", "--url", "https://bridge.example.com"], env, tmp_path)
    assert again.returncode == 0 and again.stdout.decode().count("already up to date") == 3, again.stdout
    moved = run(["zendesk", "setup", "--url", "https://bridge2.example.com/"], env, tmp_path)
    assert (
        moved.returncode == 0 and "updated: POST https://bridge2.example.com/webhooks/zendesk" in moved.stdout.decode()
    )
    state = zd_state(zd_server)
    assert len(state["webhooks"]) == 1 and len(state["triggers"]) == 2

    down = run(["zendesk", "teardown"], env, tmp_path)
    assert down.returncode == 0 and down.stdout.decode().count("deleted") == 3, down.stdout
    state = zd_state(zd_server)
    assert state["webhooks"] == {} and state["triggers"] == {}
    empty = run(["zendesk", "teardown"], env, tmp_path)
    assert empty.returncode == 0 and b"nothing to remove" in empty.stdout


def test_setup_without_a_secret_prints_the_one_zendesk_made(zd_server: BackgroundServer, tmp_path: Path) -> None:
    result = run(["zendesk", "setup", "--url", "http://127.0.0.1:8000"], env_for(zd_server), tmp_path)
    assert result.returncode == 0, result.stderr
    [webhook_id] = zd_state(zd_server)["webhooks"]
    made = zd_state(zd_server)["webhook_secrets"][webhook_id]
    assert f"set ZENDESK_WEBHOOK_SECRET={made}" in result.stdout.decode()


def test_triggers_deliver_signed_webhooks(zd_server: BackgroundServer, zd_admin: Any, tmp_path: Path) -> None:
    """What setup installs fires on an assignee change with the contract's body, signed with the secret."""
    receiver = _Receiver()
    with BackgroundServer(receiver.app) as server:
        assert (
            run(
                ["zendesk", "setup", "--url", server.url], env_for(zd_server, ZENDESK_WEBHOOK_SECRET=SECRET), tmp_path
            ).returncode
            == 0
        )
        ticket = zd_admin.http.post("/tickets.json", json={"ticket": {"subject": "s", "comment": {"body": "b"}}})
        ticket_id = ticket.json()["ticket"]["id"]
        zd_admin.update(ticket_id, status="open")
        zd_admin.update(ticket_id, assignee_id=zd_admin.agents[0])
        wait_for(lambda: len(receiver.calls) == 2)
    bodies = [json.loads(c["body"]) for c in receiver.calls]
    assert {"ticket_id": str(ticket_id), "assignee_id": "", "status": "Open", "event": "status_changed"} in bodies
    assert {
        "ticket_id": str(ticket_id),
        "assignee_id": str(zd_admin.agents[0]),
        "status": "Open",
        "event": "assignee_changed",
    } in bodies
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
