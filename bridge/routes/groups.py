"""The seed's group primitives (`/joingroup`, `/leavegroup`, `/deletegroup`, `/assignment`): signed calls.

Each stores its change as a job of the group (applied in order), runs it now when it can, and answers 200 with the
seed's IM-style fields, or 202 `{"queued": true, "jobId"}` when IM cannot be reached and the job will finish later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.models import AssignmentBody, GroupBody, MemberBody
from bridge.routes import (
    IM_OK,
    bridge_of,
    check_signed,
    claim_with_job,
    claimed_before,
    ok,
    parse_json,
    raw_body,
    validate,
)
from bridge.states import JobKind


def group_change(kind: JobKind, model: type[BaseModel]) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def handle(request: Request) -> JSONResponse:
        body = await raw_body(request)
        await check_signed(request, body, claim=False)
        data = validate(model, parse_json(body)).model_dump()
        try:
            outcome = await bridge_of(request).submit(
                kind, data, ordering_key=data["groupId"], also=claim_with_job(request)
            )
        except IntegrityError:  # the job is stored on a conflict-free insert: the signature was claimed before
            await claimed_before(request)
        answer = {"ok": True, **{k: v for k, v in data.items() if k in ("groupId", "userId")}}
        if outcome.queued:
            return ok({**answer, "queued": True, "jobId": str(outcome.job.id)}, 202)
        if kind == JobKind.ASSIGNMENT:
            answer.update(joined=outcome.result.get("joined", []), left=outcome.result.get("left", []))
        return ok({**answer, **IM_OK})

    return handle


routes = [
    Route("/joingroup", group_change(JobKind.JOIN, MemberBody), methods=["POST"]),
    Route("/leavegroup", group_change(JobKind.LEAVE, MemberBody), methods=["POST"]),
    Route("/deletegroup", group_change(JobKind.DELETE_GROUP, GroupBody), methods=["POST"]),
    Route("/assignment", group_change(JobKind.ASSIGNMENT, AssignmentBody), methods=["POST"]),
]
