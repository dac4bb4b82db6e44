"""POST /webhooks/zendesk: Zendesk's signature, duplicates, and the group following the ticket with no /assignment
call."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from bridge.sandbox.server import BackgroundServer
from bridge.states import JobKind
from bridge.store import sync_url
from connectors.zendesk import setup as zendesk_setup
from connectors.zendesk import webhook
from connectors.zendesk import webhook as zendesk_webhook
from tests.conftest import BridgeClient, BridgeFactory, group_settled, helpdesk_settings, im_state, members_of
from tests.test_convergence import wait_for

WEBHOOK_SECRET = "zendesk-webhook-secret-for-tests"


@pytest.fixture
def zd_bridge(bridge_factory: BridgeFactory, zd_server: BackgroundServer) -> BridgeClient:
    return bridge_factory(**helpdesk_settings(zd_url=zd_server.url), zendesk_webhook_secret=WEBHOOK_SECRET)


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def post_webhook(
    bridge: BridgeClient,
    body: Any,
    *,
    secret: str = WEBHOOK_SECRET,
    age: float = 0,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    timestamp = iso(time.time() - age)
    signed = {
        "X-Zendesk-Webhook-Signature": webhook.sign(secret, timestamp, content),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
        "Content-Type": "application/json",
    }
    return bridge.http.post("/webhooks/zendesk", content=content, headers={**signed, **(headers or {})})


def jobs(bridge: BridgeClient, kind: str | None = None) -> list[dict[str, Any]]:
    """The job table as stored: what was queued, whatever the worker did with it."""
    engine = create_engine(sync_url(bridge.settings.bridge_database_url))
    try:
        with engine.connect() as conn:
            rows = (
                conn.execute(text("SELECT kind, key, status, attempts, last_error, payload_json FROM job ORDER BY id"))
                .mappings()
                .all()
            )
    finally:
        engine.dispose()
    return [dict(r) for r in rows if kind is None or r["kind"] == kind]


def delivered(bridge: BridgeClient) -> list[dict[str, Any]]:
    """The convergences webhook deliveries stored (not a new ticket's own first job, `opened:<group>`)."""
    return [j for j in jobs(bridge, JobKind.CONVERGE) if not j["key"].startswith("opened:")]


def link_state(bridge: BridgeClient, group_id: str) -> str | None:
    """Read from the database, not GET /links: polling signed calls would run their timestamps ahead of the clock."""
    engine = create_engine(sync_url(bridge.settings.bridge_database_url))
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT state FROM link WHERE group_id = :g"), {"g": group_id}).scalar()
    finally:
        engine.dispose()


def open_ticket(bridge: BridgeClient, user: str = "cust1") -> str:
    r = bridge.post("/zendesk/createticket", {"userId": user, "caseInfo": {"subject": "Where is my order"}})
    assert r.status_code == 201, r.text
    group_settled(bridge.settings.im_api_base, r.json()["groupId"])
    return str(r.json()["ticketId"])


def event(ticket: str, assignee: str = "", status: str = "Open", kind: str = "assignee_changed") -> dict[str, str]:
    return {"ticket_id": ticket, "assignee_id": assignee, "status": status, "event": kind}


# --- authentication -----------------------------------------------------------------------------------------------

SIGNATURE_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("valid", {}, 202),
    ("fresh by 299 s", {"age": 299}, 202),
    ("stale by 301 s", {"age": 301}, 401),
    ("301 s in the future", {"age": -301}, 401),
    ("wrong secret", {"secret": "not-the-secret"}, 401),
    ("no signature", {"headers": {"X-Zendesk-Webhook-Signature": ""}}, 401),
    ("no timestamp", {"headers": {"X-Zendesk-Webhook-Signature-Timestamp": ""}}, 401),
    ("unix timestamp", {"headers": {"X-Zendesk-Webhook-Signature-Timestamp": str(int(time.time()))}}, 401),
    (
        "forged signature",
        {"headers": {"X-Zendesk-Webhook-Signature": "rJiUBWxX26reakGJSG5SafuFRW/smSCzVDSzrTDoPEM="}},
        401,
    ),
]


