"""Every signature the bridge checks, as pure functions: verify_*() for the service and sign/gen for tests and tools.

- signed calls: `v1=` hex HMAC-SHA256(secret, "<timestamp>.<METHOD>.<target>.<raw body>"), 300 s window, with
  either of two secrets (the full callout key or the narrow app key): the one that matches is the caller's scope;
- UserSig: Tencent's TLS 2.0 format, verified by recomputing the HMAC (tls-sig-api-v2 has no verify);
- IM callbacks: hex sha256(token + RequestTime).
These functions only say valid (and in which canonical form, or with which secret) or raise SignatureError with a
reason a person can act on. A helpdesk's own webhook signatures are its connector's (with `check_window` for their
timestamps).

The checks of a request come last: `check_signed` (a signed call, its replay claimed in storage and its answer kept
for a retry by the KeepAnswers middleware) and `check_signed_or_user` (an end user's UserSig, or a signed call).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

from sqlalchemy import bindparam, insert
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from TLSSigAPIv2 import TLSSigAPIv2

from bridge import ids
from bridge.config import Settings
from bridge.errors import BridgeError, Conflict, Forbidden, SignatureError
from bridge.store import Database, Prepared, SeenSignature, Statement

log = logging.getLogger(__name__)

WINDOW_SECONDS = 300
MAX_USERSIG_JSON = 4096  # bytes a UserSig may inflate to; real ones are a few hundred
MAX_USERSIG_NUMBER = 2**63 - 1  # TLS.time, TLS.expire and TLS.sdkappid are 64-bit integers in Tencent's SDKs
TIMESTAMP_HEADER = "X-Bridge-Timestamp"
SIGNATURE_HEADER = "X-Bridge-Signature"
_SIGNATURE = re.compile(r"v1=([0-9a-f]{64})", re.IGNORECASE | re.ASCII)
HTTP_WHITESPACE = " \t"  # what HTTP calls optional whitespace around a header value (RFC 9110, 5.6.3)


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def check_window(timestamp: float, now: float | None, what: str) -> None:
    """A signed timestamp within WINDOW_SECONDS of the bridge's clock, else SignatureError naming `what`."""
    # Whole seconds on both sides: a timestamp exactly WINDOW_SECONDS old is still inside.
    if abs(int(_now(now)) - int(timestamp)) > WINDOW_SECONDS:
        raise SignatureError(f"{what} is more than {WINDOW_SECONDS} s away from the bridge's clock; sign it again")


def _unix_seconds(value: str, what: str) -> int:
    """Whole unix seconds from a header or query value; ASCII digits only, and no longer than any real clock."""
    if not (value.isascii() and value.isdigit() and len(value) <= 12):
        raise SignatureError(f"{what} must be whole unix seconds")
    return int(value)


# --- signed calls -------------------------------------------------------------------------------------------------


def call_signature(secret: str, timestamp: int | str, method: str, target: str, body: bytes) -> str:
    message = f"{timestamp}.{method.upper()}.{target}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_call_headers(secret: str, method: str, target: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(_now(now)))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: call_signature(secret, timestamp, method, target, body)}


def canonical_signature(signature: str) -> str:
    """The one form a signature is compared and remembered in: `v1=` and 64 lowercase hex digits.

    The prefix and the hex digits are read case-insensitively and HTTP's own whitespace (space, tab) around the value
    is ignored; anything else is malformed. Not str.strip(): it also strips \\xa0 and \\x85, which would let a
    rewritten header pass as a new signature."""
    match = _SIGNATURE.fullmatch(signature.strip(HTTP_WHITESPACE))
    if match is None:
        raise SignatureError(
            f"{SIGNATURE_HEADER} is malformed: send v1= followed by the 64 hex digits of the HMAC-SHA256",
            code="malformed_signature",
        )
    return "v1=" + match.group(1).lower()


