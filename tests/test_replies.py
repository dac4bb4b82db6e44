"""Agents' replies reach the customer's chat: a helpdesk comment event, read back from the helpdesk, sent into the
group as the agent, once; private notes and the bridge's own comments never; no echo in either direction. Through
the emulators over real HTTP, with IM calling the bridge back as Tencent does."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import replies
from bridge.sandbox.server import BackgroundServer
from bridge.states import JobKind, JobStatus
from connectors.base import Attachment, Reply
from connectors.zendesk import setup as zendesk_setup
from tests.conftest import (
    CALLBACK_TOKEN,
    BridgeClient,
    BridgeFactory,
    helpdesk_settings,
    im_call,
    im_state,
    members_of,
    set_faults,
)
from tests.test_convergence import sf, wait_for
from tests.test_im_callbacks import callback, case_comments, message, open_ticket, send
from tests.test_webhooks import WEBHOOK_SECRET, jobs, post_webhook

V = "/services/data/v62.0"


@pytest.fixture
def cb_bridge(
    bridge_factory: BridgeFactory, im_server: BackgroundServer, sf_server: BackgroundServer, zd_server: BackgroundServer
) -> BridgeClient:
    """Both helpdesks, Zendesk's webhook secret, and the IM emulator calling back into this bridge."""
    bridge = bridge_factory(
        **helpdesk_settings(sf_server.url, zd_server.url),
        im_callback_token=CALLBACK_TOKEN,
        zendesk_webhook_secret=WEBHOOK_SECRET,
    )
    httpx.post(
        im_server.url + "/_emulator/config",
        json={"callback_url": bridge.server.url + "/callbacks/im", "callback_token": CALLBACK_TOKEN},
    ).raise_for_status()
    return bridge


def group_messages(im_server: BackgroundServer, group_id: str) -> list[dict[str, Any]]:
    """The group's history: not the online-only messages (the greeting), which IM does not keep."""
    return [m for m in im_state(im_server)["messages"].get(group_id, []) if not m.get("OnlineOnlyFlag")]


def texts_from(im_server: BackgroundServer, group_id: str, sender: str) -> list[str]:
    return [
        "\n".join(e["MsgContent"].get("Text", "") for e in m["MsgBody"])
        for m in group_messages(im_server, group_id)
        if m["From_Account"] == sender
    ]


def settled(bridge: BridgeClient) -> None:
    """Every job the bridge stored has run (done, or failed for good)."""
    ended = (JobStatus.DONE, JobStatus.FAILED, JobStatus.DEAD)
    wait_for(lambda: all(j["status"] in ended for j in jobs(bridge)))


# --- Salesforce ------------------------------------------------------------------------------------------------


