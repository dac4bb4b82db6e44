"""zenpy and requests exceptions -> the bridge's error tree, through one table.

| raised                                   | becomes                                   |
| ---------------------------------------- | ----------------------------------------- |
| RateLimited (HTTP 429)                   | RetriableError(retry_after=Retry-After)   |
| RecordNotFoundException, JSON HTTP 404   | NotFound                                  |
| non-JSON HTTP 404 (not Zendesk talking)  | PermanentError: check ZENDESK_URL         |
| HTTP 400, 401, 403, 413, 422 and other 4xx | PermanentError                          |
| HTTP 409 (concurrent update), 5xx        | RetriableError                            |
| requests Timeout / ConnectionError       | RetriableError                            |
| ZenpyException (an answer zenpy can't read) | PermanentError                         |

Messages carry Zendesk's own `error`/`description` and never a credential: zenpy authenticates with a
header, and no URL or header is copied into a message.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from zenpy.lib.exception import APIException, RecordNotFoundException, ZenpyException

from bridge.api import BridgeError, NotFound, PermanentError, RetriableError
from connectors.zendesk.session import RateLimited

UPSTREAM = "zendesk"

# HTTP status -> (error class, what it means). Statuses not listed: 4xx permanent, 5xx retriable.
STATUS_TABLE: dict[int, tuple[type[BridgeError], str]] = {
    400: (PermanentError, "Zendesk rejected the request"),
    401: (PermanentError, "Zendesk refused the credentials; check ZENDESK_EMAIL and ZENDESK_API_TOKEN"),
    403: (PermanentError, "the Zendesk user of ZENDESK_EMAIL is not allowed to do this"),
    404: (NotFound, "Zendesk has no such record"),
    409: (RetriableError, "Zendesk saw a conflicting update; try again"),
    413: (PermanentError, "the request is too large for Zendesk"),
    422: (PermanentError, "Zendesk refused the record"),
}


def _detail(response: requests.Response | None) -> tuple[str, str | int | None]:
    """Zendesk's own words from an error body, and its error code."""
    if response is None:
        return "", None
    try:
        body: Any = response.json()
    except ValueError:
        return "", response.status_code
    if not isinstance(body, dict):
        return "", response.status_code
    error = body.get("error")
    if isinstance(error, dict):  # {"error": {"title", "message"}}
        return str(error.get("message") or error.get("title") or ""), str(error.get("title") or response.status_code)
    if "errors" in body and isinstance(body["errors"], list) and body["errors"]:  # JSON:API style
        first = body["errors"][0] if isinstance(body["errors"][0], dict) else {}
        return str(first.get("detail") or first.get("title") or ""), str(first.get("code") or response.status_code)
    parts = [str(body.get("description") or "")]
    details = body.get("details")
    if isinstance(details, dict):
        for items in details.values():
            for item in items if isinstance(items, list) else [items]:
                text = item.get("description") if isinstance(item, dict) else item
                if text:
                    parts.append(str(text))
    return ": ".join(p for p in parts if p), str(error) if error else response.status_code


def _by_status(status: int, action: str, response: requests.Response | None) -> BridgeError:
    cls, meaning = STATUS_TABLE.get(
        status, (RetriableError if status >= 500 else PermanentError, f"Zendesk answered HTTP {status}")
    )
    detail, code = _detail(response)
    message = f"{action}: {meaning} (HTTP {status}{', ' + detail if detail else ''})"
    if issubclass(cls, (PermanentError, RetriableError)):
        return cls(message, upstream=UPSTREAM, upstream_code=code if code is not None else status)
    return cls(message)


def translate(exc: BaseException, action: str) -> BridgeError:
    """The bridge error for an exception raised while doing `action` (a phrase: "reading ticket 42")."""
    if isinstance(exc, BridgeError):
        return exc
    if isinstance(exc, RateLimited):
        return RetriableError(
            f"{action}: Zendesk rate limit reached",
            upstream=UPSTREAM,
            upstream_code=429,
            retry_after=exc.retry_after,
        )
    if isinstance(exc, RecordNotFoundException):
        return NotFound(f"{action}: Zendesk has no such record")
    if isinstance(exc, APIException):
        response = getattr(exc, "response", None)
        if response is not None:
            return _by_status(response.status_code, action, response)
        return PermanentError(f"{action}: Zendesk refused: {_safe_json(str(exc))}", upstream=UPSTREAM)
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        if exc.response.status_code == 404:
            # Zendesk's 404 is JSON; a bare 404 is a wrong ZENDESK_URL, never proof that a ticket was deleted.
            return PermanentError(
                f"{action}: ZENDESK_URL answered HTTP 404 without a Zendesk error body; check ZENDESK_URL",
                upstream=UPSTREAM,
                upstream_code=404,
            )
        return _by_status(exc.response.status_code, action, exc.response)
    if isinstance(exc, requests.Timeout):
        return RetriableError(f"{action}: Zendesk did not answer in time", upstream=UPSTREAM, upstream_code="timeout")
    if isinstance(exc, requests.ConnectionError):
        return RetriableError(f"{action}: Zendesk could not be reached", upstream=UPSTREAM, upstream_code="connection")
    if isinstance(exc, requests.RequestException):
        return RetriableError(f"{action}: the call to Zendesk failed ({type(exc).__name__})", upstream=UPSTREAM)
    if isinstance(exc, ZenpyException):
        return PermanentError(f"{action}: unexpected answer from Zendesk ({type(exc).__name__})", upstream=UPSTREAM)
    return PermanentError(f"{action}: {type(exc).__name__}", upstream=UPSTREAM)


def _safe_json(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text[:200]
    if isinstance(body, dict):
        return str(body.get("description") or body.get("error") or "")[:200]
    return text[:200]
