"""The Salesforce emulator's app: `create_app`, the REST API's entry (the session, the daily API limit, the
version and the resource a path names), the request log, the control routes and injected faults.

REST lives under `/services/data/v<version>/`: `sobjects/...` (sobjects.py), `query` and `queryAll` (query.py) and
`limits`; logins are in auth.py. An unknown or expired session is 401 `INVALID_SESSION_ID`; over `api_limit`
requests, 403 `REQUEST_LIMIT_EXCEEDED` (Salesforce's daily limit answer).

Everything lives in `app.state.sf`, a plain dict (see `core.fresh_state`). Nothing secret is written to the request
log. Control routes under `/_emulator/` (unauthenticated):

| route | what |
| --- | --- |
| `GET /_emulator/state` | JSON dump of the org (session tokens left out) |
| `POST /_emulator/reset` | back to the org at start (faults cleared) |
| `POST /_emulator/expire_sessions` | every session so far answers 401 from now on |
| `POST /_emulator/limits` | `{"api_limit": 5, "api_usage": 0}` |
| `POST /_emulator/sessions` | `{"userId": "005..."}`: a session of that user, answered as an OAuth token (below) |
| `GET/POST /_emulator/faults` | fault injection (bridge.sandbox.faults) |

`/_emulator/sessions` stands for an agent logging in: what that session writes through the REST API, Salesforce
records as the agent's (a CaseComment's `CreatedById` is the agent), as when the agent writes in Salesforce. Answer:
`{"access_token", "instance_url", "id", "token_type", ...}` like `/services/oauth2/token`; an unknown or inactive
user is 400 `invalid_grant`.

The REST API's resource list (`GET /services/data/v<version>/`) names the session's user in `identity` (its identity
URL, ending in the user's 18-character Id), as Salesforce's "List Available REST Resources" shows.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.sandbox.faults import CONTROL_PREFIX, FaultMiddleware, Faults, fault_routes
from bridge.sandbox.pretty import ReadableJSON
from bridge.sandbox.salesforce.auth import oauth_token, soap_login, token_response
from bridge.sandbox.salesforce.core import ApiError, canonical_id, fresh_state, identity_url, not_found, soap_fault
from bridge.sandbox.salesforce.query import run_query
from bridge.sandbox.salesforce.sobjects import sobject_routes


def _session_user(request: Request) -> str:
    state = request.app.state.sf
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    session = state["sessions"].get(token.strip()) if scheme.lower() in ("bearer", "oauth") else None
    if session is None or session["expired"]:
        raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
    return str(session["user_id"])


def _count_api_call(request: Request) -> dict[str, str]:
    state = request.app.state.sf
    limit = state["api_limit"]
    if limit is not None and state["api_usage"] >= limit:
        raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    state["api_usage"] += 1
    return {"Sforce-Limit-Info": f"api-usage={state['api_usage']}/{limit if limit is not None else 15000}"}


async def rest_api(request: Request) -> Response:
    version = request.path_params["version"]
    rest = [part for part in request.path_params.get("rest", "").split("/") if part]
    try:
        if not re.fullmatch(r"\d{2}\.0", version) or float(version) < 20:
            raise not_found()
        user_id = _session_user(request)
        headers = _count_api_call(request)
        response = await _dispatch(request, user_id, version, rest)
    except ApiError as exc:
        return exc.response()
    response.headers.update(headers)
    return response


async def _dispatch(request: Request, user_id: str, version: str, rest: list[str]) -> Response:
    state = request.app.state.sf
    if not rest:
        return JSONResponse(
            {
                "sobjects": f"/services/data/v{version}/sobjects",
                "query": f"/services/data/v{version}/query",
                "limits": f"/services/data/v{version}/limits",
                "identity": identity_url(request, user_id),
            }
        )
    head, tail = rest[0], rest[1:]
    if head in ("query", "queryAll") and not tail and request.method == "GET":
        return JSONResponse(run_query(request, version, include_deleted=head == "queryAll"))
    if head == "limits" and not tail:
        limit = state["api_limit"] if state["api_limit"] is not None else 15000
        return JSONResponse({"DailyApiRequests": {"Max": limit, "Remaining": max(limit - state["api_usage"], 0)}})
    if head == "sobjects" and tail:
        return await sobject_routes(request, user_id, version, tail[0], tail[1:])
    raise not_found()


async def data_versions(request: Request) -> Response:
    base = "/services/data"
    return JSONResponse([{"label": "Emulated", "url": f"{base}/v{v}.0", "version": f"{v}.0"} for v in range(59, 63)])


class RequestLog:
    """Records method, path, status and kind of every non-control request (never a body or a header)."""

    def __init__(self, app: ASGIApp, state_of: Any):
        self.app = app
        self.state_of = state_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        status = {"code": 0}

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, record_status)
        path = scope["path"]
        kind = (
            "soap_login"
            if path.startswith("/services/Soap/u/")
            else "oauth_token"
            if path == "/services/oauth2/token"
            else "rest"
        )
        self.state_of()["requests"].append(
            {
                "method": scope["method"],
                "path": path,
                "status": status["code"],
                "kind": kind,
                "at": time.time(),
            }
        )


_FAULT_CODES = {
    400: "MALFORMED_QUERY",
    401: "INVALID_SESSION_ID",
    403: "REQUEST_LIMIT_EXCEEDED",
    404: "NOT_FOUND",
    409: "UNABLE_TO_LOCK_ROW",
    429: "REQUEST_LIMIT_EXCEEDED",
    500: "UNKNOWN_EXCEPTION",
    502: "SERVER_UNAVAILABLE",
    503: "SERVER_UNAVAILABLE",
    504: "SERVER_UNAVAILABLE",
}
_FAULT_MESSAGES = {
    "INVALID_SESSION_ID": "Session expired or invalid",
    "REQUEST_LIMIT_EXCEEDED": "TotalRequests Limit exceeded.",
    "UNKNOWN_EXCEPTION": "An unexpected error occurred. Please include this ErrorId if you contact "
    "support: 1234567890-12345 (-987654321)",
    "SERVER_UNAVAILABLE": "Server temporarily unavailable, please retry.",
    "MALFORMED_QUERY": "Injected fault: malformed request",
    "NOT_FOUND": "The requested resource does not exist",
    "UNABLE_TO_LOCK_ROW": "unable to obtain exclusive access to this record",
}


def _fault_error(request: Request, faults: Faults) -> Response:
    status = 503 if faults.outage else int(faults.status)
    code = _FAULT_CODES.get(status, "UNKNOWN_EXCEPTION")
    message = _FAULT_MESSAGES.get(code, "Injected fault")
    headers = {"Retry-After": "1"} if status in (429, 503) else {}
    if request.url.path.startswith("/services/Soap/"):
        response = soap_fault(code, message, status=status)
        response.headers.update(headers)
        return response
    if request.url.path == "/services/oauth2/token":
        return JSONResponse(
            {
                "error": "temporarily_unavailable" if status >= 500 else "invalid_request",
                "error_description": message,
            },
            status_code=status,
            headers=headers,
        )
    return JSONResponse([{"message": message, "errorCode": code, "fields": []}], status_code=status, headers=headers)


def _public_state(state: dict[str, Any]) -> dict[str, Any]:
    hidden = {"counter", "sessions"}
    out = {k: v for k, v in state.items() if k not in hidden}
    out["sessions"] = [
        {"flow": s["flow"], "user_id": s["user_id"], "expired": s["expired"]} for s in state["sessions"].values()
    ]  # tokens stay out of the snapshot
    return out


def create_app(
    username: str = "agent@example.com",
    password: str = "emulator-password",
    security_token: str = "emulator-token",
    consumer_key: str | None = None,
    consumer_secret: str | None = None,
    jwt_public_key_pem: str | bytes | None = None,
) -> Starlette:
    """The emulator app. `app.state.sf` holds the org (see core.fresh_state); the credentials are the ones it
    accepts (auth.py)."""
    faults = Faults()

    async def get_state(request: Request) -> Response:
        return ReadableJSON(_public_state(request.app.state.sf))

    async def reset(request: Request) -> Response:
        request.app.state.sf = fresh_state(username)
        faults.update({})
        return JSONResponse({"ok": True})

    async def expire_sessions(request: Request) -> Response:
        sessions = request.app.state.sf["sessions"]
        for session in sessions.values():
            session["expired"] = True
        return JSONResponse({"expired": len(sessions)})

    async def limits(request: Request) -> Response:
        data = await request.json() if await request.body() else {}
        state = request.app.state.sf
        for key in ("api_limit", "api_usage"):
            if key in data:
                state[key] = data[key]
        return JSONResponse({"api_limit": state["api_limit"], "api_usage": state["api_usage"]})

    async def user_session(request: Request) -> Response:
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError:
            data = None
        user_id = canonical_id(str(data.get("userId") or "")) if isinstance(data, dict) else None
        user = request.app.state.sf["users"].get(user_id or "")
        if user is None or not user["IsActive"]:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "no active user has this userId"}, status_code=400
            )
        return token_response(request, user["Id"], "emulator")

    routes = [
        Route("/services/Soap/u/{version}", soap_login, methods=["POST"]),
        Route("/services/oauth2/token", oauth_token, methods=["POST"]),
        Route("/services/data", data_versions, methods=["GET"]),
        Route("/services/data/", data_versions, methods=["GET"]),
        Route("/services/data/v{version}", rest_api, methods=["GET"]),
        Route("/services/data/v{version}/{rest:path}", rest_api, methods=["GET", "POST", "PATCH", "DELETE"]),
        Route(CONTROL_PREFIX + "state", get_state, methods=["GET"]),
        Route(CONTROL_PREFIX + "reset", reset, methods=["POST"]),
        Route(CONTROL_PREFIX + "expire_sessions", expire_sessions, methods=["POST"]),
        Route(CONTROL_PREFIX + "limits", limits, methods=["POST"]),
        Route(CONTROL_PREFIX + "sessions", user_session, methods=["POST"]),
        *fault_routes(faults),
    ]
    app = Starlette(routes=routes)
    app.state.sf = fresh_state(username)
    app.state.sf_config = {
        "username": username,
        "password": password,
        "security_token": security_token,
        "consumer_key": consumer_key,
        "consumer_secret": consumer_secret,
        "jwt_public_key_pem": jwt_public_key_pem,
    }
    app.add_middleware(FaultMiddleware, faults=faults, error=_fault_error)
    app.add_middleware(RequestLog, state_of=lambda: app.state.sf)
    return app
