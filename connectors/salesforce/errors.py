"""simple-salesforce and requests exceptions -> the bridge's errors, through one table.

Salesforce answers REST errors as `[{"message", "errorCode", "fields"}]`; simple-salesforce raises one
exception class per HTTP status and keeps the decoded body in `content`. The decision is made on the
`errorCode` when the table knows it, else on the HTTP status. Messages quote Salesforce's own message (it
never echoes credentials) and pass through `redact`, which removes any configured secret or session id that
might still appear.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError

from bridge.api import BridgeError, NotFound, PermanentError, RetriableError, parse_retry_after

UPSTREAM = "salesforce"
DEFAULT_LIMIT_RETRY = 60.0  # REQUEST_LIMIT_EXCEEDED carries no Retry-After; the daily limit is a rolling window

Kind = type[BridgeError]

# errorCode -> what the caller should do next
BY_CODE: dict[str, Kind] = {
    "REQUEST_LIMIT_EXCEEDED": RetriableError,
    "SERVER_UNAVAILABLE": RetriableError,
    "UNABLE_TO_LOCK_ROW": RetriableError,
    "UNKNOWN_EXCEPTION": RetriableError,
    "QUERY_TIMEOUT": RetriableError,
    "LOGIN_RATE_EXCEEDED": RetriableError,
    "NOT_FOUND": NotFound,
    "ENTITY_IS_DELETED": NotFound,
    "INVALID_SESSION_ID": PermanentError,  # only reached after the one re-login has failed too
    "INVALID_LOGIN": PermanentError,
    "INVALID_EMAIL_ADDRESS": PermanentError,
    "REQUIRED_FIELD_MISSING": PermanentError,
    "STRING_TOO_LONG": PermanentError,
    "INVALID_FIELD": PermanentError,
    "MALFORMED_QUERY": PermanentError,
    "INSUFFICIENT_ACCESS_OR_READONLY": PermanentError,
    "API_DISABLED_FOR_ORG": PermanentError,
    # OAuth token endpoint errors
    "invalid_client_id": PermanentError,
    "invalid_client": PermanentError,
    "invalid_grant": PermanentError,
    "unsupported_grant_type": PermanentError,
    "server_error": RetriableError,
    "temporarily_unavailable": RetriableError,
}

# HTTP status -> what the caller should do next, when the errorCode is unknown
BY_STATUS: dict[int, Kind] = {
    400: PermanentError,
    401: PermanentError,
    403: PermanentError,
    404: NotFound,
    405: PermanentError,
    408: RetriableError,
    409: RetriableError,
    415: PermanentError,
    429: RetriableError,
    500: RetriableError,
    502: RetriableError,
    503: RetriableError,
    504: RetriableError,
}

LOGIN_HINT = {
    "soap": "check SALESFORCE_USERNAME, SALESFORCE_PASSWORD and SALESFORCE_SECURITY_TOKEN",
    "oauth_password": "check SALESFORCE_USERNAME, SALESFORCE_PASSWORD, SALESFORCE_CONSUMER_KEY and "
    "SALESFORCE_CONSUMER_SECRET",
    "client_credentials": "check SALESFORCE_CONSUMER_KEY, SALESFORCE_CONSUMER_SECRET and that "
    "SALESFORCE_LOGIN_URL is the org's My Domain",
    "jwt": "check SALESFORCE_CONSUMER_KEY, SALESFORCE_USERNAME, SALESFORCE_PRIVATE_KEY_FILE and that the "
    "connected app holds the matching certificate and is approved for the user",
}


def first_error(content: Any) -> tuple[str | None, str]:
    """(errorCode, message) of a Salesforce error body (a JSON list, an OAuth error object, or text)."""
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        return content[0].get("errorCode"), str(content[0].get("message") or "")
    if isinstance(content, Mapping):
        if "error" in content:
            return content.get("error"), str(content.get("error_description") or "")
        return content.get("errorCode"), str(content.get("message") or "")
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    return None, str(content or "")[:300]


def translate(
    exc: BaseException,
    *,
    action: str,
    redact: Callable[[str], str],
    headers: Mapping[str, str] | None = None,
    flow: str | None = None,
) -> BridgeError:
    """The bridge error for an exception raised while doing `action` (e.g. "create the Case")."""
    headers = headers or {}
    if isinstance(exc, requests.Timeout):
        return RetriableError(
            f"Salesforce did not answer in time while trying to {action}; it will be retried",
            upstream=UPSTREAM,
            upstream_code="timeout",
        )
    if isinstance(exc, requests.ConnectionError):
        return RetriableError(
            f"Salesforce could not be reached while trying to {action}; it will be retried",
            upstream=UPSTREAM,
            upstream_code="connection_error",
        )
    if isinstance(exc, SalesforceAuthenticationFailed):
        code = exc.code
        status = code if isinstance(code, int) else None
        kind: Kind = BY_CODE.get(str(code), BY_STATUS.get(status or 0, PermanentError))
        if kind is NotFound:
            kind = PermanentError
        detail = redact(exc.auth_message.strip())[:300]
        if kind is RetriableError:
            return RetriableError(
                f"Salesforce login is unavailable ({code}): {detail}",
                upstream=UPSTREAM,
                upstream_code=str(code),
                retry_after=parse_retry_after(headers.get("Retry-After")),
            )
        hint = LOGIN_HINT.get(flow or "", "check the SALESFORCE_* settings")
        return PermanentError(
            f"Salesforce login failed ({code}: {detail}); {hint}", upstream=UPSTREAM, upstream_code=str(code)
        )
    if isinstance(exc, SalesforceError):
        code, message = first_error(exc.content)
        kind = BY_CODE.get(
            code or "", BY_STATUS.get(exc.status, RetriableError if exc.status >= 500 else PermanentError)
        )
        text = redact(
            f"Salesforce refused to {action}: {message or 'HTTP ' + str(exc.status)}" + (f" ({code})" if code else "")
        )
        if kind is NotFound:
            return NotFound(text, code="not_found", details={"upstream": UPSTREAM, "upstreamCode": code})
        if kind is RetriableError:
            delay = parse_retry_after(headers.get("Retry-After"))
            if delay is None and (code == "REQUEST_LIMIT_EXCEEDED" or exc.status == 429):
                delay = DEFAULT_LIMIT_RETRY
            return RetriableError(text, upstream=UPSTREAM, upstream_code=code or exc.status, retry_after=delay)
        return PermanentError(text, upstream=UPSTREAM, upstream_code=code or exc.status)
    if isinstance(exc, BridgeError):
        return exc
    return RetriableError(f"Salesforce call failed while trying to {action}: {type(exc).__name__}", upstream=UPSTREAM)
