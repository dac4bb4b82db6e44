"""The Salesforce connector: Cases and CaseComments through simple-salesforce, behind the protocol."""

from __future__ import annotations

import hashlib
import logging
import re
from typing import TYPE_CHECKING, Any, ClassVar, cast
from urllib.parse import quote

import anyio
import anyio.to_thread
from aiolimiter import AsyncLimiter

from bridge.api import (
    SIGNED_CALL,
    Author,
    Comment,
    Endpoint,
    NewTicket,
    NotFound,
    PermanentError,
    Reply,
    TicketState,
    TicketStatus,
    merge_runs,
)
from connectors.salesforce import ids, replies
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.errors import UPSTREAM
from connectors.salesforce.events import SalesforceEvents, salesforce_events
from connectors.salesforce.ids import canonical_id
from connectors.salesforce.settings import SalesforceSettings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from simple_salesforce import Salesforce, SFType

log = logging.getLogger(__name__)

# The external ID field (Text, External ID, Unique) the bridge's Salesforce package adds to Case, so that a
# retried create finds the Case made the first time. Orgs without it get a plain create (see create_ticket).
REQUEST_KEY_FIELD = "Bridge_Request_Key__c"
CASE_FIELDS = "Id,OwnerId,Status,IsClosed,IsDeleted"
# Field lengths of the standard objects: longer input is cut rather than refused.
SUBJECT_MAX, DESCRIPTION_MAX, NAME_MAX, COMMENT_MAX = 255, 32000, 80, 4000

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")


def _sobject(sf: Salesforce, name: str) -> SFType:
    # simple-salesforce resolves `sf.Case` through __getattr__, typed as a union with its bulk handlers.
    return cast("SFType", getattr(sf, name))


def _external_key(request_key: str) -> str:
    # Keys go into a URL path segment; anything beyond a safe alphabet is hashed so the segment never splits.
    if _SAFE_KEY.match(request_key):
        return request_key
    return "sha256-" + hashlib.sha256(request_key.encode()).hexdigest()