def sf_agent_writes(sf_server: BackgroundServer, agent: str, case_id: str, body: str, published: bool = True) -> str:
    """An agent adds a CaseComment with their own session: Salesforce records the agent as its author."""
    token = httpx.post(sf_server.url + "/_emulator/sessions", json={"userId": agent}).json()["access_token"]
    response = httpx.post(
        f"{sf_server.url}{V}/sobjects/CaseComment/",
        json={"ParentId": case_id, "CommentBody": body, "IsPublished": published},
        headers={"Authorization": "Bearer " + token},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def comment_added(bridge: BridgeClient, case_id: str, *comment_ids: str, event_id: str | None = None) -> None:
    """What the Apex CaseComment trigger sends: one event per comment in the signed batch."""
    events = [
        {"type": "comment_added", "caseId": case_id, "commentId": c, "eventId": event_id or f"cc-{c}-{time.time_ns()}"}
        for c in comment_ids
    ]
    r = bridge.post("/salesforce/events", {"events": events})
    assert r.status_code == 202, r.text


def assigned(bridge: BridgeClient, sf_admin: Any, case_id: str, agent: str) -> None:
    sf_admin.update_case(case_id, OwnerId=agent)
    r = bridge.post("/assignment", {"groupId": case_id, "newOwnerId": agent})
    assert r.status_code == 200, r.text


def test_a_published_case_comment_arrives_once_as_its_agent(
    cb_bridge: BridgeClient, im_server: BackgroundServer, sf_server: BackgroundServer, sf_admin: Any
) -> None:
    case_id = open_ticket(cb_bridge, "salesforce")
    alice = sf_admin.state["agent_ids"][0]
    assigned(cb_bridge, sf_admin, case_id, alice)
    reply = sf_agent_writes(sf_server, alice, case_id, "Have you tried turning it off and on?")
    private = sf_agent_writes(sf_server, alice, case_id, "Customer seems confused", published=False)
    comment_added(cb_bridge, case_id, reply, private)
    comment_added(cb_bridge, case_id, reply[:15])  # redelivered, with another eventId and the 15-character Id
    comment_added(cb_bridge, case_id, reply)
    wait_for(lambda: texts_from(im_server, case_id, sf(alice)) != [])
    settled(cb_bridge)
    assert texts_from(im_server, case_id, sf(alice)) == ["Have you tried turning it off and on?"]
    [sent] = [m for m in group_messages(im_server, case_id) if m["From_Account"] == sf(alice)]
    assert replies.is_relayed(sent["CloudCustomData"])
    relays = jobs(cb_bridge, JobKind.RELAY_REPLY)
    assert len(relays) == 2  # the reply (its redeliveries are the same job, 15 or 18 characters) and the private one
    # Never written back into the Case (Alice's own comment is the one there): IM's callback for it was recognised.
    time.sleep(0.5)
    assert [c["CommentBody"] for c in case_comments(sf_server, case_id) if "turning it off" in c["CommentBody"]] == [
        "Have you tried turning it off and on?"
    ]


def test_the_bridges_own_comments_and_other_cases_are_never_relayed(
    cb_bridge: BridgeClient, im_server: BackgroundServer, sf_server: BackgroundServer, sf_admin: Any
) -> None:
    case_id, other = open_ticket(cb_bridge, "salesforce"), open_ticket(cb_bridge, "salesforce", user="cust2")
    alice = sf_admin.state["agent_ids"][0]
    assigned(cb_bridge, sf_admin, case_id, alice)
    send(im_server, case_id, "cust1", "It smokes")
    wait_for(lambda: len(case_comments(sf_server, case_id)) == 1)
    [echo] = case_comments(sf_server, case_id)
    elsewhere = sf_agent_writes(sf_server, alice, other, "For the other customer")
    before = len(group_messages(im_server, case_id))
    comment_added(cb_bridge, case_id, echo["Id"], elsewhere)  # the second names the wrong Case: never trusted
    settled(cb_bridge)
    assert len(group_messages(im_server, case_id)) == before
    assert texts_from(im_server, other, sf(alice)) == []
    # The bridge's own comment is known at once; one not on this Case is looked for a few times (a helpdesk
    # replica may lag behind its event), then given up.
    assert [(j["status"], j["attempts"]) for j in jobs(cb_bridge, JobKind.RELAY_REPLY)] == [
        (JobStatus.DONE, 1),
        (JobStatus.DONE, replies.LOOKS_FOR_MISSING),
    ]


def test_a_reply_to_a_closed_case_is_not_sent(
    cb_bridge: BridgeClient, im_server: BackgroundServer, sf_server: BackgroundServer, sf_admin: Any
) -> None:
    case_id = open_ticket(cb_bridge, "salesforce")
    alice = sf_admin.state["agent_ids"][0]
    assigned(cb_bridge, sf_admin, case_id, alice)
    sf_admin.update_case(case_id, Status="Closed")
    r = cb_bridge.post("/salesforce/events", {"events": [{"type": "status_changed", "caseId": case_id}]})
    assert r.status_code == 202
    wait_for(lambda: sf(alice) not in members_of(im_server, case_id))
    comment_added(cb_bridge, case_id, sf_agent_writes(sf_server, alice, case_id, "Anything else?"))
    settled(cb_bridge)
    assert texts_from(im_server, case_id, sf(alice)) == []
    [relay] = jobs(cb_bridge, JobKind.RELAY_REPLY)
    assert relay["status"] == JobStatus.DONE  # skipped, logged: the group is closed


def test_a_reply_by_an_agent_outside_the_group_and_one_to_a_vanished_group(
    cb_bridge: BridgeClient, im_server: BackgroundServer, sf_server: BackgroundServer, sf_admin: Any
) -> None:
    """Bob answers on Alice's Case: the customer gets it from the bridge, under Bob's name, and Bob is not added.
    A reply to a group IM no longer has (dismissed outside the bridge) is skipped, not retried for days."""
    case_id = open_ticket(cb_bridge, "salesforce")
    alice, bob = sf_admin.state["agent_ids"][:2]
    assigned(cb_bridge, sf_admin, case_id, alice)
    comment_added(cb_bridge, case_id, sf_agent_writes(sf_server, bob, case_id, "Alice is away, I can help"))
    wait_for(lambda: texts_from(im_server, case_id, "administrator") != [])
    assert texts_from(im_server, case_id, "administrator") == ["Bob Agent:\nAlice is away, I can help"]
    assert members_of(im_server, case_id) == {"cust1", sf(alice)}

    assert im_call(im_server, "destroy_group", {"GroupId": case_id})["ErrorCode"] == 0
    comment_added(cb_bridge, case_id, sf_agent_writes(sf_server, alice, case_id, "Still there?"))
    settled(cb_bridge)
    assert [j["status"] for j in jobs(cb_bridge, JobKind.RELAY_REPLY)] == [JobStatus.DONE, JobStatus.DONE]


@pytest.mark.parametrize(
    "event",
    [
        {"type": "comment_added", "caseId": "500000000000001AAA"},
        {"type": "comment_added", "caseId": "500000000000001AAA", "commentId": "005000000000001"},
        {"type": "comment_added", "caseId": "500000000000001AAA", "commentId": "00a' OR Id != '"},
    ],
)
def test_comment_events_without_a_comment_id_are_refused(cb_bridge: BridgeClient, event: dict[str, Any]) -> None:
    r = cb_bridge.post("/salesforce/events", {"events": [event]})
    assert r.status_code == 400, r.text
    assert jobs(cb_bridge, JobKind.RELAY_REPLY) == []


# --- Zendesk ---------------------------------------------------------------------------------------------------


def zd_agent_comments(
    zd_admin: Any, ticket: str, agent: int, body: str, public: bool = True, files: tuple[str, ...] = ()
) -> None:
    """An agent answers in Zendesk (not through the bridge: another client), with files uploaded first."""
    tokens = []
    for name in files:
        upload = zd_admin.http.post("/uploads.json", params={"filename": name}, content=b"data of " + name.encode())
        tokens.append(upload.json()["upload"]["token"])
    comment: dict[str, Any] = {"body": body, "public": public, "author_id": agent}
    if tokens:
        comment["uploads"] = tokens
    zd_admin.update(ticket, comment=comment)


@pytest.fixture
def zd_ticket(cb_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any) -> tuple[str, str, int]:
    """A ticket opened through the bridge, with `zendesk setup` done and the ticket assigned to Alice in Zendesk."""
    zendesk_setup.setup(cb_bridge.settings.connectors["zendesk"], cb_bridge.server.url)  # type: ignore[arg-type]
    group = open_ticket(cb_bridge, "zendesk")
    ticket, alice = group.removeprefix("ZENDESK#"), zd_admin.agents[0]
    zd_admin.update(ticket, assignee_id=alice)
    wait_for(lambda: members_of(im_server, group) == {"cust1", f"zd_{alice}"})
    return group, ticket, alice


def test_a_zendesk_agents_public_comment_arrives_once_as_the_agent(
    cb_bridge: BridgeClient, im_server: BackgroundServer, zd_server: BackgroundServer, zd_admin: Any, zd_ticket: Any
) -> None:
    group, ticket, alice = zd_ticket
    zd_agent_comments(zd_admin, ticket, alice, "Internal: customer is on the gold plan", public=False)
    zd_agent_comments(zd_admin, ticket, alice, "Here is your invoice", files=("invoice.pdf", "receipt.png"))
    wait_for(lambda: texts_from(im_server, group, f"zd_{alice}") != [])
    settled(cb_bridge)
    [sent] = texts_from(im_server, group, f"zd_{alice}")
    urls = [a["content_url"] for a in zd_admin.comments(ticket)[-1]["attachments"]]
    assert sent.splitlines() == ["Here is your invoice", f"invoice.pdf: {urls[0]}", f"receipt.png: {urls[1]}"]
    assert "gold plan" not in json.dumps(group_messages(im_server, group))
    # Zendesk delivers the same event again (its retry, signed afresh): still one message.
    [delivery] = [
        d for d in httpx.get(zd_server.url + "/_emulator/state").json()["deliveries"] if "invoice" in d["body"]
    ]
    time.sleep(1.1)  # another second: a new signature, not a replay
    assert post_webhook(cb_bridge, json.loads(delivery["body"])).json()["duplicate"] is True
    settled(cb_bridge)
    assert len(texts_from(im_server, group, f"zd_{alice}")) == 1


def test_the_api_users_comments_are_the_bridges_own(
    cb_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any, zd_ticket: Any
) -> None:
    """A comment by the user ZENDESK_EMAIL names (the bridge's API user, the author of a comment that gathers several
    chat senders) is the bridge's, whatever client wrote it."""
    group, ticket, alice = zd_ticket
    api_user = zd_admin.http.get("/users/me.json").json()["user"]["id"]
    zd_agent_comments(zd_admin, ticket, api_user, "Customer (cust1):\nhello\nAgent (1):\nhi")
    zd_agent_comments(zd_admin, ticket, alice, "A real answer")
    wait_for(lambda: texts_from(im_server, group, f"zd_{alice}") == ["A real answer"])
    settled(cb_bridge)
    assert [m["From_Account"] for m in group_messages(im_server, group)] == [f"zd_{alice}"]
    assert len(jobs(cb_bridge, JobKind.RELAY_REPLY)) == 2


def test_no_echo_in_a_conversation_going_both_ways(
    cb_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any, zd_ticket: Any
) -> None:
    """Customer and agent take turns, four times each: every message appears once in the chat and once in the
    ticket, and nothing the bridge wrote on one side comes back to it from the other."""
    group, ticket, alice = zd_ticket
    agent = f"zd_{alice}"
    turns = []
    for n in range(4):
        send(im_server, group, "cust1", f"customer says {n}")
        wait_for(lambda n=n: any(c["body"] == f"customer says {n}" for c in zd_admin.comments(ticket)))
        zd_agent_comments(zd_admin, ticket, alice, f"agent says {n}")
        wait_for(lambda n=n: f"agent says {n}" in texts_from(im_server, group, agent))
        turns += [f"customer says {n}", f"agent says {n}"]
    # The agent also types in the chat (as from the console): the bridge writes it into the ticket as the agent's
    # comment, and Zendesk reports that comment like any other. It is the bridge's own: not sent back.
    send(im_server, group, agent, "agent chats")
    wait_for(lambda: any(c["body"] == "agent chats" for c in zd_admin.comments(ticket)))
    turns.append("agent chats")
    settled(cb_bridge)
    time.sleep(0.5)  # any late echo would be a callback or a webhook delivery away
    settled(cb_bridge)
    assert [texts_from_message(m) for m in group_messages(im_server, group)] == turns
    assert [c["body"] for c in zd_admin.comments(ticket)][1:] == turns  # after the ticket's description
    assert zd_admin.comments(ticket)[-1]["author_id"] == alice
    # Each agent's comment looked at once (four relayed, the console's one the bridge's own); the customer's, which
    # Zendesk reports as an end user's, not even read back.
    assert len(jobs(cb_bridge, JobKind.RELAY_REPLY)) == 5

    # A callback for a relayed reply that does not say it came through REST (forged, or a platform quirk): IM's
    # own copy of the message carries the bridge's mark, so it still never becomes a comment.
    relayed = next(m for m in group_messages(im_server, group) if m["From_Account"] == agent)
    forged = message(group, agent, texts_from_message(relayed), seq=relayed["MsgSeq"])
    assert callback(cb_bridge, forged).json()["ErrorCode"] == 0
    settled(cb_bridge)
    assert [c["body"] for c in zd_admin.comments(ticket)][1:] == turns


def texts_from_message(message: dict[str, Any]) -> str:
    return "\n".join(e["MsgContent"].get("Text", "") for e in message["MsgBody"])


def test_zendesk_comment_events_that_need_nothing(cb_bridge: BridgeClient, zd_ticket: Any) -> None:
    _, ticket, _ = zd_ticket
    envelope = {
        "type": "zen:event-type:ticket.comment_added",
        "id": "e1",
        "time": "2026-01-01T00:00:00Z",
        "subject": f"zen:ticket:{ticket}",
        "account_id": 1,
        "zendesk_event_version": "2022-11-06",
        "detail": {"id": ticket},
    }
    private = {**envelope, "event": {"comment": {"id": 123, "body": "x", "is_public": False, "author": {}}}}
    assert post_webhook(cb_bridge, private).json()["ignored"] == "event comment_added needs nothing"
    customer = {**envelope, "event": {"comment": {"id": 124, "is_public": True, "author": {"is_staff": False}}}}
    assert post_webhook(cb_bridge, customer).json()["ignored"] == "event comment_added needs nothing"
    other = {**envelope, "type": "zen:event-type:ticket.priority_changed", "event": {"previous": "LOW"}}
    assert post_webhook(cb_bridge, other).status_code == 200
    for bad in ({**envelope, "event": {}}, {**envelope, "event": {"comment": {"id": "x1"}}}, {**envelope, "detail": 5}):
        r = post_webhook(cb_bridge, bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", r.text
    assert jobs(cb_bridge, JobKind.RELAY_REPLY) == []


def test_a_reply_survives_helpdesk_and_im_failures(
    cb_bridge: BridgeClient, im_server: BackgroundServer, zd_server: BackgroundServer, zd_admin: Any, zd_ticket: Any
) -> None:
    """Zendesk answers 503 when the comment is read back, then IM fails the send twice (a retriable ErrorCode):
    the job retries on its schedule and the reply arrives once."""
    group, ticket, alice = zd_ticket
    set_faults(zd_server, outage=True, paths=[f"/api/v2/tickets/{ticket}/comments"], count=1, status=503)
    set_faults(im_server, outage=True, paths=["/v4/group_open_http_svc/send_group_msg"], count=2, code=10002)
    zd_agent_comments(zd_admin, ticket, alice, "Sorry for the wait")
    wait_for(lambda: texts_from(im_server, group, f"zd_{alice}") == ["Sorry for the wait"], timeout=20)
    settled(cb_bridge)
    [relay] = [j for j in jobs(cb_bridge, JobKind.RELAY_REPLY)]
    assert relay["status"] == JobStatus.DONE and relay["attempts"] == 4, relay
    assert texts_from(im_server, group, f"zd_{alice}") == ["Sorry for the wait"]


@given(
    text=st.text(max_size=9000),
    files=st.lists(st.tuples(st.text(max_size=40), st.text(min_size=1, max_size=200)), max_size=5),
)
@settings(max_examples=60, deadline=None)
def test_a_reply_becomes_elements_within_ims_limit(text: str, files: list[tuple[str, str]]) -> None:
    """Whatever its length: the text first (cut to fit IM's message size, saying so), then every attachment in
    order, each a text element."""
    reply = Reply("1", "2", text, True, "zd_3", None, False, tuple(Attachment(n, u) for n, u in files))
    body = replies.elements(reply)
    assert all(e["MsgType"] == "TIMTextElem" for e in body)
    lines = [e["MsgContent"]["Text"] for e in body]
    if text.strip():
        assert len(lines[0].encode()) <= replies.MAX_TEXT_BYTES
        assert lines[0] == text.strip() or lines[0].endswith(replies.CUT_NOTE)
        lines = lines[1:]
    assert lines == [f"{n}: {u}" if n else u for n, u in files]


@given(st.text(min_size=1, max_size=40))
def test_a_comments_random_is_stable_and_a_uint32(comment_id: str) -> None:
    value = replies.message_random("zendesk", comment_id)
    assert value == replies.message_random("zendesk", comment_id) and 0 <= value < 2**32
