"""The conformance suite: what every connector must do, run against each built-in one and its emulator, and against
the toy connector (toy_connector/), loaded through its entry point like any plugin.

A plugin author runs the same tests by adding a `Harness` for their connector to HARNESSES.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

from bridge.errors import RetriableError
from bridge.sandbox.server import BackgroundServer
from connectors.base import Author, Comment, Connector, NewTicket, TicketStatus, load_connector_classes
from tests.conformance import toy_connector
from tests.conftest import SalesforceAdmin, ZendeskAdmin, helpdesk_settings, make_settings, set_faults


@dataclass
class Harness:
    """How the suite plays the helpdesk's admin for one connector."""

    name: str
    agents: list[str]  # helpdesk user IDs of two agents
    prefix: str  # of the agents' IM accounts, so they never meet a customer's userId
    queue: str | None  # an owner that is not a user, when the helpdesk has one
    set_owner: Callable[[str, str | None], None]
    close: Callable[[str], None]
    delete: Callable[[str], None]
    settings: dict[str, Any]
    outage: Callable[[bool], None]  # the helpdesk stops answering (5xx), or comes back
    finish: Callable[[], None] = lambda: None
    # An agent writes a comment in the helpdesk (ticket, agent, words, public) and gets its id: for `get_reply`.
    agent_writes: Callable[[str, str, str, bool], str] | None = None


def emulator_outage(server: BackgroundServer) -> Callable[[bool], None]:
    return lambda down: set_faults(server, outage=True, status=503) if down else set_faults(server)


def salesforce(server: BackgroundServer) -> Harness:
    admin = SalesforceAdmin(server)

    def agent_writes(case_id: str, agent: str, body: str, public: bool) -> str:
        token = httpx.post(server.url + "/_emulator/sessions", json={"userId": agent}).json()["access_token"]
        made = httpx.post(
            f"{server.url}/services/data/v62.0/sobjects/CaseComment/",
            json={"ParentId": case_id, "CommentBody": body, "IsPublished": public},
            headers={"Authorization": "Bearer " + token},
        )
        return str(made.json()["id"])

    return Harness(
        "salesforce",
        admin.state["agent_ids"][:2],
        "sf_",
        admin.state["default_queue_id"],
        set_owner=lambda t, owner: admin.update_case(t, OwnerId=owner or admin.state["default_queue_id"]),
        close=lambda t: admin.update_case(t, Status="Closed"),
        delete=admin.delete_case,
        settings=helpdesk_settings(sf_url=server.url),
        outage=emulator_outage(server),
        finish=admin.http.close,
        agent_writes=agent_writes,
    )


def zendesk(server: BackgroundServer) -> Harness:
    admin = ZendeskAdmin(server)

    def agent_writes(ticket_id: str, agent: str, body: str, public: bool) -> str:
        admin.update(ticket_id, comment={"body": body, "public": public, "author_id": int(agent)})
        return str(admin.comments(ticket_id)[-1]["id"])

    return Harness(
        "zendesk",
        [str(a) for a in admin.agents[:2]],
        "zd_",
        None,
        set_owner=lambda t, owner: admin.update(t, assignee_id=int(owner) if owner else None),
        close=lambda t: admin.update(t, status="closed"),
        delete=admin.delete,
        # The connector spaces its own calls to ZENDESK_RATE_LIMIT; the suite talks to the emulator unspaced.
        settings={**helpdesk_settings(zd_url=server.url), "zendesk_rate_limit": 0},
        outage=emulator_outage(server),
        finish=admin.http.close,
        agent_writes=agent_writes,
    )


def toy(desk_name: str) -> Harness:
    desk = toy_connector.DESKS[desk_name]

    def set_owner(ticket_id: str, owner: str | None) -> None:
        desk.tickets[ticket_id].owner = owner or desk.queue

    def close(ticket_id: str) -> None:
        desk.tickets[ticket_id].status = TicketStatus.CLOSED

    def delete(ticket_id: str) -> None:
        del desk.tickets[ticket_id]

    return Harness(
        "toy",
        list(desk.agents),
        "toy_",
        desk.queue,
        set_owner=set_owner,
        close=close,
        delete=delete,
        settings={"toy_desk": desk_name},
        outage=lambda down: setattr(desk, "down", down),
    )


