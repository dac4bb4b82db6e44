"""Who can be in a ticket's group: only the customer and the ticket's agent, whatever an app user does with the client
SDK (ask to join, invite, take the group ID first) and whatever userId a customer app chooses."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.sandbox.server import BackgroundServer
from connectors.salesforce import ids
from tests.conftest import (
    BridgeClient,
    BridgeFactory,
    group_settled,
    helpdesk_settings,
    im_call,
    im_client,
    im_state,
    make_group,
    members_of,
    set_faults,
)


def open_ticket(bridge: BridgeClient, provider: str, user: str, subject: str = "Printer on fire") -> str:
    r = bridge.post(f"/{provider}/createticket", {"userId": user, "caseInfo": {"subject": subject}})
    assert r.status_code == 201, r.text
    group_settled(bridge.settings.im_api_base, r.json()["groupId"])
    return str(r.json()["groupId"])


def next_zendesk_group(zd_server: BackgroundServer) -> str:
    return f"ZENDESK#{httpx.get(zd_server.url + '/_emulator/state').json()['next_id']['ticket']}"


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "condition never became true"
        time.sleep(0.05)


# --- what an app user can do with the client SDK ------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["zendesk", "salesforce"])
def test_a_stranger_cannot_ask_to_join_a_tickets_group(
    helpdesk_bridge: BridgeClient, im_server: BackgroundServer, provider: str
) -> None:
    group = open_ticket(helpdesk_bridge, provider, "cust-a")
    answer = im_client(im_server, "stranger", "apply_join", {"GroupId": group})
    assert answer["ErrorCode"] == 10007, answer  # DisableApply: refused outright, not even waiting for approval
    assert members_of(im_server, group) == {"cust-a"}
    assert im_state(im_server)["groups"][group]["Applications"] == []


def test_a_member_cannot_invite_a_stranger_into_a_tickets_group(
    helpdesk_bridge: BridgeClient, im_server: BackgroundServer
) -> None:
    group = open_ticket(helpdesk_bridge, "zendesk", "cust-b")
    im_call(im_server, "account_import", {"UserID": "stranger"}, service="im_open_login_svc")
    invite = {"GroupId": group, "MemberList": [{"Member_Account": "stranger"}]}
    assert im_client(im_server, "cust-b", "invite", invite)["ErrorCode"] == 10007  # a Public group's member
    assert members_of(im_server, group) == {"cust-b"}


def test_a_squatted_group_id_is_dismissed_and_the_tickets_group_created_afresh(
    helpdesk_bridge: BridgeClient, im_server: BackgroundServer, zd_server: BackgroundServer, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.service")
    group_id = next_zendesk_group(zd_server)  # predictable: ZENDESK#<next ticket id>
    squat = {"GroupId": group_id, "Type": "Public", "Name": "Free chat", "ApplyJoinOption": "FreeAccess"}
    assert im_client(im_server, "squatter", "create_group", squat)["ErrorCode"] == 0
    assert im_client(im_server, "accomplice", "apply_join", {"GroupId": group_id})["JoinedStatus"] == "JoinedSuccess"

    r = helpdesk_bridge.post("/zendesk/createticket", {"userId": "victim", "caseInfo": {"subject": "Card stolen"}})
    assert r.status_code == 201, r.text
    assert r.json()["groupId"] == group_id
    group = im_state(im_server)["groups"][group_id]
    assert (group["Owner_Account"], group["ApplyJoinOption"], group["Name"]) == (
        "",
        "DisableApply",
        f"Support ticket {r.json()['ticketId']}",
    )
    assert members_of(im_server, group_id) == {"victim"}
    assert im_client(im_server, "squatter", "apply_join", {"GroupId": group_id})["ErrorCode"] == 10007
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(group_id in w and "squatter" in w for w in warnings), warnings


def test_a_squatted_group_that_cannot_be_reclaimed_fails_clearly(
    helpdesk_bridge: BridgeClient, im_server: BackgroundServer, zd_server: BackgroundServer
) -> None:
    group_id = next_zendesk_group(zd_server)
    assert im_client(im_server, "squatter", "create_group", {"GroupId": group_id, "Name": "Mine"})["ErrorCode"] == 0
    set_faults(im_server, error_rate=1.0, code=10007, paths=["/v4/group_open_http_svc/destroy_group"])
    r = helpdesk_bridge.post("/zendesk/createticket", {"userId": "victim2", "caseInfo": {"subject": "Help"}})
    set_faults(im_server)
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert (error["code"], error["upstream"], error["upstreamCode"]) == ("upstream_error", "im", 10007)
    assert group_id in error["message"] and "squatter" not in error["message"]  # the log names them, not the answer
    assert members_of(im_server, group_id) == {"squatter"}  # never adopted: the customer was not put in it


def test_a_squatted_group_while_im_is_down_is_reclaimed_by_the_job_queue(
    helpdesk_bridge: BridgeClient, im_server: BackgroundServer, zd_server: BackgroundServer
) -> None:
    group_id = next_zendesk_group(zd_server)
    assert im_client(im_server, "squatter", "create_group", {"GroupId": group_id, "Name": "Mine"})["ErrorCode"] == 0
    set_faults(im_server, outage=True, status=503, paths=["/v4/group_open_http_svc/destroy_group"])
    r = helpdesk_bridge.post("/zendesk/createticket", {"userId": "victim3", "caseInfo": {"subject": "Help"}})
    assert r.status_code == 202, r.text
    set_faults(im_server)
    wait_for(lambda: im_state(im_server)["groups"][group_id]["Owner_Account"] == "")
    wait_for(lambda: members_of(im_server, group_id) == {"victim3"})


# --- one account namespace for customers, another for agents -------------------------------------------------------


def test_reserved_user_ids_are_refused(bridge_factory: BridgeFactory, zd_server: BackgroundServer, im_server) -> None:
    client = bridge_factory(**helpdesk_settings(zd_url=zd_server.url))
    for user_id in ("zd_1", "sf_x", "sf_0055g00000XyZabAAF", "administrator"):
        body = {"userId": user_id, "caseInfo": {"subject": "I am an agent, honest"}}
        for path in ("/createticket", "/zendesk/createticket"):
            r = client.post(path, body)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "reserved_user_id", r.text
        own_sig = {"Authorization": f"UserSig {client.usersig(user_id)}"}
        r = client.http.post("/zendesk/createticket", json=body, headers=own_sig)
        assert r.status_code == 400 and r.json()["error"]["code"] == "reserved_user_id", r.text
    assert httpx.get(zd_server.url + "/_emulator/state").json()["tickets"] == {}
    assert set(im_state(im_server)["accounts"]) == {"administrator"}
    # Prefixes are per deployment: with others configured, the defaults are ordinary ids again.
    other = bridge_factory(
        **helpdesk_settings(zd_url=zd_server.url), zendesk_agent_prefix="agent-zd-", salesforce_agent_prefix="agent-sf-"
    )
    assert other.post("/createticket", {"userId": "zd_1", "caseInfo": {"subject": "Hi"}}).status_code == 201
    assert other.post("/createticket", {"userId": "agent-zd-1", "caseInfo": {"subject": "Hi"}}).status_code == 400


def test_zendesk_agents_join_as_their_own_accounts_never_as_a_customer(
    helpdesk_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any
) -> None:
    agent = zd_admin.agents[0]
    namesake = open_ticket(helpdesk_bridge, "zendesk", str(agent))  # a customer whose userId is the agent's id
    group = open_ticket(helpdesk_bridge, "zendesk", "cust-c")
    zd_admin.update(group.removeprefix("ZENDESK#"), assignee_id=agent)
    r = helpdesk_bridge.post("/assignment", {"groupId": group, "newOwnerId": str(agent)})
    assert r.status_code == 200 and r.json()["joined"] == [f"zd_{agent}"], r.text
    assert members_of(im_server, group) == {"cust-c", f"zd_{agent}"}
    assert members_of(im_server, namesake) == {str(agent)}  # the customer is in their own ticket's group only
    assert helpdesk_bridge.get(f"/links/{group.replace('#', '%23')}").json()["agents"] == [f"zd_{agent}"]


def test_assignment_on_a_group_without_a_link_applies_agent_accounts(
    helpdesk_bridge: BridgeClient, im_server: BackgroundServer, sf_admin: Any
) -> None:
    a1, a2 = sf_admin.state["agent_ids"][:2]
    case_group = ids.to_18("500000000000077")  # a Case Id: the Salesforce connector's group, opened elsewhere
    make_group(im_server, case_group, "cust-u")
    r = helpdesk_bridge.post("/assignment", {"groupId": case_group, "newOwnerId": a1[:15]})
    assert r.status_code == 200 and r.json()["joined"] == [f"sf_{a1}"], r.text
    r = helpdesk_bridge.post("/assignment", {"groupId": case_group, "newOwnerId": a2, "oldOwnerId": a1})
    assert (r.json()["joined"], r.json()["left"]) == ([f"sf_{a2}"], [f"sf_{a1}"])
    queue = sf_admin.state["default_queue_id"]
    r = helpdesk_bridge.post("/assignment", {"groupId": case_group, "newOwnerId": queue, "oldOwnerId": a2})
    assert (r.json()["joined"], r.json()["left"]) == ([], [f"sf_{a2}"])
    assert members_of(im_server, case_group) == {"cust-u"}
    make_group(im_server, "G-nobodys", "cust-v")
    r = helpdesk_bridge.post("/assignment", {"groupId": "G-nobodys", "newOwnerId": a1})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_group", r.text
    assert members_of(im_server, "G-nobodys") == {"cust-v"}


# --- what a group shows to anyone who looks it up ----------------------------------------------------------------


def test_group_name_follows_the_template_and_keeps_the_subject_private(
    bridge_factory: BridgeFactory, zd_server: BackgroundServer, im_server: BackgroundServer, tmp_path: Path
) -> None:
    default = bridge_factory(**helpdesk_settings(zd_url=zd_server.url))
    r = default.post("/zendesk/createticket", {"userId": "cust-n", "caseInfo": {"subject": "My diagnosis: gout"}})
    assert r.status_code == 201, r.text
    profile = im_client(im_server, "stranger", "get_group_profile", {"GroupId": r.json()["groupId"]})["GroupInfo"]
    assert profile["Name"] == f"Support ticket {r.json()['ticketId']}"
    assert "gout" not in json.dumps(profile)

    custom = bridge_factory(
        **helpdesk_settings(zd_url=zd_server.url),
        bridge_group_name="{subject} (#{ticketId})",
        database_url=f"sqlite:///{tmp_path / 'custom.db'}",
    )
    r = custom.post("/zendesk/createticket", {"userId": "cust-m", "caseInfo": {"subject": "Printer on fire"}})
    assert r.status_code == 201, r.text
    assert im_state(im_server)["groups"][r.json()["groupId"]]["Name"] == f"Printer on fire (#{r.json()['ticketId']})"
