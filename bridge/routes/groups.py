"""The seed's group primitives (`/joingroup`, `/leavegroup`, `/deletegroup`, `/assignment`): signed calls.

Each stores its change as a job of the group (applied in order), runs it now when it can, and answers 200 with the
seed's IM-style fields, or 202 `{"queued": true, "jobId"}` when IM cannot be reached and the job will finish later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

from bridge.auth import check_signed, with_claim
from bridge.models import AssignmentBody, GroupBody, MemberBody
from bridge.parsing import parse_json, raw_body, validate
from bridge.payloads import Assignment, DeleteGroup, GroupJob, Join, Leave
from bridge.routes import IM_OK, SIGNED, bridge_of, ok
from connectors.base import Endpoint


def group_change(job: type[GroupJob], model: type[BaseModel]) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def handle(request: Request) -> JSONResponse:
        body = await raw_body(request)
        await check_signed(request, body, claim=False)
        data = validate(model, parse_json(body)).model_dump()
        bridge = bridge_of(request)
        change = await with_claim(request, lambda also: bridge.change_group(job.model_validate(data), also))
        answer = {"ok": True, **{k: v for k, v in data.items() if k in ("groupId", "userId")}}
        if change.queued:
            return ok({**answer, "queued": True, "jobId": str(change.job_id)}, 202)
        if job is Assignment:
            answer.update(joined=change.joined, left=change.left)
        return ok({**answer, **IM_OK})

    return handle


endpoints = [
    Endpoint("POST", "/joingroup", group_change(Join, MemberBody), "Add an agent to a group", MemberBody, SIGNED),
    Endpoint(
        "POST", "/leavegroup", group_change(Leave, MemberBody), "Remove an agent from a group", MemberBody, SIGNED
    ),
    Endpoint(
        "POST",
        "/deletegroup",
        group_change(DeleteGroup, GroupBody),
        "Dismiss a group and close its link",
        GroupBody,
        SIGNED,
    ),
    Endpoint(
        "POST",
        "/assignment",
        group_change(Assignment, AssignmentBody),
        "Converge a group on its ticket's current owner",
        AssignmentBody,
        SIGNED,
    ),
]
