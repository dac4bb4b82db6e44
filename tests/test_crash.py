"""Kill the bridge process at each step of a request and check that, after a restart, every request produced exactly
one ticket, one group and one greeting, and that queued work survives restarts and is shared by several processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge import auth
from bridge.sandbox.process import BridgeProcess
from bridge.sandbox.server import BackgroundServer
from tests.conftest import (
    CALLOUT_SECRET,
    IM_KEY,
    PG_URL,
    SDKAPPID,
    ZD_EMAIL,
    ZD_TOKEN,
    greetings,
    im_state,
    make_group,
    members_of,
    reset_postgres,
    set_faults,
)

ONE = ("--workers", "1")  # a crash point ends the one process serving; `serve` forks one per core on PostgreSQL


def bridge_env(database_url: str, im: BackgroundServer, zd: BackgroundServer) -> dict[str, str]:
    return {
        "IM_SDKAPPID": str(SDKAPPID),
        "IM_SECRET_KEY": IM_KEY,
        "IM_API_BASE": im.url,
        "ZENDESK_URL": zd.url,
        "ZENDESK_EMAIL": ZD_EMAIL,
        "ZENDESK_API_TOKEN": ZD_TOKEN,
        "BRIDGE_DATABASE_URL": database_url,
        "BRIDGE_CALLOUT_SECRET": CALLOUT_SECRET,
        "BRIDGE_JOB_LEASE_SECONDS": "1",
        "BRIDGE_JOB_RETRY_SCALE": "0.001",
    }


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[BridgeProcess]]:
    started: list[BridgeProcess] = []
    yield started
    for process in started:
        process.stop()


def create(url: str, user: str, key: str) -> httpx.Response:
    body = {"userId": user, "caseInfo": {"subject": f"Crash test {key}"}}
    sig = auth.gen_usersig(SDKAPPID, IM_KEY, user, 600)
    return httpx.post(
        url + "/createticket",
        json=body,
        timeout=30,
        headers={"Authorization": f"UserSig {sig}", "Idempotency-Key": key},
    )


def zendesk_tickets(zd: BackgroundServer) -> dict[str, Any]:
    return httpx.get(zd.url + "/_emulator/state").json()["tickets"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("point", ["claimed", "ticket_created", "ran", "finished"])
def test_kill_during_createticket(
    point: str,
    database_url: str,
    im_server: BackgroundServer,
    zd_server: BackgroundServer,
    processes: list[BridgeProcess],
    tmp_path: Path,
) -> None:
    bridge = BridgeProcess(bridge_env(database_url, im_server, zd_server), tmp_path / "bridge.log", args=ONE)
    processes.append(bridge)
    bridge.start({"BRIDGE_TEST_CRASH_AT": f"{point}:createticket"})
    with pytest.raises(httpx.HTTPError):
        create(bridge.url, "cust-crash", "crash-1")
    assert bridge.wait_exit() == 75, "the bridge should have died at the crash point"

    bridge.start()  # the same database, no crash point: the job is taken again once its lease runs out
    deadline = time.time() + 30
    while True:
        r = create(bridge.url, "cust-crash", "crash-1")  # the customer app retries with the same key
        if r.status_code == 201:
            break
        assert r.status_code in (202, 409), r.text
        assert time.time() < deadline, "the request was never completed"
        time.sleep(0.3)
    group_id = r.json()["groupId"]
    assert len(zendesk_tickets(zd_server)) == 1, "exactly one ticket"
    assert list(im_state(im_server)["groups"]) == [group_id], "exactly one group"
    assert members_of(im_server, group_id) == {"cust-crash"}
    assert len(greetings(im_server, group_id)) == 1, "exactly one greeting"


def test_kill_after_a_reply_was_sent(
    database_url: str,
    im_server: BackgroundServer,
    zd_server: BackgroundServer,
    processes: list[BridgeProcess],
    tmp_path: Path,
) -> None:
    """The bridge dies after IM took an agent's reply and before the job was recorded as done: the job runs again
    after the restart, finds the message in the group's history, and the customer sees the reply once."""
    from connectors.zendesk.settings import ZendeskSettings
    from connectors.zendesk.setup import setup
    from tests.conftest import ZendeskAdmin

    env = {**bridge_env(database_url, im_server, zd_server), "ZENDESK_WEBHOOK_SECRET": "zendesk-crash-secret"}
    bridge = BridgeProcess(env, tmp_path / "bridge.log")
    processes.append(bridge)
    bridge.start({"BRIDGE_TEST_CRASH_AT": "ran:relay_reply"})
    settings = ZendeskSettings(
        _env_file=None, url=zd_server.url, email=ZD_EMAIL, api_token=ZD_TOKEN, webhook_secret="zendesk-crash-secret"
    )
    setup(settings, bridge.url)
    group = create(bridge.url, "cust-reply", "reply-1").json()["groupId"]
    ticket = group.removeprefix("ZENDESK#")
    admin = ZendeskAdmin(zd_server)
    alice = admin.agents[0]
    admin.update(ticket, assignee_id=alice)
    wait_for(lambda: members_of(im_server, group) == {"cust-reply", f"zd_{alice}"})
    admin.update(ticket, comment={"body": "Your parcel left today", "author_id": alice})
    assert bridge.wait_exit() == 75, "the bridge should have died once the reply was sent"

    bridge.start()  # the job is taken again once its lease runs out
    wait_for(lambda: [(j["status"], j["attempts"]) for j in jobs(database_url, "relay_reply")] == [("done", 2)])
    sends = [
        r
        for r in im_state(im_server)["requests"]
        if r.get("Command") == "send_group_msg" and not r["Body"].get("OnlineOnlyFlag")  # not the greeting
    ]
    assert len(sends) == 1, "the retry found its message in the group's history and sent nothing"
    messages = [m for m in im_state(im_server)["messages"][group] if m["From_Account"] == f"zd_{alice}"]
    assert [m["MsgBody"][0]["MsgContent"]["Text"] for m in messages] == ["Your parcel left today"], "IM kept one"
    admin.http.close()


