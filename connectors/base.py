"""The Connector protocol every helpdesk plugin satisfies, and the types it speaks.

A connector is a class registered under the entry-point group `helpdesk_bridge.connectors`. The bridge builds it
with `Connector(settings, limiter)` when `enabled(settings)` is true, calls `start()` once, and `close()` at shutdown.
Every method is async; connectors built on blocking libraries run them in threads through `limiter`.

Errors: a connector raises `bridge.errors.PermanentError` (do not retry: bad input, bad credentials),
`bridge.errors.RetriableError` (timeouts, 5xx, 429 with `retry_after`) or `bridge.errors.NotFound` (no such ticket),
mapping its library's exceptions through one table.

Optional: `async def user_name(helpdesk_user_id) -> str | None`, a user's display name, which the agent console
imports as the agent's IM Nick (without it the console shows the account).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import anyio

    from bridge.config import Settings

ENTRY_POINT_GROUP = "helpdesk_bridge.connectors"


@dataclass(frozen=True)
class NewTicket:
    """What a customer app asks for. `request_key` is stable across retries of the same request.

    `email` is what the customer typed: a connector may store it, but never lets it pick who the requester is,
    unless `requester_by_email` says a trusted backend (a signed call) vouches for it.
    """

    user_id: str
    subject: str
    description: str = ""
    name: str | None = None
    email: str | None = None
    request_key: str | None = None
    requester_by_email: bool = False


class TicketStatus(StrEnum):
    OPEN = "open"  # new, open, pending, on-hold: an agent may work on it
    SOLVED = "solved"  # Zendesk solved: notice, group kept
    CLOSED = "closed"  # Zendesk closed, Salesforce IsClosed: notice, muted, agents leave
    DELETED = "deleted"  # gone from the helpdesk: group dismissed


@dataclass(frozen=True)
class TicketState:
    """A ticket as the helpdesk has it now. `agent_id` is the owner's IM account (Connector.agent_id), None for a
    queue or no one."""

    ticket_id: str
    agent_id: str | None
    status: TicketStatus
    raw_status: str = ""


class Author(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"


@dataclass(frozen=True)
class Comment:
    """A chat message to append to the ticket. `author_id` is the sender's IM user ID (an agent's is the prefixed
    account that `agent_id` made: the connector maps it back to the helpdesk user); `key` makes it idempotent."""

    ticket_id: str
    body: str
    author: Author
    author_id: str
    key: str
    public: bool = True


@runtime_checkable
class Connector(Protocol):
    """A helpdesk behind the bridge."""

    name: ClassVar[str]

    @staticmethod
    def enabled(settings: Settings) -> bool:
        """True when the settings carry this connector's credentials."""

    def __init__(self, settings: Settings, limiter: anyio.CapacityLimiter) -> None: ...

    async def start(self) -> None:
        """Prepare clients; logging in may wait for the first call."""

    async def close(self) -> None: ...

    async def check(self) -> str:
        """Log in and make one cheap read; return a one-line description, raise UpstreamError when it fails."""

    def group_id(self, ticket_id: str) -> str:
        """The IM group ID of a ticket (Salesforce: the 18-character Case Id; Zendesk: `ZENDESK#<id>`)."""

    def ticket_id(self, group_id: str) -> str | None:
        """The ticket ID of a group ID of this connector, or None when the group is not one of ours."""

    def agent_id(self, helpdesk_user_id: str) -> str | None:
        """The IM account of a helpdesk owner, `<prefix><user id>` so it never meets a customer's userId; None when
        the owner is not a user (a queue, nobody)."""

    async def create_ticket(self, ticket: NewTicket) -> str:
        """Create the ticket and return its ID. With `request_key`, a retry returns the ticket made the first time."""

    async def get_ticket(self, ticket_id: str) -> TicketState:
        """Read the ticket fresh from the helpdesk (never from a cache); a deleted ticket has status DELETED."""

    async def add_comment(self, comment: Comment) -> str:
        """Append a chat message to the ticket and return the comment's ID."""


class ConnectorLoadError(Exception):
    """A connector could not be loaded or does not satisfy the protocol; the message names it."""


REQUIRED = (
    "enabled",
    "start",
    "close",
    "check",
    "group_id",
    "ticket_id",
    "agent_id",
    "create_ticket",
    "get_ticket",
    "add_comment",
)


def load_connector_classes() -> dict[str, type[Connector]]:
    """Every connector registered in the entry-point group, checked against the protocol."""
    classes: dict[str, type[Connector]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must name itself, whatever it raised
            raise ConnectorLoadError(f"connector {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        missing = [name for name in REQUIRED if not callable(getattr(cls, name, None))]
        if missing:
            raise ConnectorLoadError(f"connector {ep.name!r} ({ep.value}) lacks {', '.join(missing)}")
        if getattr(cls, "name", None) != ep.name:
            raise ConnectorLoadError(f"connector {ep.name!r} ({ep.value}) declares name {getattr(cls, 'name', None)!r}")
        classes[ep.name] = cls
    return classes
