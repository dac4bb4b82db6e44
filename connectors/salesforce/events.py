"""`POST /salesforce/events` (signed): what the `apex/` package's triggers send, as ticket events.

Up to 200 events per call (one trigger chunk). Each converges its Case's group in order, `deleted` dismisses it,
`comment_added` relays an agent's published CaseComment into the chat (once per comment, whatever the eventId); an
event with an `eventId` (the package sends one, the same on every retry) is stored once: its job key is kept for
8 days. Convergence re-reads the Case, so an event without one simply gets a job per delivery.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse

from bridge.api import (
    Body,
    EventKind,
    TicketEvent,
    check_signed,
    ok,
    parse_json,
    raw_body,
    require_enabled,
    take_events,
    validate,
)
from connectors.salesforce.ids import canonical_id, normalize

# `comment_added`: a CaseComment was inserted; the bridge reads it back (replies.py) and relays a published one an
# agent wrote. Everything else converges the Case's group.
KINDS = {"deleted": EventKind.DELETED, "comment_added": EventKind.COMMENT_ADDED}


class SalesforceEvent(Body):
    type: Literal["owner_changed", "work_accepted", "status_changed", "deleted", "comment_added"]
    eventId: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    caseId: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")]
    ownerId: str | None = None
    previousOwnerId: str | None = None
    status: str | None = None
    isClosed: bool | None = None
    userId: str | None = None
    commentId: Annotated[str, StringConstraints(pattern=r"^00a[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")] | None = None

    @model_validator(mode="after")
    def _comment(self) -> SalesforceEvent:
        if self.type == "comment_added" and not self.commentId:
            raise ValueError("a comment_added event needs commentId (a CaseComment Id)")
        return self

    @field_validator("caseId", "ownerId", "previousOwnerId", "userId")
    @classmethod
    def _normalize(cls, value: str | None) -> str | None:
        return normalize(value) if value else value

    @field_validator("commentId")
    @classmethod
    def _comment_id(cls, value: str | None) -> str | None:
        # One form, so the 15- and the 18-character Id of a comment are one job.
        return (canonical_id(value, "00a") or value) if value else value


class SalesforceEvents(Body):
    events: Annotated[list[SalesforceEvent], Field(min_length=1, max_length=200)]


async def salesforce_events(request: Request) -> JSONResponse:
    """Store each event's work as a job of its group, answer 202; the worker applies them in order per group."""
    body = await raw_body(request)
    await check_signed(request, body)
    data = validate(SalesforceEvents, parse_json(body))
    require_enabled(request, "salesforce")  # 404 when Salesforce is not configured: nothing could apply these events
    await take_events(
        request,
        [
            TicketEvent(
                provider="salesforce",
                group_id=event.caseId,  # a Case's group ID is its 18-character Id
                key=f"sf-event:{event.eventId or uuid.uuid4().hex}",
                kind=KINDS.get(event.type, EventKind.CHANGED),
                hints=event.model_dump(),
                comment_id=event.commentId,
            )
            for event in data.events
        ],
    )
    return ok({"accepted": len(data.events)}, 202)