def test_signature_cases(zd_bridge: BridgeClient) -> None:
    ticket = open_ticket(zd_bridge)
    queued = 0
    for n, (case, kwargs, status) in enumerate(SIGNATURE_CASES):
        r = post_webhook(zd_bridge, event(ticket, str(n)), **kwargs)
        assert r.status_code == status, (case, r.text)
        if status == 401:
            assert r.json()["error"]["code"] == "unauthenticated" and WEBHOOK_SECRET not in r.text, case
        else:
            queued += 1
            assert r.json()["queued"] is True, case
        assert len(delivered(zd_bridge)) == queued, case


def test_signed_body_cannot_be_swapped(zd_bridge: BridgeClient) -> None:
    ticket = open_ticket(zd_bridge)
    timestamp = iso(time.time())
    signature = webhook.sign(WEBHOOK_SECRET, timestamp, json.dumps(event(ticket)).encode())
    r = zd_bridge.http.post(
        "/webhooks/zendesk",
        content=json.dumps(event(ticket, assignee="1")).encode(),
        headers={"X-Zendesk-Webhook-Signature": signature, "X-Zendesk-Webhook-Signature-Timestamp": timestamp},
    )
    assert r.status_code == 401 and delivered(zd_bridge) == []


def test_disabled_without_secret(bridge_factory: BridgeFactory, zd_server: BackgroundServer) -> None:
    bridge = bridge_factory(**helpdesk_settings(zd_url=zd_server.url))
    r = post_webhook(bridge, event("1"))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "webhooks_disabled" and "ZENDESK_WEBHOOK_SECRET" in r.json()["error"]["message"]


def test_replayed_delivery_is_answered_and_does_nothing(zd_bridge: BridgeClient) -> None:
    ticket = open_ticket(zd_bridge)
    content = json.dumps(event(ticket)).encode()
    timestamp = iso(time.time())
    headers = {
        "X-Zendesk-Webhook-Signature": webhook.sign(WEBHOOK_SECRET, timestamp, content),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
    }
    first = zd_bridge.http.post("/webhooks/zendesk", content=content, headers=headers)
    again = zd_bridge.http.post("/webhooks/zendesk", content=content, headers=headers)
    assert first.status_code == 202 and again.status_code == 200 and again.json()["duplicate"] is True
    assert len(delivered(zd_bridge)) == 1


def test_retried_invocation_signed_afresh_is_a_duplicate(zd_bridge: BridgeClient) -> None:
    ticket = open_ticket(zd_bridge)
    invocation = {"X-Zendesk-Webhook-Invocation-Id": "8350205582"}
    assert post_webhook(zd_bridge, event(ticket), headers=invocation).status_code == 202
    retry = post_webhook(zd_bridge, event(ticket), age=2, headers=invocation)
    assert retry.status_code == 200 and retry.json()["duplicate"] is True
    # Another invocation with another body is new work.
    other = post_webhook(zd_bridge, event(ticket, "1"), headers={"X-Zendesk-Webhook-Invocation-Id": "8350205583"})
    assert other.status_code == 202
    assert len(delivered(zd_bridge)) == 2


def test_replay_with_another_or_no_invocation_id_is_a_duplicate(zd_bridge: BridgeClient) -> None:
    """The invocation id is not signed: a captured delivery sent again under another id, or none, is no new work."""
    ticket = open_ticket(zd_bridge)
    content = json.dumps(event(ticket)).encode()
    timestamp = iso(time.time())
    signed = {
        "X-Zendesk-Webhook-Signature": webhook.sign(WEBHOOK_SECRET, timestamp, content),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
    }
    first = zd_bridge.http.post(
        "/webhooks/zendesk", content=content, headers={**signed, "X-Zendesk-Webhook-Invocation-Id": "8350205582"}
    )
    assert first.status_code == 202, first.text
    for changed in ({"X-Zendesk-Webhook-Invocation-Id": "8350205583"}, {"X-Zendesk-Webhook-Invocation-Id": ""}, {}):
        replay = zd_bridge.http.post("/webhooks/zendesk", content=content, headers={**signed, **changed})
        assert (replay.status_code, replay.json().get("duplicate")) == (200, True), (changed, replay.text)
    assert len(delivered(zd_bridge)) == 1


BAD_BODIES = [
    b"not json",
    b"[1, 2]",
    b'{"ticket_id": "abc"}',
    b'{"ticket_id": ""}',
    b'{"assignee_id": "1"}',
    b'{"ticket_id": "1", "assignee_id": "x"}',
    b'{"ticket_id": "1", "status": 5}',
    b"",
    b"\xff\xfe",
]