class SalesforceConnector:
    """Salesforce behind the bridge: a ticket is a Case, its group ID the 18-character Case Id."""

    name: ClassVar[str] = "salesforce"
    settings_class: ClassVar[type[SalesforceSettings]] = SalesforceSettings
    normalize_id = staticmethod(ids.normalize)

    @staticmethod
    def endpoints() -> list[Endpoint]:
        summary = "Salesforce trigger events (up to 200)"
        return [
            Endpoint("POST", "/salesforce/events", salesforce_events, summary, SalesforceEvents, (SIGNED_CALL,), "202")
        ]

    @staticmethod
    def enabled(settings: SalesforceSettings) -> bool:
        return bool(settings.username or settings.consumer_key)

    def __init__(self, settings: SalesforceSettings, limiter: anyio.CapacityLimiter) -> None:
        self.settings = settings
        self.limiter = limiter
        self.client = SalesforceClient(settings, pool_size=int(limiter.total_tokens))
        self._upsert_supported = True
        self._integration_user: str | None = None  # who the bridge is logged in as: one user per set of credentials
        # SALESFORCE_RATE_LIMIT: each call waits for its turn here, evenly spaced (a full bucket would allow twice
        # the budget in a burst), before it takes a thread.
        per_minute = settings.rate_limit
        self._budget = AsyncLimiter(1, 60 / per_minute) if per_minute else None

    async def _run(self, action: str, fn: Callable[[Salesforce], Any]) -> Any:
        if self._budget is not None:
            await self._budget.acquire()
        return await anyio.to_thread.run_sync(lambda: self.client.call(action, fn), limiter=self.limiter)

    async def start(self) -> None:
        """Nothing to open: the first call logs in (one login per process, reused)."""

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self.client.close, limiter=self.limiter)

    async def check(self) -> str:
        try:
            await self._run("read a Case", lambda sf: sf.query("SELECT Id FROM Case LIMIT 1"))
        except NotFound as exc:
            raise PermanentError(
                f"Salesforce has no REST API v{self.client.version} here; check "
                f"SALESFORCE_API_VERSION and SALESFORCE_LOGIN_URL ({exc.message})",
                upstream=UPSTREAM,
            ) from None
        return (
            f"salesforce: logged in ({self.client.plan.flow}) to {self.client.instance}, "
            f"API v{self.client.version}, Cases readable"
        )

    # --- IDs ---
    def group_id(self, ticket_id: str) -> str:
        return canonical_id(ticket_id, "500") or ticket_id

    def ticket_id(self, group_id: str) -> str | None:
        return canonical_id(group_id, "500")

    def agent_id(self, helpdesk_user_id: str) -> str | None:
        user_id = canonical_id(helpdesk_user_id, "005")
        return f"{self.settings.agent_prefix}{user_id}" if user_id else None

    def _user_of_agent(self, account: str) -> str | None:
        """The Salesforce user Id behind an agent's IM account; None for any other account."""
        prefix = self.settings.agent_prefix
        return canonical_id(account[len(prefix) :], "005") if account.startswith(prefix) else None

    async def user_name(self, helpdesk_user_id: str) -> str | None:
        """A user's `Name` (the agent console's Nick for the agent), None when unknown."""
        user_id = canonical_id(helpdesk_user_id, "005")
        if user_id is None:
            return None
        try:
            user = await self._run(
                "read the User", lambda sf: _sobject(sf, "User").get(user_id, params={"fields": "Name"})
            )
        except NotFound:
            return None
        return str(user.get("Name") or "") or None

    # --- tickets ---
    async def create_ticket(self, ticket: NewTicket) -> str:
        fields: dict[str, Any] = {"Subject": ticket.subject[:SUBJECT_MAX], "Origin": "Chat"}
        if ticket.description:
            fields["Description"] = ticket.description[:DESCRIPTION_MAX]
        if ticket.name:
            fields["SuppliedName"] = ticket.name[:NAME_MAX]
        if ticket.email:
            fields["SuppliedEmail"] = ticket.email
        if ticket.request_key and self._upsert_supported:
            key = _external_key(ticket.request_key)
            try:
                case_id = await self._run("create the Case", lambda sf: self._upsert(sf, key, fields))
            except NotFound:
                self._upsert_supported = False
                log.warning(
                    "salesforce: Case has no external ID field %s; creating Cases without idempotency",
                    REQUEST_KEY_FIELD,
                )
            else:
                return str(case_id)
        result = await self._run("create the Case", lambda sf: _sobject(sf, "Case").create(fields))
        return str(result["id"])

    @staticmethod
    def _upsert(sf: Salesforce, key: str, fields: dict[str, Any]) -> str:
        response = _sobject(sf, "Case").upsert(f"{REQUEST_KEY_FIELD}/{quote(key, safe='')}", fields, raw_response=True)
        if response.status_code != 204 and response.content:
            return str(response.json()["id"])
        # Before API 46.0 an upsert that updated answers 204 without a body.
        return str(_sobject(sf, "Case").get_by_custom_id(REQUEST_KEY_FIELD, key, params={"fields": "Id"})["Id"])

    async def get_ticket(self, ticket_id: str) -> TicketState:
        case_id = canonical_id(ticket_id, "500")
        if case_id is None:  # Salesforce answers 404 for an Id that is not a Case's
            return TicketState(ticket_id=ticket_id, agent_id=None, status=TicketStatus.DELETED)
        try:
            case = await self._run(
                "read the Case", lambda sf: _sobject(sf, "Case").get(case_id, params={"fields": CASE_FIELDS})
            )
        except NotFound:
            await self._confirm_deleted(case_id)
            return TicketState(ticket_id=case_id, agent_id=None, status=TicketStatus.DELETED)
        raw_status = str(case.get("Status") or "")
        if case.get("IsDeleted"):
            status = TicketStatus.DELETED
        elif case.get("IsClosed"):
            status = TicketStatus.CLOSED
        else:
            status = TicketStatus.OPEN
        owner = case.get("OwnerId") or ""
        return TicketState(ticket_id=case_id, agent_id=self.agent_id(owner), status=status, raw_status=raw_status)

    async def _confirm_deleted(self, case_id: str) -> None:
        """A 404 is also what a wrong SALESFORCE_API_VERSION gets, and a deleted Case dismisses its group: only the
        recycle bin (queryAll shows IsDeleted), or no trace of the Id at all, counts as deleted."""
        soql = f"SELECT Id, IsDeleted FROM Case WHERE Id = '{case_id}'"  # case_id is a checked 18-character Id
        try:
            found = await self._run(
                "look for the Case in the recycle bin", lambda sf: sf.query_all(soql, include_deleted=True)
            )
        except NotFound:
            raise PermanentError(
                "Salesforce answers 404 to its own API: check SALESFORCE_API_VERSION and SALESFORCE_LOGIN_URL",
                upstream=UPSTREAM,
            ) from None
        records = found.get("records") or []
        if records and not records[0].get("IsDeleted"):
            raise PermanentError(
                f"Salesforce answered 404 for Case {case_id}, which exists: can the integration user see it?",
                upstream=UPSTREAM,
            )

    async def add_comment(self, comment: Comment) -> str:
        return await self.add_comments([comment])

    async def add_comments(self, comments: Sequence[Comment]) -> str:
        """One CaseComment (the integration user's) with each sender's lines headed by who wrote them."""
        first = comments[0]
        case_id = canonical_id(first.ticket_id, "500")
        if case_id is None:
            raise PermanentError(f"{first.ticket_id!r} is not a Salesforce Case Id", upstream=UPSTREAM)
        parts = []
        for run in merge_runs(comments):
            if run.author is Author.CUSTOMER:
                who = f"Customer ({run.author_id})"
            else:
                who = f"Agent ({self._user_of_agent(run.author_id) or run.author_id})"
            parts.append(f"{who}: {run.body}")
        body = "\n".join(parts)[:COMMENT_MAX]
        public = all(c.public for c in comments)
        data = {"ParentId": case_id, "CommentBody": body, "IsPublished": public}
        result = await self._run("add the CaseComment", lambda sf: _sobject(sf, "CaseComment").create(data))
        return str(result["id"])

    async def get_reply(self, ticket_id: str, comment_id: str) -> Reply | None:
        """A CaseComment of the Case as Salesforce has it now (replies.py); None when the Case has no such comment.
        The integration user's comments (the customer's chat messages) are the bridge's own."""
        case_id = canonical_id(ticket_id, "500")
        if case_id is None:
            return None
        comment = await self._run("read the CaseComment", lambda sf: replies.read_comment(sf, comment_id))
        if comment is None or not replies.same_id(comment.case_id, case_id):
            return None
        if self._integration_user is None:
            self._integration_user = await self._run("read who the bridge is", replies.integration_user_id)
        by_bridge = replies.same_id(comment.author_id, self._integration_user)
        return Reply(
            comment_id=comment.id,
            ticket_id=case_id,
            text=comment.body,
            public=comment.published,
            author_account=None if by_bridge else self.agent_id(comment.author_id),
            author_name=comment.author_name,
            by_bridge=by_bridge,
        )
