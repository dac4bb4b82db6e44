"""The exception tree, split by what the caller should do next.

    BridgeError                  code, status, message: renders as the contract's error body
    ├── BadRequest (400)         the caller's input is wrong: fix it, do not retry
    │   └── PayloadTooLarge (413)
    ├── SignatureError (401)     missing, wrong, malformed or stale authentication
    ├── Forbidden (403)          authenticated, but this caller may not do this
    ├── NotFound (404)
    │   ├── UnknownConnector     no enabled connector has that name
    │   └── UnknownGroup         not a ticket's group of an enabled connector
    ├── Conflict (409)
    ├── TooManyRequests (429)    retry after `retry_after` seconds (sent as Retry-After)
    └── UpstreamError (502)      IM or a helpdesk refused or failed
        ├── PermanentError       bad input or credentials upstream: retrying will not help
        └── RetriableError       timeouts, 5xx, rate limits (retry_after seconds when known)

Messages are sentences a person can act on and never contain a secret. Every class that names a code of its own is
registered under it (ERRORS), so an error a job stored as its answer body is rebuilt as what it was (`rebuild`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from math import isfinite
from typing import Any, Self

# code -> the class that names it: how a stored error body becomes an error again.
ERRORS: dict[str, type[BridgeError]] = {}


class BridgeError(Exception):
    status = 500
    code = "internal_error"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            ERRORS.setdefault(cls.code, cls)

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}
        self.headers = headers or {}  # sent with the error answer (Retry-After)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        error.update(self.details)
        return {"error": error}

    @classmethod
    def _from_body(cls, message: str, code: str, details: dict[str, Any]) -> Self:
        # Not through the subclass's own constructor (their signatures differ): the same body, status and class.
        err = cls.__new__(cls)
        BridgeError.__init__(err, message, code=code, details=details)
        return err


ERRORS[BridgeError.code] = BridgeError


def rebuild(error: dict[str, Any], fallback_message: str) -> BridgeError:
    """The error whose body() held `error` (a stored job's answer): the class registered under its code, else an
    UpstreamError naming that code (an upstream's failure is what a job mostly ends with)."""
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    code = str(error.get("code") or UpstreamError.code)
    message = str(error.get("message") or fallback_message)
    return ERRORS.get(code, PermanentError)._from_body(message, code, details)


class BadRequest(BridgeError):
    status = 400
    code = "bad_request"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"


class SignatureError(BridgeError):
    status = 401
    code = "unauthenticated"


class Forbidden(BridgeError):
    status = 403
    code = "forbidden"


class NotFound(BridgeError):
    status = 404
    code = "not_found"


class UnknownConnector(NotFound):
    code = "unknown_connector"


class UnknownGroup(NotFound):
    code = "unknown_group"


class Conflict(BridgeError):
    status = 409
    code = "conflict"


class TooManyRequests(BridgeError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class UpstreamError(BridgeError):
    """An upstream (IM, Salesforce, Zendesk) failed. `upstream` names it; `upstream_code` is its own error code."""

    status = 502
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        upstream: str,
        upstream_code: int | str | None = None,
        retry_after: float | None = None,
    ):
        details: dict[str, Any] = {"upstream": upstream}
        if upstream_code is not None:
            details["upstreamCode"] = upstream_code
        super().__init__(message, details=details)
        self.upstream = upstream
        self.upstream_code = upstream_code
        self.retry_after = retry_after

    @classmethod
    def _from_body(cls, message: str, code: str, details: dict[str, Any]) -> Self:
        err = super()._from_body(message, code, details)
        err.upstream = str(err.details.setdefault("upstream", "upstream"))
        err.upstream_code = err.details.get("upstreamCode")
        err.retry_after = None
        return err


class PermanentError(UpstreamError):
    """Retrying the same call will fail the same way."""


class RetriableError(UpstreamError):
    """A later attempt may succeed (after `retry_after` seconds when the upstream said so)."""


def parse_retry_after(value: str | None) -> float | None:
    """An HTTP Retry-After (delay-seconds or an HTTP date) in seconds from now; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