def test_bad_bodies_are_400(zd_bridge: BridgeClient) -> None:
    for raw in BAD_BODIES:
        r = post_webhook(zd_bridge, None, raw=raw)
        assert r.status_code == 400 and set(r.json()["error"]) == {"code", "message"}, raw
    assert jobs(zd_bridge) == []


def test_unlinked_ticket_is_ignored(zd_bridge: BridgeClient) -> None:
    r = post_webhook(zd_bridge, {"ticket_id": 424242, "assignee_id": None, "status": "On-hold"})
    assert r.status_code == 200 and r.json()["ignored"] == "no linked group"
    assert jobs(zd_bridge) == []


# --- end to end: setup, then the agent works in Zendesk ----------------------------------------------------------


def wait_deliveries(zd_server: BackgroundServer, count: int) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]]:
        found = httpx.get(zd_server.url + "/_emulator/state").json()["deliveries"]
        return found if len(found) >= count and all(d["state"] != "pending" for d in found) else []

    wait_for(done)
    return done()


def test_group_follows_zendesk_without_assignment_calls(
    zd_bridge: BridgeClient, zd_server: BackgroundServer, im_server: BackgroundServer, zd_admin: Any
) -> None:
    lines = zendesk_setup.setup(zd_bridge.settings.connectors["zendesk"], zd_bridge.server.url)  # type: ignore[arg-type]
    assert any("signing secret: Zendesk signs with ZENDESK_WEBHOOK_SECRET" in line for line in lines)
    ticket = open_ticket(zd_bridge)
    group = f"ZENDESK#{ticket}"
    a1, a2 = (f"zd_{a}" for a in zd_admin.agents[:2])  # the agents' IM accounts

    zd_admin.update(ticket, assignee_id=zd_admin.agents[0])
    first_a1 = int(time.time())
    wait_for(lambda: members_of(im_server, group) == {"cust1", a1})
    zd_admin.update(ticket, assignee_id=zd_admin.agents[1])
    wait_for(lambda: members_of(im_server, group) == {"cust1", a2})
    zd_admin.update(ticket, assignee_id=None)
    wait_for(lambda: members_of(im_server, group) == {"cust1"})
    wait_for(lambda: "waiting" in im_state(im_server)["notifications"][group][-1]["Content"])
    # Zendesk's events carry an id of their own, so a1 again within the same second is a new delivery; a second
    # later is what a real agent's reassignment looks like anyway.
    wait_for(lambda: int(time.time()) > first_a1 + 1)
    zd_admin.update(ticket, assignee_id=zd_admin.agents[0])
    wait_for(lambda: members_of(im_server, group) == {"cust1", a1})

    zd_admin.update(ticket, status="solved")  # solved: a notice, the group and its agent stay
    wait_for(lambda: "solved" in im_state(im_server)["notifications"][group][-1]["Content"])
    wait_for(lambda: link_state(zd_bridge, f"ZENDESK#{ticket}") == "solved")
    assert members_of(im_server, group) == {"cust1", a1}

    zd_admin.update(ticket, status="open")  # reopened
    wait_for(lambda: link_state(zd_bridge, f"ZENDESK#{ticket}") == "open")
    assert im_state(im_server)["groups"][group]["MuteAllMember"] == "Off"

    zd_admin.update(ticket, status="closed")  # closed: a notice, muted, the agent leaves
    wait_for(lambda: im_state(im_server)["groups"][group]["MuteAllMember"] == "On")
    assert members_of(im_server, group) == {"cust1"}
    assert "closed" in im_state(im_server)["notifications"][group][-1]["Content"]
    wait_for(lambda: link_state(zd_bridge, f"ZENDESK#{ticket}") == "closed")

    deliveries = wait_deliveries(zd_server, 1)
    assert all(d["status"] in (200, 202) for d in deliveries), deliveries
    bodies = [json.loads(d["body"]) for d in deliveries]
    # Zendesk's own ticket events, which setup subscribed the webhook to: no trigger is involved any more.
    assert {b["type"] for b in bodies} <= set(zendesk_webhook.SUBSCRIPTIONS)
    statuses = {b["event"]["current"] for b in bodies if b["type"].endswith(".status_changed")}
    assert {"OPEN", "SOLVED", "CLOSED"} <= statuses
    assert jobs(zd_bridge, JobKind.ASSIGNMENT) == []  # the webhooks alone moved the group