def signed_call_scope(
    secrets: dict[str, str],
    timestamp: str | None,
    signature: str | None,
    method: str,
    target: str,
    body: bytes,
    now: float | None = None,
) -> tuple[str, str]:
    """Check a signed call against each secret (scope -> secret); return (the scope whose secret signed it, the
    signature in its canonical form)."""
    if not timestamp or not signature:
        raise SignatureError(f"this call must be signed: send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}")
    canonical = canonical_signature(signature)
    check_window(_unix_seconds(timestamp, TIMESTAMP_HEADER), now, TIMESTAMP_HEADER)
    scope = None
    for name, secret in secrets.items():  # every secret is tried, each in constant time
        expected = call_signature(secret, timestamp, method, target, body)
        if hmac.compare_digest(expected.encode(), canonical.encode()) and scope is None:
            scope = name
    if scope is None:
        raise SignatureError(
            f'{SIGNATURE_HEADER} does not match: sign "<timestamp>.<METHOD>.<path?query>.<raw body>" '
            "with BRIDGE_CALLOUT_SECRET (or BRIDGE_APP_SECRET)"
        )
    return scope, canonical


# --- UserSig --------------------------------------------------------------------------------------------------------


def gen_usersig(sdkappid: int, key: str, user_id: str, expire: int = 86400) -> str:
    return str(TLSSigAPIv2(sdkappid, key).gen_sig(user_id, expire))


def _usersig_hmac(key: str, fields: dict[str, object]) -> str:
    content = (
        f"TLS.identifier:{fields['TLS.identifier']}\nTLS.sdkappid:{fields['TLS.sdkappid']}\n"
        f"TLS.time:{fields['TLS.time']}\nTLS.expire:{fields['TLS.expire']}\n"
    )
    if "TLS.userbuf" in fields:
        content += f"TLS.userbuf:{fields['TLS.userbuf']}\n"
    return base64.b64encode(hmac.new(key.encode(), content.encode(), hashlib.sha256).digest()).decode()


def _usersig_number(value: object) -> int:
    """A UserSig's number field: a JSON integer (or its digits as a string). json.loads also yields floats,
    Infinity and NaN, which no UserSig carries and int() cannot always take."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not -MAX_USERSIG_NUMBER <= value <= MAX_USERSIG_NUMBER:
        raise ValueError("not a whole number")
    return value


def decode_usersig(usersig: str) -> dict[str, object]:
    """The JSON inside a UserSig; SignatureError when it is not one."""
    try:
        raw = usersig.strip().replace("*", "+").replace("-", "/").replace("_", "=")
        inflate = zlib.decompressobj()
        content = inflate.decompress(base64.b64decode(raw, validate=True), MAX_USERSIG_JSON)
        if inflate.unconsumed_tail:  # a real UserSig inflates to a few hundred bytes: refuse a zip bomb
            raise ValueError("too large")
        fields = json.loads(content)
        if not isinstance(fields, dict):
            raise ValueError("not an object")
        for name in ("TLS.time", "TLS.expire", "TLS.sdkappid"):
            _usersig_number(fields[name])
        str(fields["TLS.identifier"]), str(fields["TLS.sig"])
        return fields
    except (ValueError, TypeError, KeyError, zlib.error, UnicodeError, RecursionError):
        raise SignatureError("the UserSig is malformed") from None


def verify_usersig(sdkappid: int, key: str, user_id: str, usersig: str, now: float | None = None) -> int:
    """Check a UserSig for `user_id`; return the unix time it expires."""
    fields = decode_usersig(usersig)
    if str(fields["TLS.identifier"]) != user_id:
        raise SignatureError("the UserSig was issued for another userId")
    if int(fields["TLS.sdkappid"]) != sdkappid:  # type: ignore[call-overload]
        raise SignatureError("the UserSig was issued for another IM application (SDKAppID)")
    if not hmac.compare_digest(_usersig_hmac(key, fields).encode(), str(fields["TLS.sig"]).encode()):
        raise SignatureError("the UserSig signature is not valid for this IM application")
    expires_at = int(fields["TLS.time"]) + int(fields["TLS.expire"])  # type: ignore[call-overload]
    if _now(now) >= expires_at:
        raise SignatureError("the UserSig has expired; ask your backend for a new one")
    return expires_at


# --- IM callbacks ---------------------------------------------------------------------------------------------------


def im_callback_sign(token: str, request_time: str) -> str:
    return hashlib.sha256((token + request_time).encode()).hexdigest()


def verify_im_callback(token: str, sign: str | None, request_time: str | None, now: float | None = None) -> str:
    """Check a callback's Sign; return it in the form it is remembered in (lowercase hex)."""
    if not sign or not request_time:
        raise SignatureError("IM callbacks must carry Sign and RequestTime (callback authentication is on)")
    check_window(_unix_seconds(request_time, "RequestTime"), now, "RequestTime")
    canonical = sign.strip(HTTP_WHITESPACE).lower()
    if not hmac.compare_digest(im_callback_sign(token, request_time).encode(), canonical.encode()):
        raise SignatureError("Sign does not match IM_CALLBACK_TOKEN")
    return canonical


