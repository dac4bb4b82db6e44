"""The real ZendeskConnector (zenpy) against the Zendesk emulator over HTTP, and setup/teardown."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import entry_points
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.errors import NotFound, PermanentError, RetriableError, parse_retry_after
from bridge.sandbox.server import BackgroundServer, free_port
from bridge.sandbox.zendesk import create_app
from connectors.base import ENTRY_POINT_GROUP, Author, Comment, Connector, NewTicket, TicketStatus, UpdateBudget
from connectors.zendesk import ZendeskConnector
from connectors.zendesk.client import zenpy_host
from connectors.zendesk.session import BaseUrlSession
from connectors.zendesk.settings import ZendeskSettings
from connectors.zendesk.setup import setup, teardown
from connectors.zendesk.webhook import SUBSCRIPTIONS
from tests.conftest import VECTORS

EMAIL = "admin@example.com"
TOKEN = "connector-test-token-1234"
ALICE, BOB = 10002, 10003


def settings_for(url: str, **overrides: Any) -> ZendeskSettings:
    """ZENDESK_* as the variables name them (zendesk_url, ...)."""
    values: dict[str, Any] = {
        "url": url,
        "email": EMAIL,
        "api_token": TOKEN,
        "rate_limit": 0,  # the connector's own spacing of calls is tested through the bridge
        "_env_file": None,
    }
    values.update({key.removeprefix("zendesk_"): value for key, value in overrides.items()})
    return ZendeskSettings(**values)


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(email=EMAIL, api_token=TOKEN)) as srv:
        yield srv


@pytest.fixture
def zd(server: BackgroundServer) -> Iterator[httpx.Client]:
    """Plays the agent in the Zendesk UI, straight against the emulator."""
    with httpx.Client(base_url=server.url + "/api/v2", auth=(f"{EMAIL}/token", TOKEN), timeout=10) as client:
        yield client


@pytest.fixture
async def connector(server: BackgroundServer) -> AsyncIterator[ZendeskConnector]:
    conn = ZendeskConnector(settings_for(server.url), anyio.CapacityLimiter(8))
    await conn.start()
    yield conn
    await conn.close()


def state(server: BackgroundServer) -> dict[str, Any]:
    return httpx.get(server.url + "/_emulator/state").json()  # type: ignore[no-any-return]


def control(server: BackgroundServer, what: str, body: dict[str, Any]) -> None:
    httpx.post(f"{server.url}/_emulator/{what}", json=body).raise_for_status()


def ticket_of(server: BackgroundServer, tid: str) -> dict[str, Any]:
    return state(server)["tickets"][tid]  # type: ignore[no-any-return]


NEW = NewTicket(
    user_id="user1", subject="Printer on fire", description="It smokes", name="Jane", email="jane@example.com"
)


# ------------------------------------------------------------------------------------------------ plumbing


def test_registered_entry_point_and_protocol() -> None:
    [ep] = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "zendesk"]
    assert ep.load() is ZendeskConnector
    assert isinstance(ZendeskConnector(settings_for("https://acme.zendesk.com"), anyio.CapacityLimiter(1)), Connector)
    assert ZendeskConnector.enabled(settings_for("https://acme.zendesk.com"))
    assert not ZendeskConnector.enabled(ZendeskSettings(_env_file=None))


def test_ids() -> None:
    conn = ZendeskConnector(settings_for("https://acme.zendesk.com"), anyio.CapacityLimiter(1))
    assert conn.group_id("42") == "ZENDESK#42"
    assert [conn.ticket_id(g) for g in ("ZENDESK#42", "ZENDESK#", "ZENDESK#4a", "500000000000001AAA", "zendesk#1")] == [
        "42",
        None,
        None,
        None,
        None,
    ]
    assert [conn.agent_id(u) for u in ("10002", "", "00G000000000001", "-1", "zd_10002")] == [
        "zd_10002",  # agents' IM accounts are prefixed: a customer whose userId is 10002 is someone else
        None,
        None,
        None,
        None,
    ]
    other = ZendeskConnector(settings_for("https://acme.zendesk.com", zendesk_agent_prefix="agent-"), conn.limiter)
    assert other.agent_id("10002") == "agent-10002"


@pytest.mark.parametrize(
    ("base", "target"),
    [
        ("https://acme.zendesk.com", "https://acme.zendesk.com/api/v2/tickets/1.json?x=1"),
        ("https://support.example.org", "https://support.example.org/api/v2/tickets/1.json?x=1"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123/api/v2/tickets/1.json?x=1"),
        ("http://localhost:9000/zendesk/", "http://localhost:9000/zendesk/api/v2/tickets/1.json?x=1"),
    ],
)
def test_session_sends_to_the_configured_base(base: str, target: str) -> None:
    with BaseUrlSession(base) as session:
        assert session.target("https://zendesk.bridge.invalid/api/v2/tickets/1.json?x=1") == target


def test_zenpy_host_and_retry_after() -> None:
    assert zenpy_host("https://acme.zendesk.com") == ("acme", "zendesk.com")
    assert zenpy_host("http://127.0.0.1:8000") == ("zendesk", "bridge.invalid")
    assert zenpy_host("http://localhost:8000") == ("zendesk", "bridge.invalid")
    assert [parse_retry_after(v) for v in ("7", "0", "", None, "soon")] == [7.0, 0.0, None, None, None]
    assert 0 <= (parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") or 0) == 0


# ---------------------------------------------------------------------------------------------- create


def calls(server: BackgroundServer) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in state(server)["requests"]]


def user_of(server: BackgroundServer, user_id: int) -> dict[str, Any]:
    return state(server)["users"][str(user_id)]  # type: ignore[no-any-return]


async def test_create_with_email(server: BackgroundServer, connector: ZendeskConnector) -> None:
    tid = await connector.create_ticket(NEW)
    ticket = ticket_of(server, tid)
    requester = user_of(server, ticket["requester_id"])
    assert (ticket["subject"], ticket["description"], ticket["status"]) == (
        "Printer on fire",
        "It smokes",
        "new",
    )
    assert (requester["name"], requester["email"], requester["role"], requester["external_id"]) == (
        "Jane",
        "jane@example.com",
        "end-user",
        "user1",
    )
    assert state(server)["comments"][tid][0]["author_id"] == requester["id"]  # the customer wrote the description
    assert calls(server) == [
        ("GET", "/api/v2/users/search.json"),
        ("POST", "/api/v2/users/create_or_update.json"),
        ("PUT", f"/api/v2/users/{requester['id']}.json"),
        ("POST", "/api/v2/tickets.json"),
    ]


async def test_create_without_email_or_name(server: BackgroundServer, connector: ZendeskConnector) -> None:
    tid = await connector.create_ticket(NewTicket(user_id="u2", subject="Just a subject"))
    ticket = ticket_of(server, tid)
    requester = user_of(server, ticket["requester_id"])
    assert (requester["name"], requester["email"], requester["external_id"]) == ("Anonymous customer", None, "u2")
    assert ticket["description"] == "Just a subject"  # the first comment falls back to the subject


async def test_an_agents_email_does_not_make_the_agent_the_requester(
    server: BackgroundServer, connector: ZendeskConnector
) -> None:
    alice = user_of(server, ALICE)
    tid = await connector.create_ticket(NewTicket(user_id="mallory", subject="Hi", email="alice@example.com"))
    requester = user_of(server, ticket_of(server, tid)["requester_id"])
    assert requester["id"] != ALICE
    assert (requester["role"], requester["external_id"], requester["email"]) == ("end-user", "mallory", None)
    assert user_of(server, ALICE) == alice  # untouched: no external_id, same email


async def test_an_existing_end_user_is_reused_as_it_is(server: BackgroundServer, connector: ZendeskConnector) -> None:
    first = await connector.create_ticket(NEW)
    requester = user_of(server, ticket_of(server, first)["requester_id"])
    second = await connector.create_ticket(
        NewTicket(user_id="user1", subject="Again", name="Someone else", email="other@example.com")
    )
    assert ticket_of(server, second)["requester_id"] == requester["id"]
    assert user_of(server, requester["id"]) == requester  # neither renamed nor given the new email
    assert len([u for u in state(server)["users"].values() if u["role"] == "end-user"]) == 1


async def test_a_returning_customers_ticket_is_one_call(server: BackgroundServer, connector: ZendeskConnector) -> None:
    first = await connector.create_ticket(NEW)
    before = len(calls(server))
    await connector.create_ticket(NEW)
    assert calls(server)[before:] == [("POST", "/api/v2/tickets.json")]
    # A refused ticket may mean the remembered end user is gone (deleted, merged): the next create looks again.
    control(server, "faults", {"error_rate": 1.0, "status": 422, "paths": ["/api/v2/tickets.json"], "count": 1})
    with pytest.raises(PermanentError):
        await connector.create_ticket(NEW)
    before = len(calls(server))
    third = await connector.create_ticket(NEW)
    assert calls(server)[before:] == [("GET", "/api/v2/users/search.json"), ("POST", "/api/v2/tickets.json")]
    assert ticket_of(server, third)["requester_id"] == ticket_of(server, first)["requester_id"]


async def test_concurrent_first_tickets_of_one_customer_make_one_user(
    server: BackgroundServer, connector: ZendeskConnector
) -> None:
    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(
                connector.create_ticket, NewTicket(user_id="newcomer", subject=f"S{i}", email="n@example.com")
            )
    users = [u for u in state(server)["users"].values() if u["external_id"] == "newcomer"]
    assert len(users) == 1 and users[0]["email"] == "n@example.com"
    assert {t["requester_id"] for t in state(server)["tickets"].values()} == {users[0]["id"]}
    assert len(state(server)["tickets"]) == 6


async def test_requester_by_email_names_whoever_has_the_address(
    server: BackgroundServer, connector: ZendeskConnector
) -> None:
    trusted = NewTicket(user_id="u9", subject="From the backend", email="bob@example.com", requester_by_email=True)
    assert ticket_of(server, await connector.create_ticket(trusted))["requester_id"] == BOB
    assert calls(server) == [("POST", "/api/v2/tickets.json")]  # Zendesk resolves the email itself
    new = NewTicket(user_id="u9", subject="New address", name="Nina", email="nina@example.com", requester_by_email=True)
    nina = user_of(server, ticket_of(server, await connector.create_ticket(new))["requester_id"])
    assert (nina["name"], nina["email"], nina["role"]) == ("Nina", "nina@example.com", "end-user")
    no_email = NewTicket(user_id="u9", subject="No address", requester_by_email=True)
    anonymous = user_of(server, ticket_of(server, await connector.create_ticket(no_email))["requester_id"])
    assert anonymous["external_id"] == "u9"  # without an email the customer's own end user, as for anyone


@pytest.mark.parametrize(("external_id", "role"), [("alice-sso", "agent"), ("Cust-7", "end-user")])
async def test_a_user_id_that_zendesk_matches_to_someone_else_is_refused(
    server: BackgroundServer, connector: ZendeskConnector, zd: httpx.Client, external_id: str, role: str
) -> None:
    """An agent's SSO external_id, or an end user's that differs only in case (Zendesk ignores case)."""
    owner = ALICE
    if role == "end-user":
        owner = zd.post("/users.json", json={"user": {"name": "Cust", "external_id": external_id}}).json()["user"]["id"]
    else:
        assert zd.put(f"/users/{ALICE}.json", json={"user": {"external_id": external_id}}).status_code == 200
    before = user_of(server, owner)
    with pytest.raises(PermanentError) as info:
        await connector.create_ticket(NewTicket(user_id=external_id.lower(), subject="Mine?"))
    assert info.value.upstream_code == "requester_conflict" and f"Zendesk user {owner}" in info.value.message
    assert state(server)["tickets"] == {} and user_of(server, owner) == before


async def test_idempotency_key_replay_creates_one_ticket(server: BackgroundServer, connector: ZendeskConnector) -> None:
    keyed = NewTicket(**{**NEW.__dict__, "request_key": "req-1"})
    first = await connector.create_ticket(keyed)
    second = await connector.create_ticket(keyed)
    assert first == second
    snapshot = state(server)
    assert len(snapshot["tickets"]) == 1
    creates = [r for r in snapshot["requests"] if r["path"] == "/api/v2/tickets.json"]
    assert [(r["idempotency_key"], r["status"]) for r in creates] == [("req-1", 201), ("req-1", 201)]
    assert {r["idempotency_key"] for r in snapshot["requests"] if r not in creates} == {None}  # user calls: no key
    with pytest.raises(PermanentError) as info:
        await connector.create_ticket(NewTicket(**{**keyed.__dict__, "subject": "Another subject"}))
    assert info.value.status == 502 and "HTTP 400" in info.value.message
    assert len(state(server)["tickets"]) == 1


async def test_idempotency_keys_do_not_leak_between_threads(
    server: BackgroundServer, connector: ZendeskConnector
) -> None:
    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(connector.create_ticket, NewTicket(user_id=f"u{i}", subject=f"S{i}", request_key=f"k{i}"))
        tg.start_soon(connector.create_ticket, NewTicket(user_id="plain", subject="no key"))
    snapshot = state(server)
    by_subject = {t["subject"]: t["id"] for t in snapshot["tickets"].values()}
    assert len(by_subject) == 9
    keys = sorted(str(r["idempotency_key"]) for r in snapshot["requests"] if r["path"] == "/api/v2/tickets.json")
    assert keys == sorted([f"k{i}" for i in range(8)] + ["None"])
    assert {r["idempotency_key"] for r in snapshot["requests"] if r["path"].startswith("/api/v2/users")} == {None}


# ------------------------------------------------------------------------------------------------- read


async def test_get_ticket_is_fresh_and_maps_statuses(
    server: BackgroundServer, connector: ZendeskConnector, zd: httpx.Client
) -> None:
    tid = await connector.create_ticket(NEW)
    first = await connector.get_ticket(tid)
    assert (first.agent_id, first.status, first.raw_status) == (None, TicketStatus.OPEN, "new")
    zd.put(f"/tickets/{tid}.json", json={"ticket": {"assignee_id": ALICE}})
    assert (await connector.get_ticket(tid)).agent_id == f"zd_{ALICE}"  # not zenpy's cached object
    zd.put(f"/tickets/{tid}.json", json={"ticket": {"assignee_id": BOB}})
    assert (await connector.get_ticket(tid)).agent_id == f"zd_{BOB}"
    expected = {
        "pending": TicketStatus.OPEN,
        "hold": TicketStatus.OPEN,
        "solved": TicketStatus.SOLVED,
        "closed": TicketStatus.CLOSED,
    }
    for raw, status in expected.items():
        assert zd.put(f"/tickets/{tid}.json", json={"ticket": {"status": raw}}).status_code == 200
        got = await connector.get_ticket(tid)
        assert (got.status, got.raw_status, got.ticket_id) == (status, raw, tid)
    gets = [r for r in state(server)["requests"] if r["method"] == "GET" and r["path"].startswith("/api/v2/tickets/")]
    assert len(gets) == 7


async def test_deleted_and_unknown_tickets(connector: ZendeskConnector, zd: httpx.Client) -> None:
    tid = await connector.create_ticket(NEW)
    zd.delete(f"/tickets/{tid}.json")
    assert (await connector.get_ticket(tid)).status == TicketStatus.DELETED
    assert (await connector.get_ticket("987654")).status == TicketStatus.DELETED
    with pytest.raises(NotFound):
        await connector.get_ticket("ZENDESK#1")
    with pytest.raises(NotFound):
        await connector.add_comment(Comment(ticket_id=tid, body="x", author=Author.CUSTOMER, author_id="u", key="k"))


# --------------------------------------------------------------------------------------------- comments


async def test_comments_as_requester_and_as_agent(server: BackgroundServer, connector: ZendeskConnector) -> None:
    tid = await connector.create_ticket(NEW)
    requester_id = ticket_of(server, tid)["requester_id"]
    fresh = ZendeskConnector(connector.settings, connector.limiter)  # no remembered requester: asks Zendesk
    ids = [
        await fresh.add_comment(
            Comment(ticket_id=tid, body="from customer", author=Author.CUSTOMER, author_id="user1", key="c1")
        ),
        await connector.add_comment(
            Comment(ticket_id=tid, body="from Alice", author=Author.AGENT, author_id=f"zd_{ALICE}", key="c2")
        ),
        await connector.add_comment(
            Comment(
                ticket_id=tid,
                body="internal note",
                author=Author.AGENT,
                author_id=f"zd_{BOB}",
                key="c3",
                public=False,
            )
        ),
        await connector.add_comment(
            Comment(
                ticket_id=tid,
                body="agent without Zendesk id",
                author=Author.AGENT,
                author_id="im-agent-7",
                key="c4",
            )
        ),
        await connector.add_comment(
            Comment(ticket_id=tid, body="a raw user id", author=Author.AGENT, author_id=str(BOB), key="c5")
        ),
    ]
    await fresh.close()
    comments = state(server)["comments"][tid][1:]
    assert [str(c["id"]) for c in comments] == ids
    assert [(c["body"], c["author_id"], c["public"]) for c in comments] == [
        ("from customer", requester_id, True),
        ("from Alice", ALICE, True),
        ("internal note", BOB, False),
        ("agent without Zendesk id", 10001, True),
        ("a raw user id", 10001, True),  # an account without the agent prefix is nobody's: the API user writes it
    ]


async def test_several_messages_make_one_comment(server: BackgroundServer, connector: ZendeskConnector) -> None:
    """One sender's messages are that sender's comment; several senders' are the API user's, each run labelled."""
    tid = await connector.create_ticket(NEW)
    requester_id = ticket_of(server, tid)["requester_id"]

    def message(body: str, who: str) -> Comment:
        author = Author.AGENT if who.startswith("zd_") else Author.CUSTOMER
        return Comment(ticket_id=tid, body=body, author=author, author_id=who, key=body)

    updates = len(state(server)["requests"])
    one = await connector.add_comments([message("hello", "user1"), message("anyone?", "user1")])
    mixed = [message("a", "user1"), message("b", f"zd_{ALICE}"), message("c", f"zd_{ALICE}"), message("d", "user1")]
    several = await connector.add_comments(mixed)
    puts = [r for r in state(server)["requests"][updates:] if r["method"] == "PUT"]
    assert len(puts) == 2  # one ticket update each
    comments = state(server)["comments"][tid][1:]
    assert [str(c["id"]) for c in comments] == [one, several]
    assert [(c["body"], c["author_id"], c["public"]) for c in comments] == [
        ("hello\nanyone?", requester_id, True),
        (f"Customer (user1):\na\nAgent ({ALICE}):\nb\nc\nCustomer (user1):\nd", 10001, True),
    ]
    assert connector.update_budget == UpdateBudget(30, 600.0)


async def test_comment_reopens_solved_and_closed_is_permanent(
    server: BackgroundServer, zd: httpx.Client, connector: ZendeskConnector
) -> None:
    tid = await connector.create_ticket(NEW)
    zd.put(f"/tickets/{tid}.json", json={"ticket": {"status": "solved"}})
    await connector.add_comment(
        Comment(ticket_id=tid, body="still broken", author=Author.CUSTOMER, author_id="user1", key="c1")
    )
    assert (await connector.get_ticket(tid)).status == TicketStatus.OPEN
    zd.put(f"/tickets/{tid}.json", json={"ticket": {"status": "closed"}})
    with pytest.raises(PermanentError) as info:
        await connector.add_comment(
            Comment(ticket_id=tid, body="late", author=Author.CUSTOMER, author_id="user1", key="c2")
        )
    assert "HTTP 422" in info.value.message and "closed prevents ticket update" in info.value.message
    assert info.value.upstream == "zendesk"


# --------------------------------------------------------------------------------------------- failures


async def test_429_surfaces_at_once_with_retry_after(server: BackgroundServer, connector: ZendeskConnector) -> None:
    control(server, "rate_limit", {"count": 1, "retry_after": 30})
    started = time.monotonic()
    with pytest.raises(RetriableError) as info:
        await connector.get_ticket("1")
    assert time.monotonic() - started < 5  # zenpy would have slept 30 s in the worker thread
    assert (info.value.retry_after, info.value.upstream_code) == (30.0, 429)
    tid = await connector.create_ticket(NEW)  # and the next call goes through
    assert (await connector.get_ticket(tid)).status == TicketStatus.OPEN


async def test_finding_the_end_user_keeps_the_error_mapping(
    server: BackgroundServer, connector: ZendeskConnector
) -> None:
    control(server, "rate_limit", {"count": 1, "retry_after": 30})  # the user search is a create's first call
    with pytest.raises(RetriableError) as info:
        await connector.create_ticket(NEW)
    assert (info.value.retry_after, info.value.upstream_code) == (30.0, 429)
    control(server, "faults", {"error_rate": 1.0, "status": 503, "paths": ["/api/v2/users/create_or_update"]})
    with pytest.raises(RetriableError):
        await connector.create_ticket(NEW)
    control(server, "faults", {})
    # the fault middleware answers before the API's log: two searches reached it, the creates did not
    assert [r["path"] for r in state(server)["requests"]] == ["/api/v2/users/search.json"] * 2
    assert await connector.create_ticket(NEW) and len(state(server)["tickets"]) == 1


@pytest.mark.parametrize(
    "faults", [{"error_rate": 1.0, "status": 503}, {"error_rate": 1.0, "status": 500}, {"outage": True}]
)
async def test_5xx_and_outage_are_retriable(
    server: BackgroundServer, connector: ZendeskConnector, faults: dict[str, Any]
) -> None:
    control(server, "faults", faults)
    with pytest.raises(RetriableError):
        await connector.create_ticket(NEW)
    with pytest.raises(RetriableError):
        await connector.get_ticket("1")
    control(server, "faults", {})
    assert await connector.create_ticket(NEW)


async def test_unreachable_is_retriable() -> None:
    conn = ZendeskConnector(settings_for(f"http://127.0.0.1:{free_port()}"), anyio.CapacityLimiter(1))
    with pytest.raises(RetriableError) as info:
        await conn.get_ticket("1")
    assert info.value.upstream_code == "connection"
    await conn.close()


async def test_a_bare_404_is_not_a_deleted_ticket() -> None:
    with BackgroundServer(Starlette()) as elsewhere:  # answers a plain-text 404 to everything
        conn = ZendeskConnector(settings_for(elsewhere.url), anyio.CapacityLimiter(1))
        with pytest.raises(PermanentError) as info:
            await conn.get_ticket("1")
        await conn.close()
    assert "ZENDESK_URL" in info.value.message


async def test_bad_token_is_permanent_and_secret_free(server: BackgroundServer) -> None:
    wrong = "wrong-token-that-must-not-leak"
    conn = ZendeskConnector(settings_for(server.url, zendesk_api_token=wrong), anyio.CapacityLimiter(1))
    for call in (conn.check(), conn.create_ticket(NEW), conn.get_ticket("1")):
        with pytest.raises(PermanentError) as info:
            await call
        text = json.dumps(info.value.body()) + str(info.value) + repr(info.value.__cause__)
        assert wrong not in text and TOKEN not in text
        assert "ZENDESK_API_TOKEN" in info.value.message
    await conn.close()


async def test_check(connector: ZendeskConnector) -> None:
    line = await connector.check()
    assert EMAIL in line and "admin" in line and TOKEN not in line


# ------------------------------------------------------------------------------------------------ setup


def zendesk_signature(secret: str, timestamp: str, body: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), (timestamp + body).encode(), hashlib.sha256).digest()).decode()


def test_zendesk_webhook_vector() -> None:
    vector = VECTORS["zendesk_webhook"]
    assert (
        zendesk_signature(vector["secret"], vector["X-Zendesk-Webhook-Signature-Timestamp"], vector["body"])
        == vector["X-Zendesk-Webhook-Signature"]
    )


def test_setup_is_idempotent_and_teardown_removes(server: BackgroundServer) -> None:
    settings = settings_for(server.url)
    first = setup(settings, "https://bridge.example.com/")
    snapshot = state(server)
    [webhook] = snapshot["webhooks"].values()
    assert webhook["endpoint"] == "https://bridge.example.com/webhooks/zendesk"
    assert (webhook["http_method"], webhook["request_format"], webhook["status"]) == (
        "POST",
        "json",
        "active",
    )
    secret = snapshot["webhook_secrets"][webhook["id"]]
    assert f"set ZENDESK_WEBHOOK_SECRET={secret}" in "\n".join(first)
    assert webhook["subscriptions"] == SUBSCRIPTIONS and snapshot["triggers"] == {}  # ticket events, no triggers
    second = setup(settings, "https://bridge.example.com")
    again = state(server)
    assert list(again["webhooks"]) == [webhook["id"]] and again["triggers"] == {}
    assert all("already up to date" in line for line in second if line.startswith(("webhook", "trigger")))
    moved = setup(
        settings_for(server.url, zendesk_webhook_secret=SecretStr("configured-secret-123")),
        "https://new.example.com",
    )
    after = state(server)
    assert after["webhooks"][webhook["id"]]["endpoint"] == "https://new.example.com/webhooks/zendesk"
    assert after["webhook_secrets"][webhook["id"]] == "configured-secret-123"
    assert "Zendesk signs with ZENDESK_WEBHOOK_SECRET" in "\n".join(moved)
    removed = teardown(settings)
    assert len(removed) == 1 and state(server)["webhooks"] == {} and state(server)["triggers"] == {}
    assert teardown(settings)[0].startswith("nothing to remove")


def test_ticket_events_post_signed_webhooks_on_assignee_change(server: BackgroundServer, zd: httpx.Client) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> JSONResponse:
        received.append({"headers": dict(request.headers), "body": (await request.body()).decode()})
        return JSONResponse({"ok": True})

    with BackgroundServer(Starlette(routes=[Route("/webhooks/zendesk", hook, methods=["POST"])])) as bridge:
        lines = setup(settings_for(server.url), bridge.url)
        secret = next(line.split("=", 1)[1] for line in lines if "ZENDESK_WEBHOOK_SECRET=" in line)
        tid = anyio.run(ZendeskConnector(settings_for(server.url), anyio.CapacityLimiter(1)).create_ticket, NEW)
        zd.put(f"/tickets/{tid}.json", json={"ticket": {"assignee_id": ALICE}})
        deadline = time.monotonic() + 5
        while len(received) < 2 and time.monotonic() < deadline:  # assignee and (new -> open) status
            time.sleep(0.01)
    bodies = sorted((json.loads(r["body"]) for r in received), key=lambda b: b["type"])
    assert [(b["type"], b["detail"]["id"], b["event"]["previous"], b["event"]["current"]) for b in bodies] == [
        ("zen:event-type:ticket.agent_assignment_changed", tid, None, str(ALICE)),
        ("zen:event-type:ticket.status_changed", tid, "NEW", "OPEN"),
    ]
    for call in received:
        stamp = call["headers"]["x-zendesk-webhook-signature-timestamp"]
        assert call["headers"]["x-zendesk-webhook-signature"] == zendesk_signature(secret, stamp, call["body"])
