"""ZendeskConnector: tickets are made for the customer's own Zendesk end user; groups are `ZENDESK#<ticket id>`."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, ClassVar, TypeVar

import anyio
from aiolimiter import AsyncLimiter
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment as ZComment
from zenpy.lib.api_objects import Ticket as ZTicket
from zenpy.lib.api_objects import User as ZUser
from zenpy.lib.exception import APIException

from bridge.api import (
    Author,
    Comment,
    Endpoint,
    NewTicket,
    NotFound,
    PermanentError,
    Reply,
    TicketState,
    TicketStatus,
    UpdateBudget,
    merge_runs,
)
from connectors.zendesk import commands, replies
from connectors.zendesk.client import build_client
from connectors.zendesk.console import ConsoleTicketBody, zendesk_entry, zendesk_script, zendesk_session
from connectors.zendesk.errors import UPSTREAM, translate
from connectors.zendesk.ids import DIGITS, group_id_of, ticket_id_of
from connectors.zendesk.session import BaseUrlSession
from connectors.zendesk.settings import ZendeskSettings
from connectors.zendesk.webhook import SIGNATURE_HEADER, zendesk_webhook

T = TypeVar("T")
K = TypeVar("K")
log = logging.getLogger(__name__)

DEFAULT_NAME = "Anonymous customer"  # Zendesk's own example name for an anonymous requester
# Zendesk's ticket statuses (the API's names) and what each means to the bridge.
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
    settings_class: ClassVar[type[ZendeskSettings]] = ZendeskSettings
    add_commands = staticmethod(commands.add_commands)
    security_schemes: ClassVar[dict[str, Any]] = {
        "zendeskWebhook": {"type": "apiKey", "in": "header", "name": SIGNATURE_HEADER},
        "zendeskApp": {
            "type": "apiKey",
            "in": "cookie",
            "name": "token",
            "description": "form field token: Zendesk's RS256 JWT for the app (signedUrls)",
        },
        "consoleGrant": {"type": "http", "scheme": "bearer", "description": "the grant of a Zendesk load"},
    }

    @staticmethod
    def endpoints() -> list[Endpoint]:
        return [
            Endpoint(
                "POST",
                "/webhooks/zendesk",
                zendesk_webhook,
                "Zendesk ticket events (and older trigger bodies)",
                None,
                ("zendeskWebhook",),
                "202",
            ),
            Endpoint(
                "POST",
                "/console/zendesk",
                zendesk_entry,
                "The console in Zendesk: the app's signed first load (form field token)",
                security=("zendeskApp",),
            ),
            Endpoint("GET", "/console/zendesk.js", zendesk_script, "The console's script in the Zendesk app"),
            Endpoint(
                "POST",
                "/console/api/sessions/zendesk",
                zendesk_session,
                "Trade a Zendesk grant for the session of the ticket beside the app",
                ConsoleTicketBody,
                ("consoleGrant",),
                "201",
            ),
        ]

    @staticmethod
    def enabled(settings: ZendeskSettings) -> bool:
        return settings.complete

    def __init__(self, settings: ZendeskSettings, limiter: anyio.CapacityLimiter) -> None:
        self.settings = settings
        self.limiter = limiter
        self._zenpy: Zenpy | None = None
        self._session: BaseUrlSession | None = None
        # ticket id -> requester id for customer comments (a requester seldom changes; status is never cached)
        self._requesters: OrderedDict[int, int] = OrderedDict()
        self._requesters_lock = threading.Lock()
        self._api_user: str | None = None  # the user ZENDESK_EMAIL names, read once (replies by it are the bridge's)
        # customer's IM userId -> their end user's id: a returning customer's ticket, or a retried create, is one call
        self._end_users: OrderedDict[str, int] = OrderedDict()
        # ZENDESK_RATE_LIMIT counts Zendesk calls, and a ticket for a new customer takes up to four (find, create,
        # email, ticket): each call waits for its turn here, evenly spaced, before it takes a thread.
        per_minute = settings.rate_limit
        self._budget = AsyncLimiter(1, 60 / per_minute) if per_minute else None
        # Ticket updates have a per-account limit of their own (ZENDESK_UPDATE_RATE_LIMIT a minute), spaced likewise.
        updates = settings.update_rate_limit
        self._update_budget = AsyncLimiter(1, 60 / updates) if updates else None

    @property
    def update_budget(self) -> UpdateBudget | None:
        """Zendesk's 30 updates per 10 minutes per user per ticket (ZENDESK_TICKET_UPDATES per
        ZENDESK_TICKET_UPDATE_WINDOW): every comment the bridge writes is an update by its API user."""
        count = self.settings.ticket_updates
        return UpdateBudget(count, self.settings.ticket_update_window) if count else None

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
            self._zenpy, self._session = build_client(self.settings, int(self.limiter.total_tokens))
        return self._zenpy, self._session

    async def _run(self, action: str, fn: Callable[[], T]) -> T:
        """Run one Zendesk call in a thread, within the budget, its errors mapped through the connector's table."""
        if self._budget is not None:
            await self._budget.acquire()

        def call() -> T:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - one table maps everything zenpy and requests raise
                raise translate(exc, action) from None

        return await anyio.to_thread.run_sync(call, limiter=self.limiter)

    async def check(self) -> str:
        zenpy, _ = self._client()
        me = await self._run("logging in to Zendesk", lambda: zenpy.users.me())
        return f"zendesk: {self.settings.url} as {me.email} ({me.role}, user {me.id})"

    # ----------------------------------------------------------------- ids
    def group_id(self, ticket_id: str) -> str:
        return group_id_of(ticket_id)

    def ticket_id(self, group_id: str) -> str | None:
        return ticket_id_of(group_id)

    def agent_id(self, helpdesk_user_id: str) -> str | None:
        value = str(helpdesk_user_id).strip() if helpdesk_user_id is not None else ""
        return f"{self.settings.agent_prefix}{value}" if DIGITS.match(value) else None

    def _user_of_agent(self, account: str) -> int | None:
        """The Zendesk user id behind an agent's IM account; None for any other account (never a raw id)."""
        prefix = self.settings.agent_prefix
        value = account[len(prefix) :] if account.startswith(prefix) else ""
        return int(value) if DIGITS.match(value) else None

    async def user_name(self, helpdesk_user_id: str) -> str | None:
        """A Zendesk user's display name (the agent console's Nick for the agent), None when unknown."""
        if not DIGITS.match(str(helpdesk_user_id)):
            return None
        zenpy, _ = self._client()
        try:
            user = await self._run("reading a Zendesk user", lambda: zenpy.users(id=int(helpdesk_user_id)))
        except NotFound:
            return None
        return str(getattr(user, "name", "") or "") or None

    @staticmethod
    def _ticket_number(ticket_id: str) -> int:
        if not DIGITS.match(str(ticket_id)):
            raise NotFound(f"{ticket_id!r} is not a Zendesk ticket id")
        return int(ticket_id)

    # ------------------------------------------------------------- tickets
    async def create_ticket(self, ticket: NewTicket) -> str:
        """Create the ticket through the Tickets API (`POST /api/v2/tickets.json`), idempotent by `request_key`.

        The requester is the customer's own end user, found by `external_id` = the IM userId (or created), so
        what a customer types cannot make anyone else the requester. Only `requester_by_email` (a trusted backend)
        names the requester by email, in the `requester: {name, email}` form Zendesk resolves to that address's
        user. Not the Requests API: called with an agent's token it makes the agent the requester, and Zendesk
        documents Idempotency-Key for ticket creation only.
        """
        zenpy, session = self._client()
        name = (ticket.name or "").strip() or DEFAULT_NAME
        comment = ZComment(body=ticket.description.strip() or ticket.subject)
        new = ZTicket(subject=ticket.subject, comment=comment)
        if ticket.requester_by_email and ticket.email:
            new.requester = ZUser(name=name, email=ticket.email)
        else:
            requester = await self._end_user(zenpy, ticket.user_id, name, ticket.email)
            new.requester_id = requester
            comment.author_id = requester  # the first comment is the API user's unless an author is given

        def create() -> str:
            with session.idempotency_key(ticket.request_key):
                audit = zenpy.tickets.create(new)
            created: Any = getattr(audit, "ticket", None)
            if getattr(created, "id", None) is None:
                raise PermanentError("creating a Zendesk ticket: the answer carried no ticket id", upstream=UPSTREAM)
            if getattr(created, "requester_id", None) is not None:
                self._remember_requester(int(created.id), int(created.requester_id))
            return str(created.id)

        try:
            return await self._run("creating a Zendesk ticket", create)
        except PermanentError:
            with self._requesters_lock:  # the remembered end user may be gone (deleted, merged): look again next time
                self._end_users.pop(ticket.user_id, None)
            raise

    async def _end_user(self, zenpy: Zenpy, external_id: str, name: str, email: str | None) -> int:
        """The Zendesk user id of the customer whose IM userId is `external_id`, created when there is none.

        An existing user is used as it is. A new one is made with `create_or_update`, which matches on
        external_id, so two first tickets of one customer at once end with one user (search-then-create would
        make two). The email is left out of that call, since create_or_update also matches on email and would
        hand the customer whoever owns the address; it is added afterwards, and dropped if another user has it.
        """
        with self._requesters_lock:
            known = self._end_users.get(external_id)
        if known is not None:
            return known
        found = await self._run(
            "finding the customer's Zendesk end user", lambda: list(zenpy.users.search(external_id=external_id))
        )
        if found:
            user = found[0]
        else:
            user = await self._run(
                "creating the customer's Zendesk end user",
                lambda: zenpy.users.create_or_update(ZUser(name=name, external_id=external_id)),
            )
            if email and not getattr(user, "email", None):
                user = await self._add_email(zenpy, user, email)
        # Zendesk matches external ids without regard to case, and an agent may carry one (SSO): either would make
        # someone else this customer's requester.
        role, found_id = getattr(user, "role", None), getattr(user, "external_id", None)
        if found_id != external_id or role != "end-user":
            raise PermanentError(
                f"Zendesk user {user.id} (role {role}, external_id {found_id!r}) matches the userId {external_id!r} "
                "but is not that customer's end user: give the customer another userId or change that user in Zendesk",
                upstream=UPSTREAM,
                upstream_code="requester_conflict",
            )
        self._remember(self._end_users, external_id, int(user.id))
        return int(user.id)

    async def _add_email(self, zenpy: Zenpy, user: ZUser, email: str) -> ZUser:
        def add() -> ZUser | None:
            try:
                return zenpy.users.update(ZUser(id=user.id, email=email))
            except APIException as exc:
                if getattr(getattr(exc, "response", None), "status_code", None) == 422:
                    return None  # another user has it (DuplicateValue), or it is malformed: the ticket goes on
                raise

        updated = await self._run("adding the customer's email to their Zendesk end user", add)
        if updated is None:
            log.warning("Zendesk refused the email of customer %r (another user may have it)", user.external_id)
            return user
        return updated

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

    async def add_comments(self, comments: Sequence[Comment]) -> str:
        """Several chat messages as one comment (one ticket update). One sender's are that sender's comment, as with
        add_comment; a comment of several senders is the API user's, each sender's lines headed by who wrote them
        (`Customer (<IM userId>):`, `Agent (<Zendesk user id>):`), since a Zendesk comment has one author."""
        runs = merge_runs(comments)
        if len(runs) == 1:
            return await self.add_comment(runs[0])
        lines = []
        for run in runs:
            if run.author is Author.CUSTOMER:
                lines.append(f"Customer ({run.author_id}):")
            else:
                lines.append(f"Agent ({self._user_of_agent(run.author_id) or run.author_id}):")
            lines.append(run.body)
        first = runs[0]
        public = all(run.public for run in runs)
        return await self._comment(first.ticket_id, "\n".join(lines), public, author=None)

    async def add_comment(self, comment: Comment) -> str:
        """Append a comment authored by the agent (the user behind a `zd_<id>` account) or by the ticket's requester.

        Not deduplicated here: Zendesk takes an Idempotency-Key only on create, and finding an earlier copy
        would cost a comment listing per message. The caller records `comment.key` once this returns.
        """
        return await self._comment(comment.ticket_id, comment.body, comment.public, author=comment)

    async def _comment(self, ticket_id: str, text: str, public: bool, author: Comment | None) -> str:
        """One ticket update adding a comment by `author`'s sender, or by the API user when `author` is None."""
        number = self._ticket_number(ticket_id)
        zenpy, _ = self._client()

        def add() -> str:
            if author is None:
                author_id = None
            elif author.author == Author.AGENT:
                author_id = self._user_of_agent(author.author_id or "")
            else:
                with self._requesters_lock:
                    author_id = self._requesters.get(number)
                if author_id is None:
                    author_id = int(zenpy.tickets(id=number).requester_id)
                    self._remember_requester(number, author_id)
            body = ZComment(body=text, public=public)
            if author_id is not None:
                body.author_id = author_id
            result = zenpy.tickets.update(ZTicket(id=number, comment=body))
            audit = getattr(result, "audit", None)
            for event in getattr(audit, "events", None) or []:
                if (event.get("type") if isinstance(event, dict) else getattr(event, "type", None)) == "Comment":
                    return str(event["id"] if isinstance(event, dict) else event.id)
            return ""

        if self._update_budget is not None:
            await self._update_budget.acquire()
        return await self._run(f"adding a comment to Zendesk ticket {number}", add)

    async def get_reply(self, ticket_id: str, comment_id: str) -> Reply | None:
        """A comment of the ticket as Zendesk has it now (replies.py); None when there is no such comment or ticket.
        Its author is an agent (`author_account`) when their role is agent or admin."""
        number = self._ticket_number(ticket_id)
        if not DIGITS.match(str(comment_id)):
            return None
        zenpy, session = self._client()
        base = self.settings.url or ""
        try:
            comment = await self._run(
                f"reading comment {comment_id} of Zendesk ticket {number}",
                lambda: replies.find_comment(session, base, number, int(comment_id)),
            )
        except NotFound:
            return None
        if comment is None:
            return None
        author_id = str(comment.get("author_id") or "")
        reply = Reply(
            comment_id=str(comment.get("id")),
            ticket_id=str(number),
            text=replies.plain_text(comment),
            public=comment.get("public") is True,
            author_account=None,
            author_name=None,
            by_bridge=True,
            attachments=replies.attachments(comment),
        )
        # The bridge's own: written through its session (the User-Agent Zendesk records), or by its API user (a
        # comment of several chat senders has no other author).
        if replies.is_bridges(comment) or author_id == await self._api_user_id():
            return reply
        author = None
        if DIGITS.match(author_id):
            try:
                author = await self._run("reading a Zendesk user", lambda: zenpy.users(id=int(author_id)))
            except NotFound:
                author = None  # a deleted user: nobody to send it as
        is_agent = author is not None and getattr(author, "role", None) in replies.AGENT_ROLES
        return replace(
            reply,
            by_bridge=False,
            author_account=self.agent_id(author_id) if is_agent else None,
            author_name=(str(getattr(author, "name", "") or "") or None) if author is not None else None,
        )

    async def _api_user_id(self) -> str:
        """The id of the user ZENDESK_EMAIL names (the bridge's API user), read once."""
        if self._api_user is None:
            zenpy, _ = self._client()
            me = await self._run("reading the Zendesk API user", lambda: zenpy.users.me())
            self._api_user = str(me.id)
        return self._api_user

    def _remember_requester(self, ticket: int, requester: int) -> None:
        self._remember(self._requesters, ticket, requester)

    def _remember(self, cache: OrderedDict[K, int], key: K, value: int) -> None:
        with self._requesters_lock:
            cache[key] = value
            cache.move_to_end(key)
            while len(cache) > _REQUESTER_CACHE_SIZE:
                cache.popitem(last=False)