def test_deleted_ticket_dismisses_the_group_with_a_trigger_body(
    zd_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any
) -> None:
    ticket = open_ticket(zd_bridge)
    zd_admin.delete(ticket)
    assert post_webhook(zd_bridge, event(ticket, "", "Deleted", "status_changed")).status_code == 202
    wait_for(lambda: im_state(im_server)["groups"][f"ZENDESK#{ticket}"]["Dismissed"])
    wait_for(lambda: link_state(zd_bridge, f"ZENDESK#{ticket}") == "dismissed")


def test_a_ticket_deleted_through_the_api_dismisses_its_group(
    zd_bridge: BridgeClient, zd_server: BackgroundServer, im_server: BackgroundServer, zd_admin: Any
) -> None:
    """No hand-made body: the webhook setup installed, and Zendesk's own soft_deleted event."""
    zendesk_setup.setup(zd_bridge.settings.connectors["zendesk"], zd_bridge.server.url)  # type: ignore[arg-type]
    ticket = open_ticket(zd_bridge)
    group = f"ZENDESK#{ticket}"
    zd_admin.update(ticket, assignee_id=zd_admin.agents[0])
    wait_for(lambda: members_of(im_server, group) == {"cust1", f"zd_{zd_admin.agents[0]}"})
    zd_admin.delete(ticket)
    wait_for(lambda: im_state(im_server)["groups"][group]["Dismissed"])
    wait_for(lambda: link_state(zd_bridge, group) == "dismissed")
    [deleted] = [json.loads(d["body"]) for d in wait_deliveries(zd_server, 2) if "soft_deleted" in d["body"]]
    assert deleted["type"] == "zen:event-type:ticket.soft_deleted" and deleted["detail"]["id"] == ticket
    # Restored too late: the group was dismissed for good, and stays so.
    assert zd_admin.http.put(f"/deleted_tickets/{ticket}/restore.json").status_code == 200
    wait_for(lambda: len([d for d in wait_deliveries(zd_server, 3) if "undeleted" in d["body"]]) == 1)
    wait_for(lambda: jobs(zd_bridge)[-1]["status"] == "done")
    assert link_state(zd_bridge, group) == "dismissed"


def test_an_undeleted_ticket_reopens_its_group_when_it_still_can(
    zd_bridge: BridgeClient, im_server: BackgroundServer, zd_admin: Any
) -> None:
    """Deleted and restored before the deletion reached the bridge: convergence finds the ticket there, and the
    group carries on."""
    ticket = open_ticket(zd_bridge)
    group = f"ZENDESK#{ticket}"
    zd_admin.delete(ticket)
    assert zd_admin.http.put(f"/deleted_tickets/{ticket}/restore.json").status_code == 200
    for kind in ("soft_deleted", "undeleted"):
        body = {
            "type": f"zen:event-type:ticket.{kind}",
            "id": f"{kind}-{ticket}",
            "time": iso(time.time()),
            "subject": f"zen:ticket:{ticket}",
            "account_id": 9000001,
            "zendesk_event_version": "2022-11-06",
            "detail": {"id": int(ticket), "status": "OPEN"},  # ids as numbers are taken too
            "event": {},
        }
        assert post_webhook(zd_bridge, body).status_code == 202
    wait_for(lambda: all(j["status"] == "done" for j in jobs(zd_bridge)))
    assert link_state(zd_bridge, group) == "open" and not im_state(im_server)["groups"][group]["Dismissed"]


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@given(
    kind=st.sampled_from([*zendesk_webhook.EVENTS, "ticket_created", "x"]),
    detail=JSONISH | st.fixed_dictionaries({"id": JSONISH}),
    change=JSONISH | st.fixed_dictionaries({"comment": JSONISH}) | st.fixed_dictionaries({"previous": JSONISH}),
    subject=JSONISH,
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_event_body_is_answered_never_a_500(
    zd_bridge: BridgeClient, kind: str, detail: Any, change: Any, subject: Any
) -> None:
    body = {"type": f"zen:event-type:ticket.{kind}", "id": "x", "detail": detail, "event": change, "subject": subject}
    r = post_webhook(zd_bridge, body)
    assert r.status_code in (200, 202, 400), r.text
    if r.status_code == 400:
        assert set(r.json()["error"]) == {"code", "message"}
