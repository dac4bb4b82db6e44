"""The Connector protocol every helpdesk plugin satisfies, and the types it speaks.

A connector is a class registered under the entry-point group `helpdesk_bridge.connectors`. It names its settings
class (`settings_class`, a `ConnectorSettings` with its own environment prefix); the bridge builds those settings for
every installed connector, and the connector itself with `Connector(settings, limiter)` when `enabled(settings)` is
true, calls `start()` once, and `close()` at shutdown. Every method is async; connectors built on blocking libraries
run them in threads through `limiter` (its `total_tokens` is how many threads: size connection pools by it).

Connectors import what they need of the bridge from `bridge.api` and from nowhere else in `bridge`: this module's
types, the errors, request parsing and signed-call checks for their routes, and the service's entry points.

Errors: a connector raises `PermanentError` (do not retry: bad input, bad credentials), `RetriableError` (timeouts,
5xx, 429 with `retry_after`) or `NotFound` (no such ticket), mapping its library's exceptions through one table.

Optional members (looked up with getattr):
- `user_name(helpdesk_user_id) -> str | None` (async): a user's display name, which the bridge imports as the
  agent's IM Nick when the agent joins a group or opens the console, read again once a day at most (bridge/agents.py);
  without it agents appear under their accounts;
- `add_comments(comments) -> str` (async): several chat messages of one ticket, in order, appended as one comment (one
  ticket update), returning its id; `merge_runs` joins each sender's consecutive messages. Without it a batch of the
  transcript holds one sender's messages only (`add_comment` with their lines);
- `update_budget -> UpdateBudget | None`: how many updates one ticket takes from the bridge in a window before the
  helpdesk refuses more (Zendesk: 30 per 600 s); the transcript paces its comments to stay under it. None (or absent):
  no such limit;
- `get_reply(ticket_id, comment_id) -> Reply | None` (async): a comment read back from the helpdesk, for relaying an
  agent's public reply into the chat (without it no reply is relayed);
- `normalize_id(value) -> str` (static): the one form of a helpdesk Id the bridge stores, applied where Ids enter the
  bridge (request bodies, queries, UserSigs); any value that is not one of the helpdesk's Ids is returned unchanged;
- `endpoints() -> list[Endpoint]` (static): HTTP routes the connector adds (inbound webhooks, a console entry), and
  `security_schemes` (a dict), the OpenAPI security schemes they name;
- `add_commands(subparsers)` (static): subcommands of `helpdesk-bridge` (argparse), each with `func` set to a
  function of the parsed arguments returning the exit status.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    import anyio
    from pydantic import BaseModel
    from starlette.requests import Request
    from starlette.responses import Response

ENTRY_POINT_GROUP = "helpdesk_bridge.connectors"
# Agents' IM account prefixes: characters IM UserIDs (and the bridge's userId rule) allow, short enough that a prefix
# and an 18-character Salesforce Id or a 20-digit Zendesk id stay within IM's 32 bytes.
AGENT_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,12}$")


class ConnectorSettings(BaseSettings):
    """A connector's own settings: environment variables under its prefix (set `env_prefix` in `model_config`,
    e.g. `ZENDESK_`), and `.env`. Field names are the variable names without the prefix. Give every field a default:
    the settings of an installed connector are built (and checked) whether or not its credentials are set."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    # Secrets the operator makes up (not ones a helpdesk issues): a placeholder value (changeme, secret, ...) in one
    # of these fields is refused outside the sandbox.
    chosen_secrets: ClassVar[tuple[str, ...]] = ()

    # Agents' IM accounts are `<agent_prefix><helpdesk user id>`: customers' userIds may not start with it. Each
    # connector declares it again with its own default (`zd_`, `sf_`), so that no two prefixes overlap.
    agent_prefix: str

    @field_validator("agent_prefix")
    @classmethod
    def _agent_prefix(cls, value: str) -> str:
        if not AGENT_PREFIX.match(value):
            raise ValueError("must be 1 to 12 letters, digits, '_' or '-'")
        return value

    @classmethod
    def variable(cls, field_name: str) -> str:
        """The environment variable of a field (`url` -> `ZENDESK_URL`)."""
        return (str(cls.model_config.get("env_prefix") or "") + field_name).upper()


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


def merge_runs(comments: Sequence[Comment]) -> list[Comment]:
    """Consecutive comments of one sender (same author and account) joined into one, a line each, in order: what a
    connector's `add_comments` labels and writes."""
    runs: list[Comment] = []
    for comment in comments:
        last = runs[-1] if runs else None
        if last is not None and (last.author, last.author_id) == (comment.author, comment.author_id):
            runs[-1] = replace(last, body=f"{last.body}\n{comment.body}", public=last.public and comment.public)
        else:
            runs.append(comment)
    return runs


