"""`POST /createticket` (end user or signed) and reading links (signed)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from bridge.auth import check_signed, check_signed_or_user, with_claim
from bridge.errors import BadRequest
from bridge.models import CreateTicketBody, GroupBody, LinkQuery
from bridge.parsing import parse_json, peek_json, raw_body, validate
from bridge.routes import IM_OK, SIGNED, SIGNED_OR_USER, bridge_of, ok
from connectors.base import Endpoint


async def create_ticket(request: Request) -> JSONResponse:
    body = await raw_body(request)
    user_id = peek_json(body).get("userId")
    caller = await check_signed_or_user(request, body, user_id if isinstance(user_id, str) else None, claim=False)
    data = validate(CreateTicketBody, parse_json(body))
    provider, key = request.path_params.get("connector"), request.headers.get("idempotency-key")
    bridge = bridge_of(request)
    opened = await with_claim(request, lambda also: bridge.create_ticket(provider, data, key, caller, also))
    ids = {"provider": opened.provider, "ticketId": opened.ticket_id, "groupId": opened.group_id}
    answer = {**ids, **IM_OK, "GroupId": opened.group_id}
    if opened.queued:
        return ok({**answer, "jobId": str(opened.job_id)}, 202)
    return ok(answer, 201)


async def link_by_group(request: Request) -> JSONResponse:
    await check_signed(request, await raw_body(request))
    # Checked like a body's groupId (and normalised: a 15-character Case Id finds its group too), so a value no
    # group can have (NUL, control characters) is a 400, not a database error.
    group_id = validate(GroupBody, {"groupId": request.path_params["group_id"]}).groupId
    return ok((await bridge_of(request).link_of_group(group_id)).public())


async def link_by_ticket(request: Request) -> JSONResponse:
    await check_signed(request, await raw_body(request))
    provider = request.query_params.get("provider")
    ticket_id = request.query_params.get("ticketId")
    if not provider or not ticket_id:
        raise BadRequest("give both provider and ticketId query parameters", code="invalid_request")
    validate(LinkQuery, {"provider": provider, "ticketId": ticket_id})
    return ok((await bridge_of(request).link_of_ticket(provider, ticket_id)).public())


endpoints = [
    Endpoint(
        "POST",
        "/createticket",
        create_ticket,
        "Open a ticket on the default helpdesk, with its chat group",
        CreateTicketBody,
        SIGNED_OR_USER,
        "201",
    ),
    Endpoint(
        "POST",
        "/{connector}/createticket",
        create_ticket,
        "Open a ticket on one helpdesk, with its chat group",
        CreateTicketBody,
        SIGNED_OR_USER,
        "201",
    ),
    Endpoint("GET", "/links/{group_id:path}", link_by_group, "The link of a group", security=SIGNED),
    Endpoint(
        "GET", "/links", link_by_ticket, "The link of a ticket (provider, ticketId query parameters)", security=SIGNED
    ),
]
