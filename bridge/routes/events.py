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

    Convergence re-reads the Case, so a repeated or late event is harmless: every delivery gets its own job."""
    body = await raw_body(request)
    await check_signed(request, body)
    data = validate(SalesforceEvents, parse_json(body))
    bridge = bridge_of(request)
    for event in data.events:
        kind = "delete_group" if event.type == "deleted" else "converge"
        await bridge.queue.enqueue(kind, {"groupId": event.caseId, "event": event.model_dump()},
                                   key=f"sf-event:{uuid.uuid4().hex}",
                                   ordering_key=event.caseId)
    return ok({"accepted": len(data.events)}, 202)


routes = [Route("/salesforce/events", salesforce_events, methods=["POST"])]