def test_restart_with_pending_jobs(
    database_url: str,
    im_server: BackgroundServer,
    zd_server: BackgroundServer,
    processes: list[BridgeProcess],
    tmp_path: Path,
) -> None:
    make_group(im_server, "G-restart", "cust1")
    bridge = BridgeProcess(bridge_env(database_url, im_server, zd_server), tmp_path / "bridge.log", args=ONE)
    processes.append(bridge)
    bridge.start()
    set_faults(im_server, outage=True, status=503)
    client = SignedClient(bridge.url)
    for n in range(5):
        assert client.post("/joingroup", {"groupId": "G-restart", "userId": f"agent{n}"}).status_code == 202
    assert client.post("/leavegroup", {"groupId": "G-restart", "userId": "agent0"}).status_code == 202
    bridge.kill()
    set_faults(im_server)
    bridge.start()
    wait_for(lambda: members_of(im_server, "G-restart") == {"cust1", "agent1", "agent2", "agent3", "agent4"})
    log = (tmp_path / "bridge.log").read_text()
    assert "usersig=" not in log.lower() and IM_KEY not in log and CALLOUT_SECRET not in log and ZD_TOKEN not in log


@pytest.mark.skipif(not PG_URL, reason="several processes share state through PostgreSQL")
def test_two_processes_on_one_postgres(
    im_server: BackgroundServer, zd_server: BackgroundServer, processes: list[BridgeProcess], tmp_path: Path
) -> None:
    assert PG_URL
    reset_postgres(PG_URL)
    groups = [f"G-two-{n}" for n in range(6)]
    for group in groups:
        make_group(im_server, group, "cust1")
    first = BridgeProcess(bridge_env(PG_URL, im_server, zd_server), tmp_path / "one.log", args=ONE)
    second = BridgeProcess(bridge_env(PG_URL, im_server, zd_server), tmp_path / "two.log", args=ONE)
    processes += [first, second]
    first.start()
    second.start()
    set_faults(im_server, outage=True, status=503)
    clients = [SignedClient(first.url), SignedClient(second.url)]
    calls = 0
    for group in groups:
        for n in range(4):
            assert clients[calls % 2].post("/joingroup", {"groupId": group, "userId": f"agent{n}"}).status_code == 202
            calls += 1
        assert clients[calls % 2].post("/leavegroup", {"groupId": group, "userId": "agent0"}).status_code == 202
        calls += 1
    set_faults(im_server)
    for group in groups:
        wait_for(lambda group=group: members_of(im_server, group) == {"cust1", "agent1", "agent2", "agent3"})
    added = [
        r for r in im_state(im_server)["requests"] if r.get("Command") == "add_group_member" and r.get("ErrorCode") == 0
    ]
    assert len(added) == len(groups) * 4, "each queued join ran exactly once across both processes"


def jobs(database_url: str, kind: str) -> list[dict[str, Any]]:
    from sqlalchemy import create_engine, text

    from bridge.store import sync_url

    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            query = text("SELECT status, attempts FROM job WHERE kind = :k ORDER BY id")
            return [dict(r) for r in conn.execute(query, {"k": kind}).mappings()]
    finally:
        engine.dispose()


class SignedClient:
    def __init__(self, url: str):
        self.url = url
        self.second = int(time.time())

    def post(self, target: str, body: dict[str, Any]) -> httpx.Response:
        import json

        raw = json.dumps(body).encode()
        self.second += 1  # every call signed afresh
        headers = auth.signed_call_headers(CALLOUT_SECRET, "POST", target, raw, now=self.second)
        return httpx.post(self.url + target, content=raw, headers=headers, timeout=30)


def wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "condition never became true"
        time.sleep(0.1)
