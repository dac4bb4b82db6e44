"""Agents appear in the chat under the name their helpdesk gives them: their IM account's Nick is the Zendesk user's
`name` or the Salesforce `User.Name`, read at most once a day per agent, and a helpdesk that cannot answer never
holds up a join. Through the emulators and the real clients."""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bridge.sandbox.server import BackgroundServer
from bridge.store import sync_url
from tests.conftest import (
    BridgeClient,
    SalesforceAdmin,
    ZendeskAdmin,
    group_settled,
    im_call,
    im_state,
    members_of,
    set_faults,
)

CASE = {"subject": "Where is my order", "name": "Jane Customer"}
DAY = 86400


def nick(im: BackgroundServer, account: str) -> str:
    """The Nick IM reports for an account (portrait_get), as a customer's app reads it."""
    body = {"To_Account": [account], "TagList": ["Tag_Profile_IM_Nick"]}
    answer = im_call(im, "portrait_get", body, service="profile")
    assert answer["ErrorCode"] == 0, answer
    items = answer["UserProfileItem"][0]["ProfileItem"]
    return str(items[0]["Value"]) if items else ""


def user_reads(zd: BackgroundServer, user_id: int) -> int:
    """How often the bridge asked Zendesk for one user."""
    requests = httpx.get(zd.url + "/_emulator/state").json()["requests"]
    return sum(1 for r in requests if r["method"] == "GET" and r["path"].startswith(f"/api/v2/users/{user_id}"))


def age_names(bridge: BridgeClient, seconds: float) -> None:
    """Make every stored name `seconds` older: a day passing, as far as the bridge can tell."""
    engine = create_engine(sync_url(bridge.settings.bridge_database_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE agentname SET read_at = read_at - :s"), {"s": seconds})
    engine.dispose()


def open_zendesk(bridge: BridgeClient, user: str = "cust1") -> str:
    r = bridge.post("/zendesk/createticket", {"userId": user, "caseInfo": CASE})
    assert r.status_code == 201, r.text
    group_settled(bridge.settings.im_api_base, r.json()["groupId"])
    return str(r.json()["ticketId"])


def assign(bridge: BridgeClient, zd_admin: ZendeskAdmin, ticket: str, agent: Any) -> dict[str, Any]:
    zd_admin.update(ticket, assignee_id=agent)
    r = bridge.post("/assignment", {"groupId": f"ZENDESK#{ticket}", "newOwnerId": str(agent)})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_zendesk_agent_nick_is_their_name_and_a_rename_is_read_after_a_day(
    helpdesk_bridge: BridgeClient, im_server: BackgroundServer, zd_server: BackgroundServer, zd_admin: ZendeskAdmin
) -> None:
    alice, bob = zd_admin.agents[:2]
    first = open_zendesk(helpdesk_bridge)
    assert assign(helpdesk_bridge, zd_admin, first, alice)["joined"] == [f"zd_{alice}"]
    assert nick(im_server, f"zd_{alice}") == "Alice Agent"
    # The customer keeps the name given at /createticket.
    assert nick(im_server, "cust1") == "Jane Customer"
    assert user_reads(zd_server, alice) == 1

    # Renamed in Zendesk: within the day the bridge neither asks again nor changes the Nick.
    r = zd_admin.http.put(f"/users/{alice}.json", json={"user": {"name": "Dana from Support"}})
    assert r.status_code == 200, r.text
    second = open_zendesk(helpdesk_bridge, "cust2")
    assign(helpdesk_bridge, zd_admin, second, alice)
    assert nick(im_server, f"zd_{alice}") == "Alice Agent"
    assert user_reads(zd_server, alice) == 1

    # A day later, the next join reads the name again and the customer sees the new one.
    age_names(helpdesk_bridge, DAY + 1)
    third = open_zendesk(helpdesk_bridge, "cust3")
    assign(helpdesk_bridge, zd_admin, third, alice)
    assert nick(im_server, f"zd_{alice}") == "Dana from Support"
    assert user_reads(zd_server, alice) == 2
    # Set through portrait_set (account_import is documented to create accounts, not to update them).
    sets = [r for r in im_state(im_server)["requests"] if r["Command"] == "portrait_set"]
    assert {"Tag": "Tag_Profile_IM_Nick", "Value": "Dana from Support"} in sets[-1]["Body"]["ProfileItem"]

    # Another agent's name is their own.
    assign(helpdesk_bridge, zd_admin, first, bob)
    assert nick(im_server, f"zd_{bob}") == "Bob Agent"
    assert nick(im_server, "cust1") == "Jane Customer"


def test_salesforce_agent_nick_is_user_name(
    helpdesk_bridge: BridgeClient, im_server: BackgroundServer, sf_admin: SalesforceAdmin
) -> None:
    r = helpdesk_bridge.post("/salesforce/createticket", {"userId": "cust9", "caseInfo": CASE})
    case_id = r.json()["ticketId"]
    agent = sf_admin.state["agent_ids"][0]
    sf_admin.update_case(case_id, OwnerId=agent)
    events = {"events": [{"type": "owner_changed", "caseId": case_id, "ownerId": agent}]}
    assert helpdesk_bridge.post("/salesforce/events", events).status_code == 202
    deadline = time.time() + 10
    while f"sf_{agent}" not in members_of(im_server, case_id):
        assert time.time() < deadline, "the owner never joined"
        time.sleep(0.1)
    name = next(u["Name"] for u in sf_admin.state["users"].values() if u["Id"] == agent)
    assert nick(im_server, f"sf_{agent}") == name == "Alice Agent"
    # Renamed by an admin; a day later the next convergence carries the new name to IM.
    r = sf_admin.http.patch(f"/sobjects/User/{agent}", json={"FirstName": "Dana"})
    assert r.status_code == 204, r.text
    age_names(helpdesk_bridge, DAY + 1)
    again = {"events": [{"type": "owner_changed", "caseId": case_id, "ownerId": agent, "eventId": "e2"}]}
    assert helpdesk_bridge.post("/salesforce/events", again).status_code == 202
    deadline = time.time() + 10
    while nick(im_server, f"sf_{agent}") != "Dana Agent":
        assert time.time() < deadline, "the new name never reached IM"
        time.sleep(0.1)


def test_a_helpdesk_that_cannot_name_the_agent_does_not_hold_up_the_join(
    helpdesk_bridge: BridgeClient, im_server: BackgroundServer, zd_server: BackgroundServer, zd_admin: ZendeskAdmin
) -> None:
    alice = zd_admin.agents[0]
    ticket = open_zendesk(helpdesk_bridge)
    zd_admin.update(ticket, assignee_id=alice)
    # Zendesk answers 503 to user reads (tickets still work) for a while.
    set_faults(zd_server, outage=True, status=503, paths=[f"/api/v2/users/{alice}"])
    r = helpdesk_bridge.post("/assignment", {"groupId": f"ZENDESK#{ticket}", "newOwnerId": str(alice)})
    assert r.status_code == 200 and r.json()["joined"] == [f"zd_{alice}"], r.text
    assert f"zd_{alice}" in members_of(im_server, f"ZENDESK#{ticket}")
    assert nick(im_server, f"zd_{alice}") == ""
    # Zendesk is back: the bridge asks again on its own, and the agent gets their name.
    set_faults(zd_server)
    deadline = time.time() + 15
    while nick(im_server, f"zd_{alice}") != "Alice Agent":
        assert time.time() < deadline, "the agent's name was never read again"
        time.sleep(0.2)