# --- checking a request -------------------------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    return request.app.state.bridge.settings  # type: ignore[no-any-return]


def _db(request: Request) -> Database:
    return request.app.state.bridge.db  # type: ignore[no-any-return]


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
T = TypeVar("T")


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
    route stores the claim with its job instead (`with_claim`), one transaction for both."""
    settings = _settings(request)
    if settings.bridge_insecure_no_auth:
        return INSECURE
    secrets = {
        scope: secret.get_secret_value()
        for scope, secret in ((CALLOUT, settings.bridge_callout_secret), (APP, settings.bridge_app_secret))
        if secret is not None
    }
    if not secrets:
        raise SignatureError("signed calls are disabled: BRIDGE_CALLOUT_SECRET is not set on the bridge")
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    scope, signature = signed_call_scope(
        secrets, timestamp, request.headers.get(SIGNATURE_HEADER), request.method, target_of(request), body
    )
    if scope == APP and not app_allowed:
        raise Forbidden(
            "BRIDGE_APP_SECRET may only open tickets and get UserSigs for customers; "
            "this call needs BRIDGE_CALLOUT_SECRET"
        )
    if request.method in ("GET", "HEAD"):
        return scope  # a repeated read changes nothing: reads are not remembered
    expires_at = int(timestamp or 0) + WINDOW_SECONDS + 1
    if not claim:
        request.scope.setdefault("state", {})[DEFERRED_CLAIM] = (signature, expires_at)
        return scope
    seen = await _db(request).claim_signature(signature, expires_at)
    if seen is None:
        request.scope.setdefault("state", {})[CLAIM] = signature  # what request.state holds
        return scope
    _answer_seen(seen)


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
    seen = await _db(request).seen_signature(signature)
    if seen is None:  # purged in between: it expired, so the call is stale anyway
        raise SignatureError("the signature has expired")
    _answer_seen(seen)


async def with_claim(request: Request, call: Callable[[list[Statement]], Awaitable[T]]) -> T:
    """`call` (a service method storing a job) given the claim check_signed(claim=False) left, to store with its job;
    a claim met already (the job's insert conflicts) answers the call as the retry it is."""
    try:
        return await call(claim_with_job(request))
    except IntegrityError:  # the job is stored on a conflict-free insert: the signature was claimed before
        await claimed_before(request)


def _answer_seen(seen: SeenSignature) -> NoReturn:
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
    settings = _settings(request)
    if settings.bridge_insecure_no_auth:
        return INSECURE
    if not user_id:
        raise SignatureError("a UserSig authenticates the userId named in the body; userId is missing")
    if decode_usersig(usersig)["TLS.identifier"] == ids.normalize(user_id):
        user_id = ids.normalize(user_id)  # a 15-character Salesforce Id is its 18-character IM account's user
    verify_usersig(settings.im_sdkappid, settings.im_secret_key.get_secret_value(), user_id, usersig)
    return f"user:{user_id}"
