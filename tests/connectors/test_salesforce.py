"""The Salesforce connector against the Salesforce emulator over real HTTP, through simple-salesforce."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from bridge.errors import NotFound, PermanentError, RetriableError
from bridge.sandbox.salesforce import create_app
from bridge.sandbox.server import BackgroundServer, free_port
from connectors.base import Author, Comment, Connector, NewTicket, TicketStatus
from connectors.salesforce import SalesforceConnector
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.transport import RoutingSession, login_domain
from tests.conftest import VECTORS, rsa_key_pair, set_faults

USERNAME = "integration@example.com"
PASSWORD = "Pa55word-for-tests"
TOKEN = "SecTok3nForTests"
CONSUMER_KEY = "3MVG9-consumer-key"
CONSUMER_SECRET = "consumer-secret-for-tests"
SALESFORCE_IDS = VECTORS["salesforce_ids"]


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return rsa_key_pair()


@pytest.fixture(scope="module")
def server(keys: tuple[bytes, bytes]) -> Iterator[BackgroundServer]:
    app = create_app(
        username=USERNAME,
        password=PASSWORD,
        security_token=TOKEN,
        consumer_key=CONSUMER_KEY,
        consumer_secret=CONSUMER_SECRET,
        jwt_public_key_pem=keys[1],
    )
    with BackgroundServer(app) as srv:
        yield srv


@pytest.fixture
def emulator(server: BackgroundServer) -> BackgroundServer:
    httpx.post(server.url + "/_emulator/reset").raise_for_status()
    return server


def settings_for(url: str, **overrides: Any) -> SalesforceSettings:
    """SALESFORCE_* as the variables name them (salesforce_login_url, ...)."""
    values: dict[str, Any] = {
        "login_url": url,
        "username": USERNAME,
        "password": PASSWORD,
        "security_token": TOKEN,
        "_env_file": None,
    }
    values.update({key.removeprefix("salesforce_"): value for key, value in overrides.items()})
    return SalesforceSettings(**values)


def connector_for(url: str, **overrides: Any) -> SalesforceConnector:
    return SalesforceConnector(settings_for(url, **overrides), anyio.CapacityLimiter(8))


def state(server: BackgroundServer) -> dict[str, Any]:
    return httpx.get(server.url + "/_emulator/state").json()  # type: ignore[no-any-return]


def logins(server: BackgroundServer) -> int:
    return sum(
        1 for r in state(server)["requests"] if r["kind"] in ("soap_login", "oauth_token") and r["status"] == 200
    )


def control(server: BackgroundServer, route: str, body: Any = None) -> None:
    httpx.post(f"{server.url}/_emulator/{route}", json=body).raise_for_status()


def faults(server: BackgroundServer, **values: Any) -> None:
    control(server, "faults", values)


def admin_token(server: BackgroundServer) -> str:
    """A session of the org's admin (client credentials), separate from the connector's."""
    answer = httpx.post(
        server.url + "/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": CONSUMER_KEY, "client_secret": CONSUMER_SECRET},
    )
    return str(answer.json()["access_token"])


def admin_patch(server: BackgroundServer, case_id: str, body: dict[str, Any]) -> None:
    """What an agent or Omni-Channel does in Salesforce: a real REST PATCH with its own session."""
    token = admin_token(server)
    response = httpx.patch(
        f"{server.url}/services/data/v62.0/sobjects/Case/{case_id}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 204, response.text


def admin_delete(server: BackgroundServer, case_id: str) -> None:
    token = admin_token(server)
    response = httpx.delete(
        f"{server.url}/services/data/v62.0/sobjects/Case/{case_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 204


TICKET = NewTicket(
    user_id="user1", subject="Printer on fire", description="It smokes", name="Jane", email="jane@example.com"
)


# --- protocol and IDs ---------------------------------------------------------------------------------------


def test_satisfies_the_protocol() -> None:
    assert SalesforceConnector.name == "salesforce"
    assert isinstance(connector_for("https://login.salesforce.com"), Connector)


@pytest.mark.parametrize("vector", SALESFORCE_IDS, ids=lambda v: v["id15"])
def test_id_helpers_follow_the_vectors(vector: dict[str, str]) -> None:
    sf = connector_for("https://login.salesforce.com")
    id15, id18 = vector["id15"], vector["id18"]
    prefix = id15[:3]
    assert sf.ticket_id(id15) == (id18 if prefix == "500" else None)
    assert sf.ticket_id(id18) == (id18 if prefix == "500" else None)
    assert sf.agent_id(id15) == (f"sf_{id18}" if prefix == "005" else None)
    assert sf.agent_id(id18) == (f"sf_{id18}" if prefix == "005" else None)
    if prefix == "500":
        assert sf.group_id(id15) == sf.group_id(id18) == id18
        assert sf.ticket_id(id18[:15] + id18[15:].lower()) == id18  # the suffix is case-insensitive


def test_id_helpers_refuse_what_is_not_ours() -> None:
    sf = connector_for("https://login.salesforce.com")
    assert sf.ticket_id("ZENDESK#42") is None
    assert sf.ticket_id("5005g00000ABCdeAAA") is None  # wrong checksum
    assert sf.agent_id("00G5g000001QueU") is None  # a queue is nobody
    assert sf.agent_id("") is None
    assert sf.agent_id("sf_0055g00000XyZabAAF") is None  # an account is not a user Id
    assert sf.group_id("not-an-id") == "not-an-id"


def test_login_domain_and_rewriting() -> None:
    assert login_domain("https://login.salesforce.com") == "login"
    assert login_domain("https://test.salesforce.com") == "test"
    assert login_domain("https://acme.my.salesforce.com") == "acme.my"
    assert login_domain("http://127.0.0.1:9") == "login"
    assert login_domain("http://127.0.0.1:9", my_domain_required=True) == "bridge.my"
    session = RoutingSession("http://127.0.0.1:9000", "login")
    assert (
        session.rewrite("https://login.salesforce.com/services/Soap/u/62.0")
        == "http://127.0.0.1:9000/services/Soap/u/62.0"
    )
    assert (
        session.rewrite("https://127.0.0.1:9000/services/data/v62.0/") == "http://127.0.0.1:9000/services/data/v62.0/"
    )
    assert session.rewrite("https://na1.salesforce.com/x") == "https://na1.salesforce.com/x"
    real = RoutingSession("https://acme.my.salesforce.com", "acme.my")
    real.trust_instance("acme.my.salesforce.com")
    assert (
        real.rewrite("https://acme.my.salesforce.com/services/data/") == "https://acme.my.salesforce.com/services/data/"
    )
    session.close()
    real.close()


async def test_client_credentials_need_a_my_domain() -> None:
    with pytest.raises(PermanentError, match="My Domain"):
        connector_for(
            "https://login.salesforce.com",
            salesforce_username=None,
            salesforce_password=None,
            salesforce_security_token=None,
            salesforce_consumer_key=CONSUMER_KEY,
            salesforce_consumer_secret=CONSUMER_SECRET,
        )


# --- login flows --------------------------------------------------------------------------------------------


async def test_soap_login_once_then_reused(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    assert "soap" in await sf.check()
    case_id = await sf.create_ticket(TICKET)
    await sf.get_ticket(case_id)
    await sf.add_comment(Comment(case_id, "hello", Author.CUSTOMER, "user1", key="k1"))
    assert logins(emulator) == 1
    assert [r["kind"] for r in state(emulator)["requests"]].count("soap_login") == 1
    await sf.close()


async def test_create_ticket_writes_the_case(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    case_id = await sf.create_ticket(TICKET)
    assert sf.ticket_id(case_id) == case_id and case_id.startswith("500")
    case = state(emulator)["cases"][case_id]
    assert (
        case["Subject"],
        case["Description"],
        case["SuppliedName"],
        case["SuppliedEmail"],
        case["Origin"],
    ) == ("Printer on fire", "It smokes", "Jane", "jane@example.com", "Chat")
    await sf.close()


async def test_client_credentials_login(emulator: BackgroundServer) -> None:
    sf = connector_for(
        emulator.url,
        salesforce_username=None,
        salesforce_password=None,
        salesforce_security_token=None,
        salesforce_consumer_key=CONSUMER_KEY,
        salesforce_consumer_secret=CONSUMER_SECRET,
    )
    assert "client_credentials" in await sf.check()
    assert await sf.create_ticket(TICKET)
    assert [s["flow"] for s in state(emulator)["sessions"]] == ["client_credentials"]
    await sf.close()


async def test_oauth_password_login(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url, salesforce_consumer_key=CONSUMER_KEY, salesforce_consumer_secret=CONSUMER_SECRET)
    assert "oauth_password" in await sf.check()
    assert [s["flow"] for s in state(emulator)["sessions"]] == ["oauth_password"]
    await sf.close()


async def test_jwt_bearer_login(emulator: BackgroundServer, keys: tuple[bytes, bytes], tmp_path: Path) -> None:
    key_file = tmp_path / "server.key"
    key_file.write_bytes(keys[0])
    sf = connector_for(
        emulator.url,
        salesforce_password="unused",
        salesforce_security_token=None,
        salesforce_consumer_key=CONSUMER_KEY,
        salesforce_private_key_file=str(key_file),
    )
    assert "jwt" in await sf.check()
    assert await sf.create_ticket(TICKET)
    assert [s["flow"] for s in state(emulator)["sessions"]] == ["jwt_bearer"]
    await sf.close()


async def test_jwt_with_the_wrong_key_is_permanent(emulator: BackgroundServer, tmp_path: Path) -> None:
    key_file = tmp_path / "other.key"
    key_file.write_bytes(rsa_key_pair()[0])
    sf = connector_for(
        emulator.url,
        salesforce_password="unused",
        salesforce_security_token=None,
        salesforce_consumer_key=CONSUMER_KEY,
        salesforce_private_key_file=str(key_file),
    )
    with pytest.raises(PermanentError, match="invalid_grant") as caught:
        await sf.check()
    assert "SALESFORCE_PRIVATE_KEY_FILE" in caught.value.message
    # Settings refuse a key file that is missing at start; one removed later (a rotation gone wrong) is reported.
    vanishing = tmp_path / "vanishing.pem"
    vanishing.write_bytes(key_file.read_bytes())
    missing = connector_for(
        emulator.url,
        salesforce_password="unused",
        salesforce_security_token=None,
        salesforce_consumer_key=CONSUMER_KEY,
        salesforce_private_key_file=str(vanishing),
    )
    vanishing.unlink()
    with pytest.raises(PermanentError, match="cannot be read"):
        await missing.check()


async def test_wrong_password_is_permanent_and_secret_free(emulator: BackgroundServer) -> None:
    wrong = "Wr0ng-Passw0rd-xyz"
    sf = connector_for(emulator.url, salesforce_password=wrong)
    with pytest.raises(PermanentError) as caught:
        await sf.create_ticket(TICKET)
    error = caught.value
    assert error.upstream_code == "INVALID_LOGIN"
    assert "SALESFORCE_PASSWORD" in error.message
    for secret in (wrong, TOKEN, wrong + TOKEN):
        assert secret not in error.message and secret not in json.dumps(error.body())
    assert not state(emulator)["cases"]


async def test_wrong_consumer_secret_is_permanent(emulator: BackgroundServer) -> None:
    sf = connector_for(
        emulator.url,
        salesforce_username=None,
        salesforce_password=None,
        salesforce_security_token=None,
        salesforce_consumer_key=CONSUMER_KEY,
        salesforce_consumer_secret="not-the-secret",
    )
    with pytest.raises(PermanentError, match="invalid_client") as caught:
        await sf.check()
    assert "not-the-secret" not in caught.value.message


async def test_unreachable_login_host_is_retriable() -> None:
    sf = connector_for(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RetriableError, match="could not be reached"):
        await sf.check()


# --- tickets ------------------------------------------------------------------------------------------------


async def test_owner_changes_are_read_fresh(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    case_id = await sf.create_ticket(TICKET)
    first = await sf.get_ticket(case_id)
    assert (first.ticket_id, first.agent_id, first.status, first.raw_status) == (
        case_id,
        None,
        TicketStatus.OPEN,
        "New",
    )  # owned by the queue the assignment rule chose
    agent = state(emulator)["agent_ids"][0]
    admin_patch(emulator, case_id, {"OwnerId": agent[:15], "Status": "Working"})
    now = await sf.get_ticket(case_id[:15])
    assert (now.ticket_id, now.agent_id, now.status, now.raw_status) == (
        case_id,
        f"sf_{agent}",
        TicketStatus.OPEN,
        "Working",
    )
    admin_patch(emulator, case_id, {"OwnerId": state(emulator)["default_queue_id"]})
    assert (await sf.get_ticket(case_id)).agent_id is None
    await sf.close()


async def test_closed_and_reopened(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    case_id = await sf.create_ticket(TICKET)
    admin_patch(emulator, case_id, {"Status": "Closed"})
    closed = await sf.get_ticket(case_id)
    assert (closed.status, closed.raw_status) == (TicketStatus.CLOSED, "Closed")
    admin_patch(emulator, case_id, {"Status": "Escalated"})
    assert (await sf.get_ticket(case_id)).status is TicketStatus.OPEN
    await sf.close()


async def test_deleted_and_unknown_cases_are_deleted(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    case_id = await sf.create_ticket(TICKET)
    admin_delete(emulator, case_id)
    assert (await sf.get_ticket(case_id)).status is TicketStatus.DELETED
    assert (await sf.get_ticket("5005g00000ABCde")).status is TicketStatus.DELETED
    assert (await sf.get_ticket("ZENDESK#1")).status is TicketStatus.DELETED
    with pytest.raises(NotFound):
        await sf.add_comment(Comment(case_id, "too late", Author.AGENT, "005", key="k"))
    await sf.close()


async def test_a_404_for_a_case_that_exists_is_not_a_deletion(emulator: BackgroundServer) -> None:
    """A wrong API version or a Case the user cannot see also answers 404: the recycle bin decides."""
    sf = connector_for(emulator.url)
    case_id = await sf.create_ticket(TICKET)
    set_faults(emulator, error_rate=1.0, status=404, count=1, paths=["/services/data/"])  # the read, not the query
    with pytest.raises(PermanentError, match="which exists"):
        await sf.get_ticket(case_id)
    set_faults(emulator, error_rate=1.0, status=404, paths=["/services/data/"])
    with pytest.raises(PermanentError, match="SALESFORCE_API_VERSION"):
        await sf.get_ticket(case_id)
    set_faults(emulator)
    assert (await sf.get_ticket(case_id)).status is TicketStatus.OPEN
    await sf.close()


async def test_comments(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    case_id = await sf.create_ticket(TICKET)
    agent = state(emulator)["agent_ids"][0]
    public = await sf.add_comment(Comment(case_id[:15], "It still smokes", Author.CUSTOMER, "user1", key="m1"))
    note = await sf.add_comment(Comment(case_id, "check the fuse", Author.AGENT, f"sf_{agent}", key="m2", public=False))
    comments = state(emulator)["case_comments"]
    assert public.startswith("00a") and len(public) == 18
    assert comments[public]["ParentId"] == case_id
    assert comments[public]["CommentBody"] == "Customer (user1): It still smokes"
    assert comments[public]["IsPublished"] is True
    assert comments[note]["CommentBody"] == f"Agent ({agent}): check the fuse"
    assert comments[note]["IsPublished"] is False
    with pytest.raises(PermanentError):
        await sf.add_comment(Comment("ZENDESK#1", "x", Author.CUSTOMER, "user1", key="m3"))
    await sf.close()


async def test_several_messages_make_one_case_comment(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    case_id = await sf.create_ticket(TICKET)
    agent = state(emulator)["agent_ids"][0]
    batch = [
        Comment(case_id, "hello", Author.CUSTOMER, "user1", key="m1"),
        Comment(case_id, "anyone?", Author.CUSTOMER, "user1", key="m2"),
        Comment(case_id, "here", Author.AGENT, f"sf_{agent}", key="m3"),
    ]
    comment_id = await sf.add_comments(batch)
    comments = state(emulator)["case_comments"]
    assert [c["Id"] for c in comments.values() if c["ParentId"] == case_id] == [comment_id]
    assert comments[comment_id]["CommentBody"] == f"Customer (user1): hello\nanyone?\nAgent ({agent}): here"
    assert comments[comment_id]["IsPublished"] is True
    assert getattr(sf, "update_budget", None) is None  # Salesforce has no per-record update limit of this kind
    await sf.close()


async def test_request_key_makes_create_idempotent(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    ticket = NewTicket(user_id="u", subject="Once", email="u@example.com", request_key="req/42 é")
    first = await sf.create_ticket(ticket)
    assert await sf.create_ticket(ticket) == first
    assert list(state(emulator)["cases"]) == [first]
    await sf.close()


async def test_request_key_without_the_field_falls_back_to_create(emulator: BackgroundServer) -> None:
    emulator.app.state.sf["case_external_id_fields"] = []
    sf = connector_for(emulator.url)
    case_id = await sf.create_ticket(NewTicket(user_id="u", subject="No field", request_key="k-1"))
    assert state(emulator)["cases"][case_id]["Subject"] == "No field"
    await sf.close()


async def test_long_subject_is_cut_not_refused(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    case_id = await sf.create_ticket(NewTicket(user_id="u", subject="s" * 400))
    assert len(state(emulator)["cases"][case_id]["Subject"]) == 255
    await sf.close()


# --- sessions and errors ------------------------------------------------------------------------------------


async def test_expired_session_gets_exactly_one_relogin(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    case_id = await sf.create_ticket(TICKET)
    assert logins(emulator) == 1
    control(emulator, "expire_sessions")
    assert (await sf.get_ticket(case_id)).status is TicketStatus.OPEN
    rest = [(r["method"], r["status"]) for r in state(emulator)["requests"] if r["kind"] == "rest"]
    assert rest[-2:] == [("GET", 401), ("GET", 200)]
    assert logins(emulator) == 2
    await sf.get_ticket(case_id)
    assert logins(emulator) == 2
    await sf.close()


async def test_concurrent_calls_share_one_relogin(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    case_id = await sf.create_ticket(TICKET)
    control(emulator, "expire_sessions")
    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(sf.get_ticket, case_id)
    assert logins(emulator) == 2
    await sf.close()


async def test_persistent_401_fails_bounded(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    await sf.check()
    faults(emulator, status=401, error_rate=1.0, paths=["/services/data/"])
    with pytest.raises(PermanentError, match="INVALID_SESSION_ID"):
        await sf.create_ticket(TICKET)
    assert logins(emulator) == 2  # the first login and exactly one more
    rest = [r for r in state(emulator)["requests"] if r["kind"] == "rest" and r["status"] == 401]
    assert len(rest) == 2


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retriable(emulator: BackgroundServer, status: int) -> None:
    sf = connector_for(emulator.url)
    await sf.check()
    faults(emulator, status=status, error_rate=1.0, paths=["/services/data/"], count=1)
    with pytest.raises(RetriableError) as caught:
        await sf.create_ticket(TICKET)
    if status == 503:
        assert caught.value.retry_after == 1.0
    assert await sf.create_ticket(TICKET)  # the fault is spent
    await sf.close()


async def test_outage_during_login_is_retriable(emulator: BackgroundServer) -> None:
    faults(emulator, outage=True)
    with pytest.raises(RetriableError):
        await connector_for(emulator.url).check()


async def test_timeout_is_retriable(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    await sf.check()
    sf.client.session.timeout = 0.2
    faults(emulator, latency=0.6, paths=["/services/data/"])
    with pytest.raises(RetriableError, match="in time"):
        await sf.get_ticket("5005g00000ABCdeAAH")
    faults(emulator)
    await sf.close()


async def test_bad_request_is_permanent(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    await sf.check()
    faults(emulator, status=400, error_rate=1.0, paths=["/services/data/"], count=1)
    with pytest.raises(PermanentError):
        await sf.create_ticket(TICKET)
    await sf.close()


async def test_invalid_email_is_permanent_with_salesforce_message(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    with pytest.raises(PermanentError) as caught:
        await sf.create_ticket(NewTicket(user_id="u", subject="x", email="not an email"))
    assert caught.value.upstream_code == "INVALID_EMAIL_ADDRESS"
    assert "invalid email address: not an email" in caught.value.message
    assert not state(emulator)["cases"]
    await sf.close()


async def test_rate_limits_are_retriable_with_retry_after(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url)
    case_id = await sf.create_ticket(TICKET)
    control(emulator, "limits", {"api_limit": 1})
    with pytest.raises(RetriableError) as caught:
        await sf.get_ticket(case_id)
    assert caught.value.upstream_code == "REQUEST_LIMIT_EXCEEDED" and caught.value.retry_after == 60.0
    control(emulator, "limits", {"api_limit": None})
    faults(emulator, status=429, error_rate=1.0, paths=["/services/data/"], count=1)
    with pytest.raises(RetriableError) as caught:
        await sf.get_ticket(case_id)
    assert caught.value.retry_after == 1.0
    await sf.close()


async def test_check_names_a_wrong_api_version(emulator: BackgroundServer) -> None:
    sf = connector_for(emulator.url, salesforce_api_version="9.0")
    with pytest.raises(PermanentError, match="SALESFORCE_API_VERSION"):
        await sf.check()
