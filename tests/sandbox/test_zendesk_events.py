"""The Zendesk emulator's ticket events (webhook subscriptions, no triggers), ticket deletion (soft, restore,
permanent), uploads as comment attachments, and what a comment records of the call that wrote it."""

from __future__ import annotations

import json
from typing import Any

import httpx

from bridge.sandbox.server import BackgroundServer
from tests.sandbox.test_zendesk_emulator import (  # noqa: F401 (fixtures)
    ALICE,
    Receiver,
    new_request,
    receiver,
    server,
    zd,
    zendesk_signature,
)

EVENTS = [
    f"zen:event-type:ticket.{name}"
    for name in (
        "agent_assignment_changed",
        "status_changed",
        "comment_added",
        "soft_deleted",
        "permanently_deleted",
        "undeleted",
    )
]


def subscribe(client: httpx.Client, endpoint: str, subscriptions: list[str], secret: str = "s3cret") -> dict[str, Any]:
    webhook = {
        "name": "Events",
        "endpoint": endpoint,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": subscriptions,
        "signing_secret": {"algorithm": "SHA256", "secret": secret},
    }
    response = client.post("/webhooks", json={"webhook": webhook})
    assert response.status_code == 201, response.text
    return response.json()["webhook"]  # type: ignore[no-any-return]


def test_subscribed_events_arrive_in_zendesks_shape_signed(
    server: BackgroundServer,  # noqa: F811
    zd: httpx.Client,  # noqa: F811
    receiver: Receiver,  # noqa: F811
) -> None:
    subscribe(zd, receiver.server.url + "/webhooks/zendesk", EVENTS)
    subscribe(zd, receiver.server.url + "/other", ["zen:event-type:ticket.status_changed"])
    tid = new_request(zd)["id"]
    zd.put(f"/tickets/{tid}.json", json={"ticket": {"assignee_id": ALICE}})  # assigned, and so opened
    zd.put(f"/tickets/{tid}.json", json={"ticket": {"comment": {"body": "On it", "author_id": ALICE}}})
    assert zd.delete(f"/tickets/{tid}.json").status_code == 204
    assert zd.put(f"/deleted_tickets/{tid}/restore.json").status_code == 200
    assert zd.delete(f"/tickets/{tid}.json").status_code == 204
    assert zd.delete(f"/deleted_tickets/{tid}.json").json()["job_status"]["status"] == "completed"
    calls = receiver.wait(8)
    mine = [c for c in calls if c["path"] == "/webhooks/zendesk"]
    bodies = [json.loads(c["body"]) for c in mine]
    assert sorted(b["type"].rsplit(".", 1)[1] for b in bodies) == sorted(
        ["agent_assignment_changed", "status_changed", "comment_added", "soft_deleted", "undeleted"]
        + ["soft_deleted", "permanently_deleted"]
    )
    deliveries = httpx.get(server.url + "/_emulator/state").json()["deliveries"]
    other = [d for d in deliveries if d["endpoint"].endswith("/other")]
    assert [json.loads(d["body"])["type"] for d in other] == [EVENTS[1]]  # only what a webhook subscribed to
    by_type = {b["type"].rsplit(".", 1)[1]: b for b in bodies}
    assignment, comment = by_type["agent_assignment_changed"], by_type["comment_added"]
    assert (assignment["event"]["previous"], assignment["event"]["current"]) == (None, str(ALICE))
    assert (by_type["status_changed"]["event"]["previous"], by_type["status_changed"]["event"]["current"]) == (
        "NEW",
        "OPEN",
    )
    assert comment["event"]["comment"]["body"] == "On it" and comment["event"]["comment"]["is_public"] is True
    assert comment["event"]["comment"]["author"] == {"id": ALICE, "is_staff": True, "name": "Alice Agent"}
    assert by_type["soft_deleted"]["detail"]["status"] == "DELETED"
    for body in bodies:
        assert body["subject"] == f"zen:ticket:{tid}" and body["detail"]["id"] == str(tid)
        assert body["account_id"] and body["id"] and body["time"] and body["zendesk_event_version"]
    for call in mine:
        stamp = call["headers"]["x-zendesk-webhook-signature-timestamp"]
        assert call["headers"]["x-zendesk-webhook-signature"] == zendesk_signature("s3cret", stamp, call["body"])


