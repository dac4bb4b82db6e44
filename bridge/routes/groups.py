"""The seed's group primitives (`/joingroup`, `/leavegroup`, `/deletegroup`, `/assignment`): signed calls."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.models import AssignmentBody, GroupBody, MemberBody
from bridge.routes import IM_OK, bridge_of, check_signed, ok, parse_json, raw_body, validate
from bridge.service import Outcome


def answer(outcome: Outcome, body: dict[str, Any]) -> JSONResponse:
    if outcome.queued:
        return ok({**body, "queued": True, "jobId": str(outcome.job.id)}, 202)
    return ok({**body, **outcome.result, **IM_OK} if "joined" not in outcome.result else {**body, **outcome.result})


async def join_group(request: Request) -> JSONResponse:
    body = await raw_body(request)
    await check_signed(request, body)
    data = validate(MemberBody, parse_json(body))
    outcome = await bridge_of(request).submit("join", data.model_dump(), ordering_key=data.groupId)
    return answer(outcome, {"ok": True, "groupId": data.groupId, "userId": data.userId})


async def leave_group(request: Request) -> JSONResponse:
    body = await raw_body(request)
    await check_signed(request, body)
    data = validate(MemberBody, parse_json(body))
    outcome = await bridge_of(request).submit("leave", data.model_dump(), ordering_key=data.groupId)
    return answer(outcome, {"ok": True, "groupId": data.groupId, "userId": data.userId})


async def delete_group(request: Request) -> JSONResponse:
    body = await raw_body(request)
    await check_signed(request, body)
    data = validate(GroupBody, parse_json(body))
    outcome = await bridge_of(request).submit("delete_group", data.model_dump(), ordering_key=data.groupId)
    return answer(outcome, {"ok": True, "groupId": data.groupId})


async def assignment(request: Request) -> JSONResponse:
    body = await raw_body(request)
    await check_signed(request, body)
    data = validate(AssignmentBody, parse_json(body))
    outcome = await bridge_of(request).submit("assignment", data.model_dump(), ordering_key=data.groupId)
    if outcome.queued:
        return ok({"ok": True, "groupId": data.groupId, "queued": True, "jobId": str(outcome.job.id)}, 202)
    result = outcome.result
    return ok({"ok": True, "groupId": data.groupId, "joined": result.get("joined", []),
               "left": result.get("left", []), **IM_OK})


routes = [
    Route("/joingroup", join_group, methods=["POST"]),
    Route("/leavegroup", leave_group, methods=["POST"]),
    Route("/deletegroup", delete_group, methods=["POST"]),
    Route("/assignment", assignment, methods=["POST"]),
]
