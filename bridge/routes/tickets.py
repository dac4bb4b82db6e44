"""`POST /createticket` (end user or signed) and reading links (signed)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge import ids
from bridge.errors import BadRequest, Conflict, NotFound
from bridge.models import CreateTicketBody, GroupBody, LinkQuery
from bridge.routes import (
    IM_OK,
    bridge_of,
    check_signed,
    check_signed_or_user,
    claim_with_job,
    claimed_before,
    ok,
    parse_json,
    peek_json,
    raw_body,
    validate,
)


async def create_ticket(request: Request) -> JSONResponse:
    bridge = bridge_of(request)
    body = await raw_body(request)
    provider = request.path_params.get("connector")
    user_id = peek_json(body).get("userId")
    caller = await check_signed_or_user(request, body, user_id if isinstance(user_id, str) else None, claim=False)
    data = validate(CreateTicketBody, parse_json(body))
    if provider is None:
        provider = bridge.settings.default_connector
        if provider is None:
            raise BadRequest(
                "no default connector: set BRIDGE_DEFAULT_CONNECTOR or call /{connector}/createticket",
                code="no_default_connector",
            )
    bridge.connector(provider)
    key = request.headers.get("idempotency-key")
    if key is not None and not (0 < len(key) <= 255):
        raise BadRequest("Idempotency-Key must be 1 to 255 characters", code="invalid_request")
    try:
        outcome = await bridge.create_ticket(provider, data.model_dump(), key, caller, also=claim_with_job(request))
    except IntegrityError:  # the job is stored on a conflict-free insert: the signature was claimed before
        await claimed_before(request)
    if outcome.queued and "ticketId" not in outcome.job.payload:
        # Another request with this Idempotency-Key is still opening the ticket.
        raise Conflict(
            "a request with this Idempotency-Key is still in progress; retry in a few seconds",
            code="request_in_progress",
        )
    ids = (
        outcome.result
        if not outcome.queued
        else {
            "provider": provider,
            "ticketId": outcome.job.payload["ticketId"],
            "groupId": outcome.job.payload["groupId"],
        }
    )
    body_out = {**ids, **IM_OK, "GroupId": ids["groupId"]}
    if outcome.queued:
        body_out["jobId"] = str(outcome.job.id)
    return ok(body_out, 202 if outcome.queued else 201)


async def link_by_group(request: Request) -> JSONResponse:
    await check_signed(request, await raw_body(request))
    # Checked like a body's groupId (and normalised: a 15-character Case Id finds its group too), so a value no
    # group can have (NUL, control characters) is a 400, not a database error.
    group_id = validate(GroupBody, {"groupId": request.path_params["group_id"]}).groupId
    link = await bridge_of(request).db.link_by_group(group_id)
    if link is None:
        raise NotFound(f"no link for group {group_id!r}", code="link_not_found")
    return ok(link.public())


async def link_by_ticket(request: Request) -> JSONResponse:
    await check_signed(request, await raw_body(request))
    provider = request.query_params.get("provider")
    ticket_id = request.query_params.get("ticketId")
    if not provider or not ticket_id:
        raise BadRequest("give both provider and ticketId query parameters", code="invalid_request")
    validate(LinkQuery, {"provider": provider, "ticketId": ticket_id})
    link = await bridge_of(request).db.link_by_ticket(provider, ids.normalize(ticket_id))
    if link is None:
        raise NotFound(f"no link for {provider} ticket {ticket_id!r}", code="link_not_found")
    return ok(link.public())


routes = [
    Route("/createticket", create_ticket, methods=["POST"]),
    Route("/{connector}/createticket", create_ticket, methods=["POST"]),
    Route("/links/{group_id:path}", link_by_group, methods=["GET"]),
    Route("/links", link_by_ticket, methods=["GET"]),
]
