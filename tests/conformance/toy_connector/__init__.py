"""A helpdesk in memory behind the smallest whole connector: a third connector is one folder plus one entry point.

It is installed only by the tests (a dist-info in a temporary folder on sys.path, `install`), and uses nothing of the
bridge but `bridge.api`: its settings (TOY_*), a signed inbound route (`POST /toy/events`), a subcommand
(`helpdesk-bridge toy desk`), and the protocol's methods over `DESKS`, which the tests play the helpdesk's agents on.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import anyio
from pydantic import Field, StringConstraints
from pydantic_settings import SettingsConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse

from bridge.api import (
    SIGNED_CALL,
    Author,
    Body,
    Comment,
    ConnectorSettings,
    Endpoint,
    NewTicket,
    NotFound,
    RetriableError,
    TicketEvent,
    TicketState,
    TicketStatus,
    check_signed,
    load_connector_settings,
    ok,
    parse_json,
    raw_body,
    require_enabled,
    take_events,
    validate,
)

GROUP_PREFIX = "TOY-"


class ToySettings(ConnectorSettings):
    model_config = SettingsConfigDict(env_prefix="TOY_")

    desk: str | None = None  # which desk of DESKS; set, the connector is enabled
    agent_prefix: str = "toy_"


@dataclass
class Ticket:
    subject: str
    requester: str
    owner: str | None = None
    status: TicketStatus = TicketStatus.OPEN
    comments: list[tuple[str, str]] = field(default_factory=list)  # (author, text)


@dataclass
class Desk:
    agents: tuple[str, ...] = ("ann", "bob")
    queue: str = "queue"  # an owner that is not a user
    tickets: dict[str, Ticket] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # request key -> ticket id
    down: bool = False
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


DESKS: dict[str, Desk] = {}


class ToyEvent(Body):
    ticketId: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}$")]
    eventId: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class ToyEvents(Body):
    events: Annotated[list[ToyEvent], Field(min_length=1, max_length=50)]


async def toy_events(request: Request) -> JSONResponse:
    body = await raw_body(request)
    await check_signed(request, body)
    data = validate(ToyEvents, parse_json(body))
    require_enabled(request, "toy")
    events = [
        TicketEvent("toy", GROUP_PREFIX + e.ticketId, key=f"toy-event:{e.eventId}", hints=e.model_dump())
        for e in data.events
    ]
    receipts = await take_events(request, events)
    return ok({"outcomes": [r.outcome.value for r in receipts]}, 202)


def add_commands(subparsers: Any) -> None:
    toy = subparsers.add_parser("toy", help="the toy helpdesk")
    toy_sub = toy.add_subparsers(dest="toy_command", required=True)
    toy_sub.add_parser("desk", help="say which desk TOY_DESK names").set_defaults(func=cmd_desk)


def cmd_desk(args: argparse.Namespace) -> int:
    print(f"toy desk: {load_connector_settings(ToySettings).desk or 'not set'}")
    return 0


class ToyConnector:
    name: ClassVar[str] = "toy"
    settings_class: ClassVar[type[ToySettings]] = ToySettings
    add_commands = staticmethod(add_commands)

    @staticmethod
    def enabled(settings: ToySettings) -> bool:
        return settings.desk is not None

    @staticmethod
    def endpoints() -> list[Endpoint]:
        return [Endpoint("POST", "/toy/events", toy_events, "Toy helpdesk events", ToyEvents, (SIGNED_CALL,), "202")]

    def __init__(self, settings: ToySettings, limiter: anyio.CapacityLimiter) -> None:
        self.settings = settings
        self.desk = DESKS.setdefault(settings.desk or "", Desk())

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _up(self) -> Desk:
        if self.desk.down:
            raise RetriableError("the toy desk is down", upstream="toy", upstream_code=503)
        return self.desk

    async def check(self) -> str:
        return f"toy: desk {self.settings.desk!r}, {len(self._up().tickets)} tickets"

    def group_id(self, ticket_id: str) -> str:
        return GROUP_PREFIX + ticket_id

    def ticket_id(self, group_id: str) -> str | None:
        number = group_id.removeprefix(GROUP_PREFIX)
        return number if group_id.startswith(GROUP_PREFIX) and number.isdigit() else None

    def agent_id(self, helpdesk_user_id: str) -> str | None:
        return self.settings.agent_prefix + helpdesk_user_id if helpdesk_user_id in self.desk.agents else None

    async def create_ticket(self, ticket: NewTicket) -> str:
        desk = self._up()
        if ticket.request_key in desk.keys:
            return desk.keys[ticket.request_key]
        number = str(next(desk.numbers))
        desk.tickets[number] = Ticket(ticket.subject, ticket.user_id)
        if ticket.request_key:
            desk.keys[ticket.request_key] = number
        return number

    async def get_ticket(self, ticket_id: str) -> TicketState:
        found = self._up().tickets.get(ticket_id)
        if found is None:
            return TicketState(ticket_id, None, TicketStatus.DELETED)
        owner = self.agent_id(found.owner) if found.owner else None
        return TicketState(ticket_id, owner, found.status, found.status.value)

    async def add_comment(self, comment: Comment) -> str:
        found = self._up().tickets.get(comment.ticket_id)
        if found is None:
            raise NotFound(f"no toy ticket {comment.ticket_id}")
        who = comment.author_id if comment.author is Author.CUSTOMER else comment.author_id.removeprefix("toy_")
        found.comments.append((who, comment.body))
        return f"{comment.ticket_id}-{len(found.comments)}"


def install(folder: Path) -> Path:
    """A dist-info registering ToyConnector in the entry-point group, in `folder` (to put on sys.path)."""
    dist = folder / "toy_helpdesk-1.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-helpdesk\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[helpdesk_bridge.connectors]\ntoy = {__name__}:ToyConnector\n")
    return folder
