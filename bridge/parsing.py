"""Reading a request: the body within its limit, JSON, and a request model's validation with messages a person can act
on (also the command line's, for the same rules)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from bridge.errors import BadRequest, PayloadTooLarge

MAX_BODY = 64 * 1024
M = TypeVar("M", bound=BaseModel)

FRIENDLY = {
    "userId": "userId must be 1 to 32 letters, digits, '_' or '-'",
    "groupId": "groupId must be 1 to 48 printable ASCII characters",
    "newOwnerId": "newOwnerId must be 1 to 32 letters, digits, '_' or '-'",
    "oldOwnerId": "oldOwnerId must be 1 to 32 letters, digits, '_' or '-'",
    "provider": "provider must be 1 to 32 printable ASCII characters",
    "ticketId": "ticketId must be 1 to 64 printable ASCII characters",
}


async def raw_body(request: Request) -> bytes:
    """The body, refused with 413 past 64 KiB whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY // 1024} KiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLarge(f"the body is larger than {MAX_BODY // 1024} KiB")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # let later readers (request.body()) see it
    return body


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested deeper than Python goes
        raise BadRequest("the body is not valid UTF-8 JSON", code="invalid_json") from None


def peek_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object when it is one, else {}: for reading who claims to call before authenticating."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def validate(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(describe(exc), code="invalid_request") from None


def describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            problems.append(f"{where} is required")
        elif err["type"] == "string_pattern_mismatch" and where in FRIENDLY:
            problems.append(FRIENDLY[where])
        else:
            problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)
