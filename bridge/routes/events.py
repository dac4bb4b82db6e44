"""Events from the outside: Salesforce trigger callouts (signed)."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.models import SalesforceEvents
from bridge.routes import bridge_of, check_signed, ok, parse_json, raw_body, validate


async def salesforce_events(request: Request) -> JSONResponse:
    """Store each event's convergence as a job, answer 202; the worker applies them in order per group.

    An event with an `eventId` (the Apex package sends one, the same on every retry) is applied once: its job key
    is kept for 8 days. Convergence re-reads the Case, so an event without one simply gets a job per delivery."""
    body = await raw_body(request)
    await check_signed(request, body)
    data = validate(SalesforceEvents, parse_json(body))
    bridge = bridge_of(request)
    bridge.connector("salesforce")  # 404 when Salesforce is not configured: nothing could apply these events
    for event in data.events:
        kind = "delete_group" if event.type == "deleted" else "converge"
        await bridge.queue.enqueue(
            kind,
            {"groupId": event.caseId, "event": event.model_dump()},
            key=f"sf-event:{event.eventId or uuid.uuid4().hex}",
            ordering_key=event.caseId,
        )
    return ok({"accepted": len(data.events)}, 202)


routes = [Route("/salesforce/events", salesforce_events, methods=["POST"])]