def test_deleted_tickets_list_restore_and_purge(zd: httpx.Client) -> None:  # noqa: F811
    tid = new_request(zd, subject="Gone soon")["id"]
    assert zd.delete(f"/tickets/{tid}.json").status_code == 204
    assert zd.get(f"/tickets/{tid}.json").status_code == 404
    [listed] = zd.get("/deleted_tickets.json").json()["deleted_tickets"]
    assert (listed["id"], listed["subject"], listed["previous_state"]) == (tid, "Gone soon", "new")
    assert zd.put(f"/deleted_tickets/{tid}/restore.json").status_code == 200
    assert zd.get(f"/tickets/{tid}.json").json()["ticket"]["subject"] == "Gone soon"
    assert zd.get("/deleted_tickets.json").json()["deleted_tickets"] == []
    assert zd.put(f"/deleted_tickets/{tid}/restore.json").status_code == 404  # not deleted
    assert zd.delete(f"/deleted_tickets/{tid}.json").status_code == 404  # only a deleted ticket can be purged
    zd.delete(f"/tickets/{tid}.json")
    assert zd.delete(f"/deleted_tickets/{tid}.json").status_code == 200
    assert zd.put(f"/deleted_tickets/{tid}/restore.json").status_code == 404  # gone for good


def test_triggers_and_event_subscriptions_do_not_mix(zd: httpx.Client) -> None:  # noqa: F811
    events = subscribe(zd, "https://example.com/hook", EVENTS[:1])
    mixed = {**events, "subscriptions": ["conditional_ticket_events", EVENTS[0]]}
    assert zd.post("/webhooks", json={"webhook": mixed}).status_code == 400
    assert zd.post("/webhooks", json={"webhook": {**events, "subscriptions": ["ticket.created"]}}).status_code == 400
    trigger = {
        "title": "t",
        "conditions": {"all": [{"field": "status", "operator": "changed"}]},
        "actions": [{"field": "notification_webhook", "value": [events["id"], "{}"]}],
    }
    assert zd.post("/triggers", json={"trigger": trigger}).status_code == 422


def test_comments_record_their_client_and_uploads(server: BackgroundServer, zd: httpx.Client) -> None:  # noqa: F811
    tid = new_request(zd)["id"]
    upload = zd.post("/uploads.json", params={"filename": "invoice.pdf"}, content=b"%PDF-1.4")
    assert upload.status_code == 201, upload.text
    token, attachment = upload.json()["upload"]["token"], upload.json()["upload"]["attachment"]
    assert attachment["file_name"] == "invoice.pdf" and attachment["size"] == 8
    body = {"ticket": {"comment": {"body": "Here it is", "uploads": [token], "author_id": ALICE}}}
    assert zd.put(f"/tickets/{tid}.json", json=body, headers={"User-Agent": "my-client/1.0"}).status_code == 200
    latest = zd.get(f"/tickets/{tid}/comments.json", params={"sort_order": "desc"}).json()["comments"][0]
    assert latest["plain_body"] == "Here it is" and latest["metadata"]["system"]["client"] == "my-client/1.0"
    assert [(a["file_name"], a["content_url"]) for a in latest["attachments"]] == [
        ("invoice.pdf", attachment["content_url"])
    ]
    path = httpx.URL(attachment["content_url"]).path
    assert httpx.get(server.url + path, auth=zd.auth).content == b"%PDF-1.4"
    unknown = {"ticket": {"comment": {"body": "x", "uploads": ["nope"]}}}
    assert zd.put(f"/tickets/{tid}.json", json=unknown).status_code == 422
