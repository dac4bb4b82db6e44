"""Thin HTTP handlers: parse, authenticate, call the service, answer. Shared request plumbing lives here."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from bridge import auth, ids
from bridge.errors import BadRequest, PayloadTooLarge, SignatureError
from bridge.service import Bridge

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


def bridge_of(request: Request) -> Bridge:
    return request.app.state.bridge  # type: ignore[no-any-return]


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


def target_of(request: Request) -> str:
    """The path with its query string exactly as sent, as signed calls sign it."""
    path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    target = path.decode("latin-1")
    return f"{target}?{query.decode('latin-1')}" if query else target


async def check_signed(request: Request, body: bytes) -> None:
    """Signed-call authentication: valid, fresh, and never seen before."""
    bridge = bridge_of(request)
    settings = bridge.settings
    if settings.bridge_insecure_no_auth:
        return
    secret = settings.bridge_callout_secret
    if secret is None:
        raise SignatureError("signed calls are disabled: BRIDGE_CALLOUT_SECRET is not set on the bridge")
    timestamp = request.headers.get(auth.TIMESTAMP_HEADER)
    signature = request.headers.get(auth.SIGNATURE_HEADER)
    auth.verify_signed_call(secret.get_secret_value(), timestamp, signature, request.method, target_of(request), body)
    # A replayed read changes nothing; only calls that change something are remembered (and refused twice).
    if request.method != "GET" and not await bridge.db.remember_signature(
        signature or "", int(timestamp or 0) + auth.WINDOW_SECONDS + 1
    ):
        raise SignatureError("this signature was already used; sign each call afresh", code="replayed")


def usersig_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "usersig" and value.strip() else None


async def check_signed_or_user(request: Request, body: bytes, user_id: str | None) -> None:
    """End-user UserSig for `user_id` when the Authorization header carries one, else a signed call."""
    usersig = usersig_of(request)
    if usersig is None:
        await check_signed(request, body)
        return
    settings = bridge_of(request).settings
    if settings.bridge_insecure_no_auth:
        return
    if not user_id:
        raise SignatureError("a UserSig authenticates the userId named in the body; userId is missing")
    if auth.decode_usersig(usersig)["TLS.identifier"] == ids.normalize(user_id):
        user_id = ids.normalize(user_id)  # a 15-character Salesforce Id is its 18-character IM account's user
    auth.verify_usersig(settings.im_sdkappid, settings.im_secret_key.get_secret_value(), user_id, usersig)


def ok(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


IM_OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
