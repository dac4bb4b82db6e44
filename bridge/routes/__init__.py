"""Thin HTTP handlers: parse, authenticate, call the service, answer. Shared request plumbing lives here."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import bindparam, insert
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge import auth, ids
from bridge.errors import BadRequest, BridgeError, Conflict, Forbidden, PayloadTooLarge, SignatureError
from bridge.service import Bridge
from bridge.store import Prepared, SeenSignature, Statement

log = logging.getLogger(__name__)

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


# Who called, as the routes and the service name it: the secret that signed, or the end user a UserSig is for.
CALLOUT, APP, INSECURE = "callout", "app", "insecure"
CLAIM = "signature_claim"  # request.state entry: the canonical signature this request claimed
CLAIM_STATEMENT = insert(SeenSignature).values(signature=bindparam("signature"), expires_at=bindparam("expires_at"))
DEFERRED_CLAIM = "signature_to_claim"  # (signature, expires_at) that claim_with_job() stores with the job


class AnsweredBefore(BridgeError):
    """A signed call already made within its window: the answer is the first call's, kept by KeepAnswers."""

    def __init__(self, status: int, response_json: str):
        super().__init__("a retry of a signed call already answered")
        self.status = status
        self._body = json.loads(response_json)

    def body(self) -> dict[str, Any]:
        return self._body  # type: ignore[no-any-return]


async def check_signed(request: Request, body: bytes, *, app_allowed: bool = False, claim: bool = True) -> str:
    """Signed-call authentication: valid and fresh. Returns the caller's scope: CALLOUT (BRIDGE_CALLOUT_SECRET, every
    call), APP (BRIDGE_APP_SECRET: only where `app_allowed`, else 403) or INSECURE (checks turned off).

    A call that changes something claims its signature: the same signature again within the window is a retry,
    answered with the first call's answer (409 while that one still runs) and never run twice. `claim=False`: the
    route stores the claim with its job instead (`claim_with_job`), one transaction for both."""
    bridge = bridge_of(request)
    settings = bridge.settings
    if settings.bridge_insecure_no_auth:
        return INSECURE
    secrets = {
        scope: secret.get_secret_value()
        for scope, secret in ((CALLOUT, settings.bridge_callout_secret), (APP, settings.bridge_app_secret))
        if secret is not None
    }
    if not secrets:
        raise SignatureError("signed calls are disabled: BRIDGE_CALLOUT_SECRET is not set on the bridge")
    timestamp = request.headers.get(auth.TIMESTAMP_HEADER)
    scope, signature = auth.signed_call_scope(
        secrets, timestamp, request.headers.get(auth.SIGNATURE_HEADER), request.method, target_of(request), body
    )
    if scope == APP and not app_allowed:
        raise Forbidden(
            "BRIDGE_APP_SECRET may only open tickets and get UserSigs for customers; "
            "this call needs BRIDGE_CALLOUT_SECRET"
        )
    if request.method in ("GET", "HEAD"):
        return scope  # a repeated read changes nothing: reads are not remembered
    expires_at = int(timestamp or 0) + auth.WINDOW_SECONDS + 1
    if not claim:
        request.scope.setdefault("state", {})[DEFERRED_CLAIM] = (signature, expires_at)
        return scope
    seen = await bridge.db.claim_signature(signature, expires_at)
    if seen is None:
        request.scope.setdefault("state", {})[CLAIM] = signature  # what request.state holds
        return scope
    _answer_seen(seen)
    raise AssertionError("unreachable")


def claim_with_job(request: Request) -> list[Statement]:
    """The signature claim check_signed(claim=False) left, as a statement for the job's transaction (none when the
    call is not signed). From here on the answer is kept with the signature (KeepAnswers)."""
    state = request.scope.setdefault("state", {})
    deferred = state.pop(DEFERRED_CLAIM, None)
    if deferred is None:
        return []
    signature, expires_at = deferred
    state[CLAIM] = signature
    return [Prepared(CLAIM_STATEMENT, {"signature": signature, "expires_at": expires_at})]


async def claimed_before(request: Request) -> NoReturn:
    """The job's transaction met the signature already claimed: this call is a retry of an earlier one."""
    signature = request.scope.setdefault("state", {}).pop(CLAIM)  # not ours to keep or forget
    seen = await bridge_of(request).db.seen_signature(signature)
    if seen is None:  # purged in between: it expired, so the call is stale anyway
        raise SignatureError("the signature has expired")
    _answer_seen(seen)
    raise AssertionError("unreachable")


def _answer_seen(seen: SeenSignature) -> None:
    if seen.status is None or seen.response_json is None:
        raise Conflict(
            "the first call with this signature is still being answered; retry in a moment",
            code="request_in_progress",
            headers={"Retry-After": "1"},
        )
    raise AnsweredBefore(seen.status, seen.response_json)


class KeepAnswers:
    """Keeps the answer of every signed call that claimed its signature (see check_signed) with that signature, before
    the answer leaves, so a retry gets it. An answer of 500 or more is not kept: the bridge failed, and releasing
    the signature lets the identical call be retried."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # the dict request.state writes to
        held: list[Message] = []

        async def hold(message: Message) -> None:
            if CLAIM not in state:
                await send(message)
                return
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await _keep(scope, state.pop(CLAIM), held)
                for part in held:
                    await send(part)

        try:
            await self.app(scope, receive, hold)
        except BaseException:
            if CLAIM in state:
                with contextlib.suppress(Exception):
                    await scope["app"].state.bridge.db.forget_signature(state.pop(CLAIM))
            raise


async def _keep(scope: Scope, signature: str, messages: list[Message]) -> None:
    db = scope["app"].state.bridge.db
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    try:
        if status >= 500 or not _is_json(body):
            await db.forget_signature(signature)
        else:
            await db.keep_answer(signature, status, body.decode("utf-8"))
    except Exception:  # the answer still goes out; a retry meets 409 until the signature expires
        log.warning("keeping the answer of a signed call failed", exc_info=True)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:  # UnicodeDecodeError included
        return False
    return True


def usersig_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "usersig" and value.strip() else None


async def check_signed_or_user(request: Request, body: bytes, user_id: str | None, claim: bool = True) -> str:
    """End-user UserSig for `user_id` when the Authorization header carries one, else a call signed with either
    secret. Returns the caller: `user:<userId>` (the account the UserSig is for), or check_signed's scope."""
    usersig = usersig_of(request)
    if usersig is None:
        return await check_signed(request, body, app_allowed=True, claim=claim)
    settings = bridge_of(request).settings
    if settings.bridge_insecure_no_auth:
        return INSECURE
    if not user_id:
        raise SignatureError("a UserSig authenticates the userId named in the body; userId is missing")
    if auth.decode_usersig(usersig)["TLS.identifier"] == ids.normalize(user_id):
        user_id = ids.normalize(user_id)  # a 15-character Salesforce Id is its 18-character IM account's user
    auth.verify_usersig(settings.im_sdkappid, settings.im_secret_key.get_secret_value(), user_id, usersig)
    return f"user:{user_id}"


def ok(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


IM_OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
