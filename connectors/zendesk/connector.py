"""ZendeskConnector: tickets are Zendesk requests made for the customer; groups are `ZENDESK#<ticket id>`."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, TypeVar

import anyio
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment as ZComment
from zenpy.lib.api_objects import Request as ZRequest
from zenpy.lib.api_objects import Ticket as ZTicket
from zenpy.lib.api_objects import User as ZUser

from bridge.errors import NotFound, PermanentError
from connectors.base import Author, Comment, NewTicket, TicketState, TicketStatus
from connectors.zendesk.client import build_client
from connectors.zendesk.errors import UPSTREAM, translate
from connectors.zendesk.session import BaseUrlSession

if TYPE_CHECKING:
    from bridge.config import Settings

T = TypeVar("T")

GROUP_PREFIX = "ZENDESK#"
DEFAULT_NAME = "Anonymous customer"  # Zendesk's own example name for an anonymous requester
_DIGITS = re.compile(r"^[0-9]+$")
_GROUP = re.compile(r"^ZENDESK#([0-9]+)$")
STATUS_MAP = {
    "new": TicketStatus.OPEN,
    "open": TicketStatus.OPEN,
    "pending": TicketStatus.OPEN,
    "hold": TicketStatus.OPEN,
    "solved": TicketStatus.SOLVED,
    "closed": TicketStatus.CLOSED,
    "deleted": TicketStatus.DELETED,
}
_REQUESTER_CACHE_SIZE = 4096


class ZendeskConnector:
    """A Zendesk Support account reached with an API token (ZENDESK_URL, ZENDESK_EMAIL, ZENDESK_API_TOKEN)."""

    name: ClassVar[str] = "zendesk"

    @staticmethod
    def enabled(settings: Settings) -> bool:
        return bool(settings.zendesk_url and settings.zendesk_email and settings.zendesk_api_token)

    def __init__(self, settings: Settings, limiter: anyio.CapacityLimiter) -> None:
        self.settings = settings
        self.limiter = limiter
        self._zenpy: Zenpy | None = None
        self._session: BaseUrlSession | None = None
        # ticket id -> requester id for customer comments (a requester seldom changes; status is never cached)
        self._requesters: OrderedDict[int, int] = OrderedDict()
        self._requesters_lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._client()

    async def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._zenpy = None
        self._session = None

    def _client(self) -> tuple[Zenpy, BaseUrlSession]:
        if self._zenpy is None or self._session is None:
            self._zenpy, self._session = build_client(self.settings)
        return self._zenpy, self._session

    async def _run(self, action: str, fn: Callable[[], T]) -> T:
        def call() -> T:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - one table maps everything zenpy and requests raise
                raise translate(exc, action) from None

        return await anyio.to_thread.run_sync(call, limiter=self.limiter)

    async def check(self) -> str:
        zenpy, _ = self._client()
        me = await self._run("logging in to Zendesk", lambda: zenpy.users.me())
        return f"zendesk: {self.settings.zendesk_url} as {me.email} ({me.role}, user {me.id})"

    # ----------------------------------------------------------------- ids
    def group_id(self, ticket_id: str) -> str:
        return f"{GROUP_PREFIX}{ticket_id}"

    def ticket_id(self, group_id: str) -> str | None:
        match = _GROUP.match(group_id)
        return match.group(1) if match else None

    def agent_id(self, helpdesk_user_id: str) -> str | None:
        value = str(helpdesk_user_id).strip() if helpdesk_user_id is not None else ""
        return value if _DIGITS.match(value) else None

    @staticmethod
    def _ticket_number(ticket_id: str) -> int:
        if not _DIGITS.match(str(ticket_id)):
            raise NotFound(f"{ticket_id!r} is not a Zendesk ticket id")
        return int(ticket_id)

    # ------------------------------------------------------------- tickets
    async def create_ticket(self, ticket: NewTicket) -> str:
        """Post a request on the customer's behalf (`/api/v2/requests.json`), idempotent by `request_key`.

        Without an email the requester is the documented anonymous form, `{"name": ...}`: Zendesk creates an
        end user with that name and no email identity.
        """
        zenpy, session = self._client()
        requester = ZUser(name=(ticket.name or "").strip() or DEFAULT_NAME)
        if ticket.email:
            requester.email = ticket.email
        request = ZRequest(
            subject=ticket.subject,
            comment=ZComment(body=ticket.description.strip() or ticket.subject),
            requester=requester,
        )

        def create() -> str:
            with session.idempotency_key(ticket.request_key):
                created = zenpy.requests.create(request)
            if getattr(created, "id", None) is None:
                raise PermanentError("creating a Zendesk request: the answer carried no ticket id", upstream=UPSTREAM)
            if getattr(created, "requester_id", None) is not None:
                self._remember_requester(int(created.id), int(created.requester_id))
            return str(created.id)

        return await self._run("creating a Zendesk request", create)

    async def get_ticket(self, ticket_id: str) -> TicketState:
        number = self._ticket_number(ticket_id)
        zenpy, _ = self._client()
        try:
            # disable_cache=True: zenpy would otherwise answer from objects it saw earlier (a stale assignee).
            ticket = await self._run(f"reading Zendesk ticket {number}", lambda: zenpy.tickets(id=number))
        except NotFound:
            return TicketState(ticket_id=str(number), agent_id=None, status=TicketStatus.DELETED, raw_status="deleted")
        raw = str(getattr(ticket, "status", "") or "")
        assignee = getattr(ticket, "assignee_id", None)
        if getattr(ticket, "requester_id", None) is not None:
            self._remember_requester(number, int(ticket.requester_id))
        return TicketState(
            ticket_id=str(number),
            agent_id=None if assignee is None else self.agent_id(str(assignee)),
            status=STATUS_MAP.get(raw, TicketStatus.OPEN),
            raw_status=raw,
        )

    async def add_comment(self, comment: Comment) -> str:
        """Append a comment authored by the agent (a Zendesk user id) or by the ticket's requester.

        Not deduplicated here: Zendesk takes an Idempotency-Key only on create, and finding an earlier copy
        would cost a comment listing per message. The caller records `comment.key` once this returns.
        """
        number = self._ticket_number(comment.ticket_id)
        zenpy, _ = self._client()

        def add() -> str:
            if comment.author == Author.AGENT:
                author_id = int(comment.author_id) if _DIGITS.match(comment.author_id or "") else None
            else:
                with self._requesters_lock:
                    author_id = self._requesters.get(number)
                if author_id is None:
                    author_id = int(zenpy.tickets(id=number).requester_id)
                    self._remember_requester(number, author_id)
            body = ZComment(body=comment.body, public=comment.public)
            if author_id is not None:
                body.author_id = author_id
            result = zenpy.tickets.update(ZTicket(id=number, comment=body))
            audit = getattr(result, "audit", None)
            for event in getattr(audit, "events", None) or []:
                if (event.get("type") if isinstance(event, dict) else getattr(event, "type", None)) == "Comment":
                    return str(event["id"] if isinstance(event, dict) else event.id)
            return ""

        return await self._run(f"adding a comment to Zendesk ticket {number}", add)

    def _remember_requester(self, ticket: int, requester: int) -> None:
        with self._requesters_lock:
            self._requesters[ticket] = requester
            self._requesters.move_to_end(ticket)
            while len(self._requesters) > _REQUESTER_CACHE_SIZE:
                self._requesters.popitem(last=False)