# connector -> (the fixture of its helpdesk, how the suite plays that helpdesk's admin)
HARNESSES: dict[str, tuple[str, Callable[[Any], Harness]]] = {
    "salesforce": ("sf_server", salesforce),
    "zendesk": ("zd_server", zendesk),
    "toy": ("toy_desk", toy),
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    server_fixture, make = HARNESSES[request.param]
    h = make(request.getfixturevalue(server_fixture))
    yield h
    h.finish()


@pytest.fixture
async def connector(harness: Harness, tmp_path: Any) -> AsyncIterator[Connector]:
    settings = make_settings(f"sqlite:///{tmp_path}/c.db", "http://127.0.0.1:9", **harness.settings)
    cls = load_connector_classes()[harness.name]
    assert cls.enabled(settings.connectors[harness.name])
    instance = cls(settings.connectors[harness.name], anyio.CapacityLimiter(8))
    await instance.start()
    yield instance
    await instance.close()


def test_enabled_only_with_credentials(harness: Harness, tmp_path: Any) -> None:
    cls = load_connector_classes()[harness.name]
    settings = make_settings(f"sqlite:///{tmp_path}/c.db", "http://127.0.0.1:9")
    assert not cls.enabled(settings.connectors[harness.name]) and harness.name not in settings.enabled_connectors


async def test_ids(connector: Connector, harness: Harness) -> None:
    ticket_id = await connector.create_ticket(NewTicket(user_id="conf-1", subject="Ids"))
    group_id = connector.group_id(ticket_id)
    assert connector.ticket_id(group_id) == ticket_id
    assert 0 < len(group_id.encode()) <= 48 and group_id.isprintable() and not group_id.startswith("@TGS#")
    assert connector.ticket_id("some-other-group") is None
    account = connector.agent_id(harness.agents[0])
    assert account == harness.prefix + harness.agents[0] and len(account.encode()) <= 32
    if harness.queue:
        assert connector.agent_id(harness.queue) is None


async def test_ticket_life(connector: Connector, harness: Harness) -> None:
    ticket_id = await connector.create_ticket(
        NewTicket(user_id="conf-2", subject="Life", description="d", name="Jane", email="jane@example.com")
    )
    fresh = await connector.get_ticket(ticket_id)
    assert fresh.ticket_id == ticket_id and fresh.status is TicketStatus.OPEN and fresh.agent_id is None
    harness.set_owner(ticket_id, harness.agents[0])
    first, second = (harness.prefix + agent for agent in harness.agents)
    assert (await connector.get_ticket(ticket_id)).agent_id == first, "read fresh, never cached"
    harness.set_owner(ticket_id, harness.agents[1])
    assert (await connector.get_ticket(ticket_id)).agent_id == second
    harness.set_owner(ticket_id, None)
    assert (await connector.get_ticket(ticket_id)).agent_id is None
    harness.close(ticket_id)
    assert (await connector.get_ticket(ticket_id)).status is TicketStatus.CLOSED


async def test_deleted_ticket(connector: Connector, harness: Harness) -> None:
    ticket_id = await connector.create_ticket(NewTicket(user_id="conf-3", subject="Gone"))
    harness.delete(ticket_id)
    assert (await connector.get_ticket(ticket_id)).status is TicketStatus.DELETED


async def test_request_key_makes_one_ticket(connector: Connector) -> None:
    ticket = NewTicket(user_id="conf-4", subject="Once", request_key="conformance-key-1")
    assert await connector.create_ticket(ticket) == await connector.create_ticket(ticket)


async def test_comments(connector: Connector, harness: Harness) -> None:
    ticket_id = await connector.create_ticket(NewTicket(user_id="conf-5", subject="Talk", email="c5@example.com"))
    harness.set_owner(ticket_id, harness.agents[0])
    for author, author_id in ((Author.CUSTOMER, "conf-5"), (Author.AGENT, harness.prefix + harness.agents[0])):
        comment_id = await connector.add_comment(
            Comment(ticket_id, f"hello from the {author.value}", author, author_id, key=f"k-{author.value}")
        )
        assert comment_id


async def test_replies_read_back(connector: Connector, harness: Harness) -> None:
    """A connector with `get_reply` tells an agent's public comment from a private one and from its own."""
    get_reply = getattr(connector, "get_reply", None)
    if get_reply is None or harness.agent_writes is None:
        pytest.skip(f"{harness.name} relays no replies")
    ticket_id = await connector.create_ticket(NewTicket(user_id="conf-8", subject="Replies"))
    agent = harness.agents[0]
    public = await get_reply(ticket_id, harness.agent_writes(ticket_id, agent, "Try this", True))
    assert public is not None and (public.text, public.public, public.by_bridge) == ("Try this", True, False)
    assert public.author_account == harness.prefix + agent and public.author_name
    private = await get_reply(ticket_id, harness.agent_writes(ticket_id, agent, "Note to self", False))
    assert private is not None and private.public is False
    mine = await connector.add_comment(Comment(ticket_id, "from the chat", Author.CUSTOMER, "conf-8", key="k8"))
    own = await get_reply(ticket_id, mine)
    assert own is not None and own.by_bridge and own.author_account is None
    other = await connector.create_ticket(NewTicket(user_id="conf-8", subject="Another"))
    assert await get_reply(other, mine) is None  # a comment is read on its own ticket only


async def test_outage_is_retriable(connector: Connector, harness: Harness) -> None:
    ticket_id = await connector.create_ticket(NewTicket(user_id="conf-6", subject="Outage"))
    harness.outage(True)
    try:
        with pytest.raises(RetriableError):
            await connector.get_ticket(ticket_id)
    finally:
        harness.outage(False)


async def test_check_describes_the_upstream(connector: Connector) -> None:
    assert isinstance(await connector.check(), str)


async def test_concurrent_calls_keep_their_connections(
    harness: Harness, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # As many threads as the bridge runs helpdesk calls in, all talking at once: none should find the pool full.
    settings = make_settings(
        f"sqlite:///{tmp_path}/c.db", "http://127.0.0.1:9", bridge_helpdesk_threads=32, **harness.settings
    )
    connector = load_connector_classes()[harness.name](settings.connectors[harness.name], anyio.CapacityLimiter(32))
    await connector.start()
    try:
        ticket_id = await connector.create_ticket(NewTicket(user_id="conf-7", subject="Busy"))
        caplog.set_level("WARNING", logger="urllib3.connectionpool")
        async with anyio.create_task_group() as tasks:
            for _ in range(64):
                tasks.start_soon(connector.get_ticket, ticket_id)
    finally:
        await connector.close()
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