@dataclass(frozen=True)
class UpdateBudget:
    """A helpdesk's limit on updates of one ticket by one user: `updates` in any `seconds` (a sliding window)."""

    updates: int
    seconds: float


class EventKind(StrEnum):
    CHANGED = "changed"  # owner, status, anything: the group converges on the ticket as the helpdesk has it now
    DELETED = "deleted"  # the ticket is gone: its group is dismissed
    COMMENT_ADDED = "comment_added"  # a comment (`comment_id`): relayed into the group if it is an agent's public reply


@dataclass(frozen=True)
class TicketEvent:
    """What a connector's inbound route makes of one helpdesk event, for `bridge.api.take_events`.

    The service stores it as the next job of its group (applied in order) and the worker applies it. `hints` (the
    helpdesk's own words: assignee, status, ...) are kept with the job for operators only: convergence re-reads the
    ticket, since events come late, twice and out of order.

    - `key`: the same key again is the same event (a redelivery): stored once.
    - `linked_only`: an event about a ticket that has no group is answered IGNORED and nothing is stored (for
      helpdesks that report every ticket of the account).
    - `replay_key`: the signed content of the delivery, remembered until `replay_until` (unix time): the same content
      again meanwhile is a replay, answered DUPLICATE, whatever its unsigned parts say.
    """

    provider: str
    group_id: str
    key: str
    kind: EventKind = EventKind.CHANGED
    reason: str = ""
    hints: Mapping[str, Any] = field(default_factory=dict)
    linked_only: bool = False
    replay_key: str | None = None
    replay_until: float = 0.0
    comment_id: str | None = None  # for COMMENT_ADDED: the helpdesk's id of the comment, read back with get_reply


@dataclass(frozen=True)
class Attachment:
    file_name: str
    url: str


@dataclass(frozen=True)
class Reply:
    """A comment on a ticket as the helpdesk has it now (read back, never taken from an event's copy), for relaying an
    agent's public reply into the ticket's group.

    - `author_account`: the author's IM account (`agent_id`) when the author is an agent, else None (the requester,
      an end user, a system).
    - `by_bridge`: the bridge itself wrote it (a customer's chat message, a console message): never relayed back.
    """

    comment_id: str
    ticket_id: str
    text: str
    public: bool
    author_account: str | None
    author_name: str | None
    by_bridge: bool
    attachments: tuple[Attachment, ...] = ()


class EventOutcome(StrEnum):
    QUEUED = "queued"  # stored as its group's next job
    DUPLICATE = "duplicate"  # stored before (its key), or a replay of a delivery (its signed content): nothing new
    IGNORED = "ignored"  # the ticket has no group (it was not opened through the bridge): nothing stored


@dataclass(frozen=True)
class EventReceipt:
    group_id: str
    outcome: EventOutcome
    job_id: int | None = None


@dataclass(frozen=True)
class Endpoint:
    """An HTTP route a connector adds to the bridge, and what the OpenAPI document says of it.

    `security` names OpenAPI security schemes: the bridge's `signedCall`, or the connector's `security_schemes`."""

    method: str
    path: str
    handler: Callable[[Request], Awaitable[Response]]
    summary: str
    body: type[BaseModel] | None = None
    security: tuple[str, ...] = ()
    status: str = "200"


@runtime_checkable
class Connector(Protocol):
    """A helpdesk behind the bridge."""

    name: ClassVar[str]
    settings_class: ClassVar[type[ConnectorSettings]]

    @staticmethod
    def enabled(settings: Any) -> bool:
        """True when the settings (an instance of `settings_class`) carry this connector's credentials."""

    def __init__(self, settings: Any, limiter: anyio.CapacityLimiter) -> None: ...

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
        settings_class = getattr(cls, "settings_class", None)
        if not (isinstance(settings_class, type) and issubclass(settings_class, ConnectorSettings)):
            raise ConnectorLoadError(f"connector {ep.name!r} ({ep.value}) has no settings_class (a ConnectorSettings)")
        if not settings_class.model_config.get("env_prefix"):
            raise ConnectorLoadError(f"connector {ep.name!r} ({ep.value}): its settings_class sets no env_prefix")
        classes[ep.name] = cls
    return classes


def endpoints_of(cls: type[Connector]) -> list[Endpoint]:
    """The HTTP routes a connector class adds (none when it has no `endpoints`)."""
    endpoints = getattr(cls, "endpoints", None)
    return list(endpoints()) if endpoints is not None else []
