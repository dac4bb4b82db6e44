"""A third connector needs no edit of the core: the toy connector, installed only through its entry point, gets its
settings (TOY_*), its tickets and groups, its inbound route, its OpenAPI operation and its subcommand."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bridge.config import ConfigError, load_settings
from bridge.sandbox.server import BackgroundServer
from connectors.base import TicketStatus
from tests.conformance import toy_connector
from tests.conftest import BridgeFactory, im_state, members_of
from tests.test_cli import run
from tests.test_convergence import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_the_bridge_runs_a_toy_ticket(
    bridge_factory: BridgeFactory, im_server: BackgroundServer, toy_desk: str
) -> None:
    bridge = bridge_factory(toy_desk=toy_desk)
    desk = toy_connector.DESKS[toy_desk]
    opened = bridge.post("/toy/createticket", {"userId": "cust1", "caseInfo": {"subject": "Toy broke"}})
    assert opened.status_code == 201, opened.text
    assert opened.json()["provider"] == "toy" and opened.json()["groupId"] == "TOY-1"
    assert desk.tickets["1"].requester == "cust1" and members_of(im_server, "TOY-1") == {"cust1"}
    assert bridge.post("/createticket", {"userId": "cust2", "caseInfo": {"subject": "the only one"}}).status_code == 201

    desk.tickets["1"].owner = "ann"
    event = {"events": [{"ticketId": "1", "eventId": "e-1"}]}
    accepted = bridge.post("/toy/events", event)
    assert (accepted.status_code, accepted.json()) == (202, {"outcomes": ["queued"]}), accepted.text
    wait_for(lambda: members_of(im_server, "TOY-1") == {"cust1", "toy_ann"})
    assert bridge.post("/toy/events", event).json() == {"outcomes": ["duplicate"]}

    desk.tickets["1"].status = TicketStatus.CLOSED
    assert bridge.post("/toy/events", {"events": [{"ticketId": "1", "eventId": "e-2"}]}).status_code == 202
    wait_for(lambda: im_state(im_server)["groups"]["TOY-1"]["MuteAllMember"] == "On")
    assert members_of(im_server, "TOY-1") == {"cust1"}

    reserved = bridge.post("/toy/createticket", {"userId": "toy_ann", "caseInfo": {"subject": "I am an agent"}})
    assert reserved.status_code == 400 and reserved.json()["error"]["code"] == "reserved_user_id"
    assert "/toy/events" in bridge.http.get("/openapi.json").json()["paths"]


def test_the_toy_route_answers_for_itself_when_not_enabled(bridge_factory: BridgeFactory, toy_desk: str) -> None:
    bridge = bridge_factory()
    r = bridge.post("/toy/events", {"events": [{"ticketId": "1", "eventId": "e-1"}]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_connector"


def test_toy_settings_are_checked_with_the_others(toy_desk: str) -> None:
    base: dict[str, Any] = {"im_sdkappid": 1, "im_secret_key": "k" * 20, "_env_file": None}
    with pytest.raises(ConfigError, match="TOY_AGENT_PREFIX must be 1 to 12"):
        load_settings(**base, toy_agent_prefix="toy agent")
    with pytest.raises(ConfigError, match=r"TOY_AGENT_PREFIX \('zd_toy'\) and ZENDESK_AGENT_PREFIX \('zd_'\)"):
        load_settings(**base, toy_agent_prefix="zd_toy")
    with pytest.raises(ConfigError, match="BRIDGE_DEFAULT_CONNECTOR='toy' is not an enabled connector"):
        load_settings(**base, bridge_default_connector="toy")
    assert load_settings(**base, toy_desk=toy_desk, bridge_default_connector="toy").default_connector == "toy"


def test_the_toy_subcommand(toy_desk: str, tmp_path: Path) -> None:
    site = toy_connector.install(tmp_path / "site")
    path = os.pathsep.join([str(site), str(ROOT)])
    result = run(["toy", "desk"], {"TOY_DESK": "front-desk", "PYTHONPATH": path}, tmp_path)
    assert (result.returncode, result.stdout.decode().strip()) == (0, "toy desk: front-desk"), result.stderr
