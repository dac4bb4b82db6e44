"""The Zendesk emulator over real HTTP: auth, requests and tickets, status rules, idempotency, errors,
webhooks, triggers and signed deliveries, rate limits and faults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.sandbox.server import BackgroundServer
from bridge.sandbox.zendesk import create_app
from bridge.sandbox.zendesk.core import ApiError
from bridge.sandbox.zendesk.limits import UpdateLimits
from tests.conftest import VECTORS

EMAIL = "admin@example.com"
TOKEN = "emulator-test-token"
AUTH = (f"{EMAIL}/token", TOKEN)
ALICE, BOB = 10002, 10003
ANONYMOUS = httpx.Auth()  # httpx's base Auth sends the request as it is: no Authorization header


def zendesk_signature(secret: str, timestamp: str, body: str) -> str:
    """Zendesk's rule: base64(HMAC-SHA256(secret, timestamp + raw body))."""
    return base64.b64encode(hmac.new(secret.encode(), (timestamp + body).encode(), hashlib.sha256).digest()).decode()


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(email=EMAIL, api_token=TOKEN)) as srv:
        yield srv


@pytest.fixture
def zd(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/api/v2", auth=AUTH, timeout=10) as client:
        yield client


def state(server: BackgroundServer) -> dict[str, Any]:
    return httpx.get(server.url + "/_emulator/state").json()  # type: ignore[no-any-return]


def new_request(zd: httpx.Client, subject: str = "Printer on fire", **requester: Any) -> dict[str, Any]:
    """An anonymous request: the one kind whose `requester` Zendesk honours."""
    body = {
        "request": {
            "subject": subject,
            "comment": {"body": "It smokes"},
            "requester": requester or {"name": "Jane", "email": "jane@example.com"},
        }
    }
    response = zd.post("/requests.json", json=body, auth=ANONYMOUS)
    assert response.status_code == 201, response.text
    return response.json()["request"]  # type: ignore[no-any-return]


class Receiver:
    """A tiny webhook endpoint that records what it got."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

        async def hook(request: Request) -> JSONResponse:
            self.calls.append(
                {
                    "path": request.url.path,
                    "headers": dict(request.headers),
                    "body": (await request.body()).decode(),
                }
            )
            return JSONResponse({"ok": True})

        self.server = BackgroundServer(Starlette(routes=[Route("/webhooks/zendesk", hook, methods=["POST"])]))

    def wait(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.calls


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    recv = Receiver()
    recv.server.start()
    yield recv
    recv.server.stop()


# ---------------------------------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    "auth", [None, (f"{EMAIL}/token", "wrong"), (EMAIL, TOKEN), ("nobody@example.com/token", TOKEN)]
)
def test_bad_credentials_get_zendesks_401(server: BackgroundServer, auth: Any) -> None:
    response = httpx.get(server.url + "/api/v2/users/me.json", auth=auth)
    assert response.status_code == 401
    assert response.json() == {"error": "Couldn't authenticate you"}


def test_me_and_seeded_users(zd: httpx.Client) -> None:
    me = zd.get("/users/me.json").json()["user"]
    assert (me["email"], me["role"]) == (EMAIL, "admin")
    assert zd.get(f"/users/{ALICE}.json").json()["user"]["role"] == "agent"
    assert zd.get("/users/search.json", params={"query": "email:bob@example.com"}).json()["users"][0]["id"] == BOB
    assert zd.get("/users/424242.json").json() == {"error": "RecordNotFound", "description": "Not found"}


# ---------------------------------------------------------------------------------------- requests/tickets


def test_request_creates_end_user_and_ticket(server: BackgroundServer, zd: httpx.Client) -> None:
    created = new_request(zd)
    assert created["status"] == "new" and created["subject"] == "Printer on fire"
    ticket = zd.get(f"/tickets/{created['id']}.json").json()["ticket"]
    assert "requester" not in ticket  # zenpy breaks on a requester object
    requester = zd.get(f"/users/{ticket['requester_id']}.json").json()["user"]
    assert (requester["name"], requester["email"], requester["role"]) == (
        "Jane",
        "jane@example.com",
        "end-user",
    )
    comments = zd.get(f"/tickets/{created['id']}/comments.json").json()["comments"]
    assert [(c["body"], c["public"], c["author_id"]) for c in comments] == [("It smokes", True, requester["id"])]
    # the same email again is the same end user
    again = new_request(zd, "Second")
    assert again["requester_id"] == requester["id"]


def test_anonymous_request_needs_a_name_not_an_email(zd: httpx.Client) -> None:
    created = new_request(zd, name="Anonymous customer")
    user = zd.get(f"/users/{created['requester_id']}.json").json()["user"]
    assert (user["name"], user["email"]) == ("Anonymous customer", None)
    response = zd.post(
        "/requests.json",
        json={"request": {"subject": "x", "comment": {"body": "y"}, "requester": {"email": "new@example.com"}}},
        auth=ANONYMOUS,
    )
    assert response.status_code == 422 and response.json()["error"] == "RecordInvalid"
    nobody = zd.post("/requests.json", json={"request": {"subject": "x", "comment": {"body": "y"}}}, auth=ANONYMOUS)
    assert nobody.status_code == 422 and "requester" in nobody.json()["details"]
    wrong = zd.post(
        "/requests.json",
        json={"request": {"subject": "x", "comment": {"body": "y"}, "requester": {"name": "N"}}},
        auth=(f"{EMAIL}/token", "wrong"),
    )
    assert wrong.status_code == 401  # credentials that are given must be right


def test_request_with_an_agents_token_is_the_agents_own(server: BackgroundServer, zd: httpx.Client) -> None:
    """Zendesk documents the Requests API for end users: with an agent's token the request is the agent's, and the
    `requester` object (for anonymous requests) and Idempotency-Key (documented for POST /tickets) are ignored."""
    body = {"request": {"subject": "S", "comment": {"body": "B"}, "requester": {"name": "Jane", "email": "jane@x.com"}}}
    first = zd.post("/requests.json", json=body, headers={"Idempotency-Key": "same-key"})
    second = zd.post("/requests.json", json=body, headers={"Idempotency-Key": "same-key"})
    assert (first.status_code, second.status_code) == (201, 201)
    assert "x-idempotency-lookup" not in first.headers and "x-idempotency-lookup" not in second.headers
    me = zd.get("/users/me.json").json()["user"]["id"]
    assert [first.json()["request"]["requester_id"], second.json()["request"]["requester_id"]] == [me, me]
    assert first.json()["request"]["id"] != second.json()["request"]["id"] and len(state(server)["tickets"]) == 2
    assert all(u["email"] != "jane@x.com" for u in state(server)["users"].values())


def test_ticket_requester_by_id_or_by_email(server: BackgroundServer, zd: httpx.Client) -> None:
    def create(**fields: Any) -> httpx.Response:
        return zd.post("/tickets.json", json={"ticket": {"subject": "S", "comment": {"body": "B"}, **fields}})

    assert create(requester_id=BOB).json()["ticket"]["requester_id"] == BOB
    assert create(requester={"name": "Someone", "email": "ALICE@example.com"}).json()["ticket"]["requester_id"] == ALICE
    new = create(requester={"name": "Nina", "email": "nina@example.com"}).json()["ticket"]["requester_id"]
    assert state(server)["users"][str(new)]["email"] == "nina@example.com"
    missing = create(requester_id=424242)
    assert missing.status_code == 422 and missing.json()["details"]["requester"][0]["error"] == "InvalidValue"
    authored = create(requester_id=BOB, comment={"body": "by Bob", "author_id": BOB}).json()["ticket"]["id"]
    assert state(server)["comments"][str(authored)][0]["author_id"] == BOB


def test_ticket_create_returns_ticket_and_audit(zd: httpx.Client) -> None:
    response = zd.post(
        "/tickets.json",
        json={
            "ticket": {
                "subject": "S",
                "comment": {"body": "B"},
                "requester": {"name": "R", "email": "r@example.com"},
            }
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["ticket"]["id"] == body["audit"]["ticket_id"]
    assert body["audit"]["events"][0]["type"] == "Comment"


def test_status_rules(zd: httpx.Client) -> None:
    tid = new_request(zd)["id"]

    def put(**ticket: Any) -> httpx.Response:
        return zd.put(f"/tickets/{tid}.json", json={"ticket": ticket})

    assert put(assignee_id=ALICE).json()["ticket"]["status"] == "open"  # assigning a new ticket opens it
    assert put(status="solved").json()["ticket"]["status"] == "solved"
    assert put(comment={"body": "one more thing"}).json()["ticket"]["status"] == "open"  # a reply reopens
    assert put(status="bogus").json() == {
        "error": "RecordInvalid",
        "description": "Record validation errors",
        "details": {"status": [{"description": "Status: bogus is not valid", "error": "InvalidValue"}]},
    }
    assert put(assignee_id=424242).status_code == 422
    assert put(status="closed").status_code == 200
    closed = put(comment={"body": "too late"})
    assert closed.status_code == 422
    assert closed.json()["details"]["status"][0]["description"] == "Status: closed prevents ticket update"


def test_update_audit_and_private_comment(zd: httpx.Client) -> None:
    tid = new_request(zd)["id"]
    body = zd.put(
        f"/tickets/{tid}.json",
        json={"ticket": {"assignee_id": BOB, "comment": {"body": "internal", "public": False, "author_id": BOB}}},
    ).json()
    kinds = {(e["type"], e.get("field_name")) for e in body["audit"]["events"]}
    assert {("Comment", None), ("Change", "assignee_id"), ("Change", "status")} <= kinds
    last = zd.get(f"/tickets/{tid}/comments.json").json()["comments"][-1]
    assert (last["body"], last["public"], last["author_id"]) == ("internal", False, BOB)


def test_list_tickets_by_id_newest_first_on_request(zd: httpx.Client) -> None:
    first, second, gone = (new_request(zd)["id"] for _ in range(3))
    assert zd.delete(f"/tickets/{gone}.json").status_code == 204
    ids = [t["id"] for t in zd.get("/tickets.json").json()["tickets"]]
    assert ids[-2:] == [first, second] and gone not in ids
    newest = zd.get("/tickets.json", params={"sort_order": "desc"}).json()
    assert [t["id"] for t in newest["tickets"]][:2] == [second, first]
    assert newest["count"] == len(ids) and "requester_id" in newest["tickets"][0]


def test_delete_then_not_found(zd: httpx.Client) -> None:
    tid = new_request(zd)["id"]
    assert zd.delete(f"/tickets/{tid}.json").status_code == 204
    response = zd.get(f"/tickets/{tid}.json")
    assert (response.status_code, response.json()) == (
        404,
        {"error": "RecordNotFound", "description": "Not found"},
    )


# ---------------------------------------------------------------------------------------------- idempotency


def test_idempotency_key_replays_and_rejects_another_body(server: BackgroundServer, zd: httpx.Client) -> None:
    body = {"ticket": {"subject": "S", "comment": {"body": "B"}, "requester_id": BOB}}
    first = zd.post("/tickets.json", json=body, headers={"Idempotency-Key": "k-1"})
    second = zd.post("/tickets.json", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.headers["x-idempotency-lookup"] == "miss" and second.headers["x-idempotency-lookup"] == "hit"
    assert (second.status_code, second.json()) == (first.status_code, first.json())
    assert len(state(server)["tickets"]) == 1
    other = zd.post(
        "/tickets.json",
        json={"ticket": {**body["ticket"], "subject": "T"}},
        headers={"Idempotency-Key": "k-1"},
    )
    assert other.status_code == 400
    assert other.json() == {
        "error": "IdempotentRequestError",
        "description": "Request parameters don't match the given idempotency key",
    }
    assert len(state(server)["tickets"]) == 1
    assert zd.post("/tickets.json", json=body, headers={"Idempotency-Key": "k-2"}).headers["x-idempotency-lookup"] == (
        "miss"
    )
    assert len(state(server)["tickets"]) == 2


# ---------------------------------------------------------------------------------------------------- users


def test_users_by_external_id(server: BackgroundServer, zd: httpx.Client) -> None:
    created = zd.post("/users.json", json={"user": {"name": "Cust", "external_id": "Cust-1"}})
    assert created.status_code == 201
    user = created.json()["user"]
    assert (user["role"], user["email"], user["external_id"]) == ("end-user", None, "Cust-1")
    assert created.headers["location"] == f"/api/v2/users/{user['id']}.json"
    for asked in ("Cust-1", "cust-1"):  # "External ID values are not case sensitive"
        found = zd.get("/users/search.json", params={"external_id": asked}).json()["users"]
        assert [u["id"] for u in found] == [user["id"]]
    assert zd.get("/users/search.json", params={"external_id": "nobody"}).json()["users"] == []
    taken = zd.post("/users.json", json={"user": {"name": "Other", "external_id": "CUST-1"}})
    assert (taken.status_code, taken.json()["details"]["external_id"][0]["error"]) == (422, "DuplicateValue")


def test_an_email_another_user_has_is_refused(server: BackgroundServer, zd: httpx.Client) -> None:
    taken = zd.post("/users.json", json={"user": {"name": "Mallory", "email": "alice@example.com"}})
    assert taken.status_code == 422
    assert taken.json() == {
        "error": "RecordInvalid",
        "description": "Record validation errors",
        "details": {
            "email": [
                {
                    "description": "Email: alice@example.com is already being used by another user",
                    "error": "DuplicateValue",
                }
            ]
        },
    }
    user = zd.post("/users.json", json={"user": {"name": "Mallory", "external_id": "m"}}).json()["user"]
    put = zd.put(f"/users/{user['id']}.json", json={"user": {"email": "alice@example.com"}})
    assert put.status_code == 422 and put.json()["details"]["email"][0]["error"] == "DuplicateValue"
    own = zd.put(f"/users/{user['id']}.json", json={"user": {"email": "mallory@example.com"}})
    assert own.status_code == 200 and own.json()["user"]["email"] == "mallory@example.com"
    assert state(server)["users"][str(ALICE)]["external_id"] is None
    nameless = zd.post("/users.json", json={"user": {"email": "x@example.com"}})
    assert nameless.status_code == 422 and "name" in nameless.json()["details"]


def test_create_or_update_matches_external_id_or_email(server: BackgroundServer, zd: httpx.Client) -> None:
    new = zd.post("/users/create_or_update.json", json={"user": {"name": "A", "external_id": "ext-9"}})
    assert new.status_code == 201
    uid = new.json()["user"]["id"]
    again = zd.post("/users/create_or_update.json", json={"user": {"name": "B", "external_id": "EXT-9"}})
    assert (again.status_code, again.json()["user"]["id"], again.json()["user"]["name"]) == (200, uid, "B")
    assert again.json()["user"]["external_id"] == "EXT-9"  # "updates the user's external id to match the case"
    # Matched by email too: this is why a customer's email must never reach it (it would update the agent).
    by_email = zd.post("/users/create_or_update.json", json={"user": {"name": "X", "email": "bob@example.com"}})
    assert (by_email.status_code, by_email.json()["user"]["id"]) == (200, BOB)


# ---------------------------------------------------------------------------------- webhooks and triggers


def make_webhook(zd: httpx.Client, endpoint: str, secret: str | None = None) -> dict[str, Any]:
    webhook: dict[str, Any] = {
        "name": "Hook",
        "endpoint": endpoint,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": ["conditional_ticket_events"],
    }
    if secret:
        webhook["signing_secret"] = {"algorithm": "SHA256", "secret": secret}
    response = zd.post("/webhooks", json={"webhook": webhook})
    assert response.status_code == 201, response.text
    return response.json()["webhook"]  # type: ignore[no-any-return]


def test_webhook_crud_and_signing_secret(zd: httpx.Client) -> None:
    hook = make_webhook(zd, "https://example.com/hook")
    assert "signing_secret" not in hook and len(hook["id"]) == 26
    assert zd.get("/webhooks", params={"filter[name_contains]": "hoo"}).json()["webhooks"][0]["id"] == hook["id"]
    secret = zd.get(f"/webhooks/{hook['id']}/signing_secret").json()["signing_secret"]
    assert secret["algorithm"] == "SHA256" and secret["secret"]
    reset = zd.post(f"/webhooks/{hook['id']}/signing_secret")
    assert reset.status_code == 201 and reset.json()["signing_secret"]["secret"] != secret["secret"]
    assert zd.patch(f"/webhooks/{hook['id']}", json={"webhook": {"status": "inactive"}}).status_code == 204
    assert zd.get(f"/webhooks/{hook['id']}").json()["webhook"]["status"] == "inactive"
    assert zd.post("/webhooks", json={"webhook": {"name": "x"}}).status_code == 400
    assert zd.delete(f"/webhooks/{hook['id']}").status_code == 204
    assert zd.get(f"/webhooks/{hook['id']}").status_code == 404


def test_trigger_crud(zd: httpx.Client) -> None:
    hook = make_webhook(zd, "https://example.com/hook")
    trigger = {
        "title": "T",
        "conditions": {"all": [{"field": "status", "operator": "changed"}]},
        "actions": [{"field": "notification_webhook", "value": [hook["id"], "{}"]}],
    }
    created = zd.post("/triggers.json", json={"trigger": trigger})
    assert created.status_code == 201
    tid = created.json()["trigger"]["id"]
    assert zd.get("/triggers.json").json()["triggers"][0]["conditions"]["any"] == []
    assert zd.put(f"/triggers/{tid}.json", json={"trigger": {"active": False}}).json()["trigger"]["active"] is False
    assert zd.delete(f"/webhooks/{hook['id']}").status_code == 400  # in use by the trigger
    assert zd.post("/triggers.json", json={"trigger": {"title": "no actions"}}).status_code == 422
    assert zd.delete(f"/triggers/{tid}.json").status_code == 204
    assert zd.get(f"/triggers/{tid}.json").json() == {"error": "RecordNotFound", "description": "Not found"}


def test_zendesk_webhook_vector() -> None:
    vector = VECTORS["zendesk_webhook"]
    assert (
        zendesk_signature(vector["secret"], vector["X-Zendesk-Webhook-Signature-Timestamp"], vector["body"])
        == vector["X-Zendesk-Webhook-Signature"]
    )


def test_trigger_fires_signed_webhook(server: BackgroundServer, zd: httpx.Client, receiver: Receiver) -> None:
    hook = make_webhook(zd, receiver.server.url + "/webhooks/zendesk", secret="s3cret")
    template = json.dumps(
        {
            "ticket_id": "{{ticket.id}}",
            "assignee_id": "{{ticket.assignee.id}}",
            "status": "{{ticket.status}}",
            "event": "assignee_changed",
        }
    )
    zd.post(
        "/triggers.json",
        json={
            "trigger": {
                "title": "assignee",
                "conditions": {
                    "all": [
                        {"field": "update_type", "operator": "is", "value": "Change"},
                        {"field": "assignee_id", "operator": "changed"},
                    ]
                },
                "actions": [{"field": "notification_webhook", "value": [hook["id"], template]}],
            }
        },
    )
    tid = new_request(zd)["id"]
    zd.put(f"/tickets/{tid}.json", json={"ticket": {"comment": {"body": "no assignee change"}}})
    zd.put(f"/tickets/{tid}.json", json={"ticket": {"assignee_id": ALICE}})
    [call] = receiver.wait(1)
    assert json.loads(call["body"]) == {
        "ticket_id": str(tid),
        "assignee_id": str(ALICE),
        "status": "Open",
        "event": "assignee_changed",
    }
    headers = call["headers"]
    assert headers["x-zendesk-webhook-id"] == hook["id"]
    assert headers["x-zendesk-webhook-signature-timestamp"].endswith("Z")
    assert headers["x-zendesk-webhook-signature"] == zendesk_signature(
        "s3cret", headers["x-zendesk-webhook-signature-timestamp"], call["body"]
    )
    zd.put(f"/tickets/{tid}.json", json={"ticket": {"assignee_id": None}})
    assert json.loads(receiver.wait(2)[1]["body"])["assignee_id"] == ""
    deliveries = state(server)["deliveries"]
    assert [d["state"] for d in deliveries] == ["success", "success"]
    assert len(receiver.calls) == 2  # the creation and the plain comment fired nothing


def test_failed_delivery_is_recorded(server: BackgroundServer, zd: httpx.Client) -> None:
    with BackgroundServer(Starlette()) as gone:
        url = gone.url
    hook = make_webhook(zd, url + "/webhooks/zendesk")
    zd.post(
        "/triggers.json",
        json={
            "trigger": {
                "title": "any",
                "conditions": {"all": [{"field": "status", "operator": "changed"}]},
                "actions": [{"field": "notification_webhook", "value": [hook["id"], "{}"]}],
            }
        },
    )
    tid = new_request(zd)["id"]
    zd.put(f"/tickets/{tid}.json", json={"ticket": {"status": "pending"}})
    deadline = time.monotonic() + 5
    while state(server)["deliveries"][-1]["state"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state(server)["deliveries"][-1]["state"] == "failed"


# ------------------------------------------------------------------------------ rate limits, faults, control


def test_rate_limit_then_recovery(server: BackgroundServer, zd: httpx.Client) -> None:
    httpx.post(server.url + "/_emulator/rate_limit", json={"count": 2, "retry_after": 7}).raise_for_status()
    for _ in range(2):
        limited = zd.get("/users/me.json")
        assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")
    assert zd.get("/users/me.json").status_code == 200


def test_per_minute_budget(server: BackgroundServer, zd: httpx.Client) -> None:
    httpx.post(server.url + "/_emulator/rate_limit", json={"per_minute": 3, "window": 1}).raise_for_status()
    remaining = [zd.get("/users/me.json").headers["x-rate-limit-remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    limited = zd.get("/users/me.json")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.headers["x-rate-limit"] == "3" and limited.headers["content-type"].startswith("text/plain")
    assert limited.text == "Number of allowed API requests per minute exceeded"
    time.sleep(1.05)  # the window moves on
    assert zd.get("/users/me.json").status_code == 200


def test_injected_faults(server: BackgroundServer, zd: httpx.Client) -> None:
    httpx.post(server.url + "/_emulator/faults", json={"error_rate": 1.0, "status": 500, "count": 1})
    failed = zd.get("/users/me.json")
    assert failed.status_code == 500 and failed.json()["error"] == "InternalServerError"
    httpx.post(server.url + "/_emulator/faults", json={"outage": True, "count": None})
    outage = zd.get("/users/me.json")
    assert outage.status_code == 503 and outage.headers["content-type"].startswith("text/html")
    httpx.post(server.url + "/_emulator/faults", json={})
    assert zd.get("/users/me.json").status_code == 200


def test_request_log_and_reset(server: BackgroundServer, zd: httpx.Client) -> None:
    new_request(zd)
    log = state(server)["requests"]
    assert [(r["method"], r["path"], r["status"]) for r in log] == [("POST", "/api/v2/requests.json", 201)]
    assert "authorization" not in json.dumps(log).lower()
    httpx.post(server.url + "/_emulator/reset").raise_for_status()
    after = state(server)
    assert after["tickets"] == {} and len(after["users"]) == 3


# ------------------------------------------------------------------------------ the Update Ticket endpoint's limits


def update_limits(server: BackgroundServer, **limits: Any) -> dict[str, Any]:
    r = httpx.post(server.url + "/_emulator/update_limits", json=limits)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def comment_on(zd: httpx.Client, ticket_id: int, text: str = "hi", **kw: Any) -> httpx.Response:
    return zd.put(f"/tickets/{ticket_id}.json", json={"ticket": {"comment": {"body": text}}}, **kw)


def test_update_limits_default_to_zendesks_figures(server: BackgroundServer) -> None:
    limits = httpx.get(server.url + "/_emulator/update_limits").json()
    assert limits == {"per_ticket": 30, "ticket_window": 600.0, "per_minute": 100, "account_window": 60.0}


def test_thirty_updates_per_user_per_ticket_in_a_sliding_window(server: BackgroundServer, zd: httpx.Client) -> None:
    assert update_limits(server, scale=2 / 600)["ticket_window"] == 2.0  # the 10 minutes become 2 s
    update_limits(server, ticket_window=4.0, per_minute=0)  # the account's limit has a test of its own
    first, second = new_request(zd)["id"], new_request(zd, subject="Another")["id"]
    started = time.monotonic()
    for n in range(30):
        assert comment_on(zd, first, f"update {n}").status_code == 200
    limited = comment_on(zd, first, "one too many")
    assert limited.status_code == 429 and limited.headers["content-type"].startswith("text/html")
    assert limited.text == "Rate limit for ticket updates exceeded, please wait before updating this ticket again"
    assert 1 <= int(limited.headers["retry-after"]) <= 4
    assert "one too many" not in str(state(server)["comments"])
    # Another ticket, or another user on the same ticket, has a budget of its own.
    assert comment_on(zd, second).status_code == 200
    assert comment_on(zd, first, auth=("alice@example.com/token", TOKEN)).status_code == 200
    # The window slides: once the first update is 4 s old, one more fits (and not 30 more).
    time.sleep(max(0.0, started + 4.05 - time.monotonic()))
    assert comment_on(zd, first).status_code == 200
    assert [comment_on(zd, first).status_code for _ in range(40)].count(200) < 30


def test_one_hundred_updates_a_minute_per_account(server: BackgroundServer, zd: httpx.Client) -> None:
    update_limits(server, per_minute=5, account_window=1.0)
    tickets = [new_request(zd, subject=f"T{n}")["id"] for n in range(6)]
    assert [comment_on(zd, t).status_code for t in tickets[:5]] == [200] * 5
    limited = comment_on(zd, tickets[5])
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "1")
    assert limited.text == "Number of allowed API requests per minute exceeded"
    assert zd.get(f"/tickets/{tickets[5]}.json").status_code == 200  # reads are not updates
    time.sleep(1.05)
    assert comment_on(zd, tickets[5]).status_code == 200
    httpx.post(server.url + "/_emulator/reset").raise_for_status()
    assert httpx.get(server.url + "/_emulator/update_limits").json()["per_minute"] == 100


@settings(max_examples=200, deadline=None)
@given(
    calls=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 1), st.floats(0, 5, allow_nan=False)), min_size=1, max_size=60
    )
)
def test_update_limits_rule(calls: list[tuple[int, int, float]]) -> None:
    """Whatever the order of updates, no (user, ticket) gets more than its count accepted in any window, and an
    update is refused only when its window is full (here 3 per 1 s per ticket, 5 per 0.5 s per account)."""
    moment = [0.0]
    limits = UpdateLimits(clock=lambda: moment[0])
    limits.configure({"per_ticket": 3, "ticket_window": 1.0, "per_minute": 5, "account_window": 0.5})
    accepted: list[tuple[int, int, float]] = []
    for user, ticket, gap in calls:
        moment[0] += gap / 4
        now = moment[0]
        mine = [a for a in accepted if (a[0], a[1]) == (user, ticket) and a[2] > now - 1.0]
        account = [a for a in accepted if a[2] > now - 0.5]
        try:
            limits.check(user, ticket)
        except ApiError as exc:
            assert exc.status == 429 and int(exc.headers["Retry-After"]) >= 1
            assert len(mine) >= 3 or len(account) >= 5
        else:
            assert len(mine) < 3 and len(account) < 5
            accepted.append((user, ticket, now))
