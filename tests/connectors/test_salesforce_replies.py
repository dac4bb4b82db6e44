"""Agents' replies on a Case (connectors/salesforce/replies.py) against the Salesforce emulator over real HTTP,
through simple-salesforce and the connector's own client, as the connector will call them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpx
import pytest
from simple_salesforce import Salesforce

from bridge.sandbox.salesforce import create_app
from bridge.sandbox.server import BackgroundServer
from connectors.base import Author, Comment, NewTicket
from connectors.salesforce import SalesforceConnector
from connectors.salesforce.replies import CaseComment, integration_user_id, is_agent_reply, read_comment
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.transport import RoutingSession

T = TypeVar("T")
USERNAME, PASSWORD, TOKEN = "integration@example.com", "Pa55word-for-tests", "SecTok3nForTests"
CONSUMER_KEY, CONSUMER_SECRET = "3MVG9-consumer-key", "consumer-secret-for-tests"
V = "/services/data/v62.0"
FLOWS: dict[str, dict[str, Any]] = {
    "soap": {"salesforce_username": USERNAME, "salesforce_password": PASSWORD, "salesforce_security_token": TOKEN},
    "client_credentials": {
        "salesforce_consumer_key": CONSUMER_KEY,
        "salesforce_consumer_secret": CONSUMER_SECRET,
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    app = create_app(
        username=USERNAME,
        password=PASSWORD,
        security_token=TOKEN,
        consumer_key=CONSUMER_KEY,
        consumer_secret=CONSUMER_SECRET,
    )
    with BackgroundServer(app) as srv:
        yield srv


@pytest.fixture
def emulator(server: BackgroundServer) -> BackgroundServer:
    httpx.post(server.url + "/_emulator/reset").raise_for_status()
    return server


def state(server: BackgroundServer) -> dict[str, Any]:
    return httpx.get(server.url + "/_emulator/state").json()  # type: ignore[no-any-return]


def connector_for(server: BackgroundServer, flow: str = "soap") -> SalesforceConnector:
    """SALESFORCE_* as the variables name them (salesforce_login_url, ...)."""
    values: dict[str, Any] = {"salesforce_login_url": server.url, **FLOWS[flow]}
    settings = SalesforceSettings(_env_file=None, **{k.removeprefix("salesforce_"): v for k, v in values.items()})
    return SalesforceConnector(settings, anyio.CapacityLimiter(4))


async def call(connector: SalesforceConnector, fn: Callable[[Salesforce], T]) -> T:
    """What the connector does with these functions: run them through its logged-in client, in a thread."""
    return await anyio.to_thread.run_sync(lambda: connector.client.call("read the reply", fn))


def agent_token(server: BackgroundServer, user_id: str) -> str:
    answer = httpx.post(server.url + "/_emulator/sessions", json={"userId": user_id})
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def agent_writes(server: BackgroundServer, agent: str, case_id: str, body: str, published: bool = True) -> str:
    """An agent adds a CaseComment in Salesforce with the agent's own session: Salesforce records the agent as
    its author."""
    response = httpx.post(
        f"{server.url}{V}/sobjects/CaseComment/",
        json={"ParentId": case_id, "CommentBody": body, "IsPublished": published},
        headers={"Authorization": "Bearer " + agent_token(server, agent)},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def new_case(connector: SalesforceConnector) -> str:
    return await connector.create_ticket(NewTicket(user_id="user1", subject="Printer on fire"))


# --- who the bridge is --------------------------------------------------------------------------------------


@pytest.mark.parametrize("flow", FLOWS)
async def test_the_integration_user_is_whoever_the_client_logged_in_as(emulator: BackgroundServer, flow: str) -> None:
    connector = connector_for(emulator, flow)
    api_user = state(emulator)["api_user_id"]
    assert await call(connector, integration_user_id) == api_user
    # Through the REST API and its session: an expired session means one new login, not a failure.
    httpx.post(emulator.url + "/_emulator/expire_sessions").raise_for_status()
    assert await call(connector, integration_user_id) == api_user
    assert connector.client.logins == 2
    await connector.close()


def test_an_agents_session_is_the_agent(emulator: BackgroundServer) -> None:
    bob = state(emulator)["agent_ids"][1]
    instance = urlsplit(emulator.url).netloc
    session = RoutingSession(emulator.url, "login")
    session.trust_instance(instance)
    sf = Salesforce(session_id=agent_token(emulator, bob), instance=instance, session=session, version="62.0")
    assert integration_user_id(sf) == bob


# --- reading a comment --------------------------------------------------------------------------------------


async def test_an_agents_published_comment_is_a_reply_with_the_agents_name(emulator: BackgroundServer) -> None:
    connector = connector_for(emulator)
    alice = state(emulator)["agent_ids"][0]
    case_id = await new_case(connector)
    comment_id = agent_writes(emulator, alice, case_id, "Have you tried turning it off?")
    me = await call(connector, integration_user_id)
    # The event may carry 15-character Ids; Salesforce answers with 18.
    comment = await call(connector, lambda sf: read_comment(sf, comment_id[:15]))
    assert comment == CaseComment(
        id=comment_id,
        case_id=case_id,
        body="Have you tried turning it off?",
        published=True,
        author_id=alice,
        author_name="Alice Agent",
    )
    assert is_agent_reply(comment, case_id, me)
    assert is_agent_reply(comment, case_id[:15], me[:15])
    await connector.close()


async def test_private_comments_the_bridges_own_and_other_cases_are_not_replies(emulator: BackgroundServer) -> None:
    connector = connector_for(emulator)
    alice = state(emulator)["agent_ids"][0]
    case_id, other_case = await new_case(connector), await new_case(connector)
    me = await call(connector, integration_user_id)

    private = await call(connector, lambda sf: read_comment(sf, agent_writes(emulator, alice, case_id, "fuse?", False)))
    assert private is not None and private.published is False
    assert not is_agent_reply(private, case_id, me)

    # The customer's chat message, written into the Case by the bridge: it must never come back into the chat.
    echo_id = await connector.add_comment(Comment(case_id, "It still smokes", Author.CUSTOMER, "user1", key="m1"))
    echo = await call(connector, lambda sf: read_comment(sf, echo_id))
    assert echo is not None and echo.published and echo.author_id == me and echo.author_name == "Integration User"
    assert not is_agent_reply(echo, case_id, me)

    elsewhere = await call(connector, lambda sf: read_comment(sf, agent_writes(emulator, alice, other_case, "hi")))
    assert elsewhere is not None and is_agent_reply(elsewhere, other_case, me)
    assert not is_agent_reply(elsewhere, case_id, me)
    await connector.close()


async def test_no_comment_for_unknown_deleted_or_malformed_ids(emulator: BackgroundServer) -> None:
    connector = connector_for(emulator)
    alice = state(emulator)["agent_ids"][0]
    case_id = await new_case(connector)
    comment_id = agent_writes(emulator, alice, case_id, "soon gone")
    unknown = comment_id[:9] + ("z" if comment_id[9] != "z" else "y") + comment_id[10:15]
    assert await call(connector, lambda sf: read_comment(sf, unknown)) is None
    httpx.delete(
        f"{emulator.url}{V}/sobjects/Case/{case_id}",
        headers={"Authorization": "Bearer " + agent_token(emulator, alice)},
    ).raise_for_status()
    assert await call(connector, lambda sf: read_comment(sf, comment_id)) is None

    asked = len(state(emulator)["requests"])
    for malformed in (case_id, "00a' OR Id != '", "", "00a5g000000001"):
        assert await call(connector, partial(read_comment, comment_id=malformed)) is None
    assert len(state(emulator)["requests"]) == asked  # nothing but a well-formed CaseComment Id reaches SOQL
    await connector.close()
