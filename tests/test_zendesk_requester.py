"""Who a Zendesk ticket's requester is: the customer's own end user (external_id = IM userId), whatever email the
customer types; their chat then lands in the ticket as that end user's comments."""

from __future__ import annotations

from typing import Any

import httpx

from bridge.sandbox.server import BackgroundServer
from tests.conftest import BridgeClient, ZendeskAdmin
from tests.test_convergence import wait_for
from tests.test_im_callbacks import cb_bridge, comments, send  # noqa: F401 - cb_bridge is a fixture

ALICE_EMAIL = "alice@example.com"  # an agent of the Zendesk emulator's account


def create_as_customer(bridge: BridgeClient, user_id: str, **case: Any) -> httpx.Response:
    """What a customer app does: /createticket with the customer's own UserSig."""
    return bridge.http.post(
        "/zendesk/createticket",
        json={"userId": user_id, "caseInfo": {"subject": "Help", **case}},
        headers={"Authorization": f"UserSig {bridge.usersig(user_id)}"},
    )


def user(zd_admin: ZendeskAdmin, user_id: int) -> dict[str, Any]:
    return zd_admin.http.get(f"/users/{user_id}.json").json()["user"]  # type: ignore[no-any-return]


def alice(zd_admin: ZendeskAdmin) -> dict[str, Any]:
    [found] = zd_admin.http.get("/users/search.json", params={"query": f"email:{ALICE_EMAIL}"}).json()["users"]
    return found  # type: ignore[no-any-return]


def test_an_agents_email_does_not_make_the_agent_the_requester(
    helpdesk_bridge: BridgeClient, zd_admin: ZendeskAdmin
) -> None:
    agent = alice(zd_admin)
    r = create_as_customer(helpdesk_bridge, "mallory", name="Mallory", email=ALICE_EMAIL, desc="I am Alice now")
    assert r.status_code == 201, r.text
    ticket = zd_admin.ticket(r.json()["ticketId"])
    requester = user(zd_admin, ticket["requester_id"])
    assert requester["id"] != agent["id"]
    assert (requester["role"], requester["external_id"], requester["name"], requester["email"]) == (
        "end-user",
        "mallory",
        "Mallory",
        None,  # the address is Alice's: the new end user is made without it
    )
    assert alice(zd_admin) == agent, "the agent is left untouched"
    [description] = zd_admin.comments(str(ticket["id"]))
    assert (description["body"], description["author_id"]) == ("I am Alice now", requester["id"])

    # The same customer's next ticket reuses that end user, as it is, whatever name and email come with it.
    again = create_as_customer(helpdesk_bridge, "mallory", name="Alice Agent", email="mallory@example.com")
    assert again.status_code == 201, again.text
    assert zd_admin.ticket(again.json()["ticketId"])["requester_id"] == requester["id"]
    assert user(zd_admin, requester["id"]) == requester


def test_a_new_customers_email_is_kept_on_their_end_user(helpdesk_bridge: BridgeClient, zd_admin: ZendeskAdmin) -> None:
    r = create_as_customer(helpdesk_bridge, "jane-1", name="Jane", email="jane@example.com")
    assert r.status_code == 201, r.text
    requester = user(zd_admin, zd_admin.ticket(r.json()["ticketId"])["requester_id"])
    assert (requester["external_id"], requester["email"], requester["role"]) == (
        "jane-1",
        "jane@example.com",
        "end-user",
    )
    # Another customer typing Jane's address gets an end user of their own.
    other = create_as_customer(helpdesk_bridge, "jane-2", email="jane@example.com")
    assert zd_admin.ticket(other.json()["ticketId"])["requester_id"] != requester["id"]


def test_the_customers_chat_is_the_end_users_comments(
    cb_bridge: BridgeClient,  # noqa: F811 - the fixture imported above
    im_server: BackgroundServer,
    zd_admin: ZendeskAdmin,
) -> None:
    r = create_as_customer(cb_bridge, "mallory", email=ALICE_EMAIL)
    assert r.status_code == 201, r.text
    group = r.json()["groupId"]
    requester = zd_admin.ticket(r.json()["ticketId"])["requester_id"]
    send(im_server, group, "mallory", "Refund everyone, signed Alice")
    wait_for(lambda: len(comments(zd_admin, group)) == 2)
    written = comments(zd_admin, group)[1]
    assert (written["body"], written["author_id"], written["public"]) == (
        "Refund everyone, signed Alice",
        requester,
        True,
    )
    assert user(zd_admin, written["author_id"])["role"] == "end-user"
    assert written["author_id"] not in zd_admin.agents and written["author_id"] != alice(zd_admin)["id"]


def test_a_user_id_that_is_an_agents_external_id_is_refused(
    helpdesk_bridge: BridgeClient, zd_admin: ZendeskAdmin
) -> None:
    """Agents often carry an external_id (single sign-on): a customer with that userId must not become the agent."""
    agent = alice(zd_admin)
    assert zd_admin.http.put(f"/users/{agent['id']}.json", json={"user": {"external_id": "emp-7"}}).status_code == 200
    agent = alice(zd_admin)
    r = create_as_customer(helpdesk_bridge, "emp-7", email="someone@example.com")
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert (error["code"], error["upstream"], error["upstreamCode"]) == (
        "upstream_error",
        "zendesk",
        "requester_conflict",
    )
    assert "emp-7" in error["message"]
    assert alice(zd_admin) == agent
    assert httpx.get(zd_admin.server.url + "/_emulator/state").json()["tickets"] == {}
