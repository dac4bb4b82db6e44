"""The Zendesk emulator's app: `create_app`, API authentication (an agent's or admin's email/token over Basic auth),
the account's rate limits, the request log, the control routes and injected faults.

State lives in plain dicts at `app.state.zd` (core.new_state). Control routes under `/_emulator/` (no auth):

| route | what |
| --- | --- |
| `GET /_emulator/state` | JSON dump of the account: users, tickets, comments, webhooks, triggers, deliveries, ... |
| `POST /_emulator/reset` | back to the account at start (faults cleared) |
| `POST /_emulator/rate_limit` | `{"count": n, "retry_after": s}` or `{"per_minute": n, "window"?: s}` (below) |
| `GET/POST /_emulator/update_limits` | the Update Ticket endpoint's own limits (limits.py) |
| `/_emulator/apps/...` | the installed app (apps.py) |
| `GET/POST /_emulator/faults` | fault injection (bridge.sandbox.faults) |

`rate_limit` takes `{"count": n, "retry_after": s}` (the next n calls answer 429) or `{"per_minute": n}` (the account
budget Zendesk enforces: more than n calls in a sliding minute answer 429 with the seconds until a call leaves the
window; `"window"` shortens the minute for tests). Every API answer carries `X-Rate-Limit` and
`X-Rate-Limit-Remaining` while a budget is set.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import time
from collections import deque
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.faults import CONTROL_PREFIX, FaultMiddleware, Faults, fault_routes
from bridge.sandbox.pretty import ReadableJSON
from bridge.sandbox.zendesk.apps import ZendeskApps
from bridge.sandbox.zendesk.core import ApiError, Handler, find_user_by_email, new_state, now_iso
from bridge.sandbox.zendesk.deleted import DeletedTickets
from bridge.sandbox.zendesk.events import TicketEvents
from bridge.sandbox.zendesk.limits import UpdateLimits
from bridge.sandbox.zendesk.tickets import Tickets
from bridge.sandbox.zendesk.triggers import Triggers
from bridge.sandbox.zendesk.uploads import Uploads
from bridge.sandbox.zendesk.users import Users
from bridge.sandbox.zendesk.webhooks import Webhooks


def _too_many(retry_after: Any, per_minute: int = 0) -> ApiError:
    """Zendesk's 429: a plain-text body, Retry-After in whole seconds."""
    headers = {"Retry-After": str(retry_after)}
    if per_minute:
        headers.update({"X-Rate-Limit": str(per_minute), "X-Rate-Limit-Remaining": "0"})
    return ApiError(429, {}, headers=headers, text="Number of allowed API requests per minute exceeded")


class ZendeskEmulator:
    """The plumbing every API call goes through, and the resources; `state` is the store at `app.state.zd`."""

    def __init__(self, email: str, api_token: str, subdomain: str, update_window_scale: float = 1.0):
        self.email = email
        self.api_token = api_token
        self.subdomain = subdomain
        self.state = new_state(email, subdomain)
        self.faults = Faults()
        self.calls: deque[float] = deque()  # when the calls of the current rate-limit window came
        webhooks = Webhooks(self.state)
        triggers = Triggers(self.state, subdomain, webhooks)
        events = TicketEvents(self.state, webhooks)
        self.update_limits = UpdateLimits(update_window_scale)
        self.resources = (
            Tickets(self.state, subdomain, triggers, events, self.update_limits),
            DeletedTickets(self.state, events),
            Uploads(self.state, subdomain),
            Users(self.state),
            webhooks,
            triggers,
        )
        self.apps = ZendeskApps(self.state)  # the installed app with signed URLs (the agent console)

    def reset(self) -> None:
        fresh = new_state(self.email, self.subdomain)
        self.state.clear()
        self.state.update(fresh)
        self.faults.update({})
        self.calls.clear()
        self.update_limits.reset()

    def _authenticate(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(encoded).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            login, _, kind = user.rpartition("/")
            if kind == "token" and password and hmac.compare_digest(password, self.api_token):
                account = find_user_by_email(self.state, login)
                if account is not None and account["role"] in ("admin", "agent"):
                    return account
        raise ApiError(401, {"error": "Couldn't authenticate you"})

    def _rate_limited(self) -> ApiError | None:
        limit = self.state["rate_limit"]
        if limit["count"] > 0:
            limit["count"] -= 1
            return _too_many(limit.get("retry_after", 1))
        if limit["per_minute"]:
            moment, window = time.monotonic(), limit["window"]
            while self.calls and self.calls[0] <= moment - window:
                self.calls.popleft()
            if len(self.calls) >= limit["per_minute"]:
                return _too_many(max(1, math.ceil(self.calls[0] + window - moment)), limit["per_minute"])
            self.calls.append(moment)
        return None

    def _budget_headers(self) -> dict[str, str]:
        per_minute = self.state["rate_limit"]["per_minute"]
        if not per_minute:
            return {}
        return {"X-Rate-Limit": str(per_minute), "X-Rate-Limit-Remaining": str(max(0, per_minute - len(self.calls)))}

    def endpoint(self, handler: Handler, anonymous: bool = False) -> Any:
        """Wrap an API handler: rate limit, authenticate, log, render ApiError.

        With `anonymous`, a call without an Authorization header reaches the handler with actor None (Zendesk's
        anonymous requests); credentials that are present must still be right."""

        async def run(request: Request) -> Response:
            entry: dict[str, Any] = {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "at": now_iso(),
                "idempotency_key": request.headers.get("idempotency-key"),
            }
            self.state["requests"].append(entry)
            try:
                limited = self._rate_limited()
                if limited is not None:
                    raise limited
                actor = None if anonymous and "authorization" not in request.headers else self._authenticate(request)
                entry["user_id"] = actor["id"] if actor else None
                response: Response = await handler(request, actor)
            except ApiError as exc:
                response = exc.response()
            response.headers.update(self._budget_headers())
            entry["status"] = response.status_code
            return response

        return run

    # ----------------------------------------------------------------- control
    async def control_state(self, request: Request) -> Response:
        return ReadableJSON(self.state)

    async def control_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def control_rate_limit(self, request: Request) -> Response:
        data = json.loads(await request.body() or b"{}")
        self.state["rate_limit"] = {
            "count": int(data.get("count", 0 if "per_minute" in data else 1)),
            "retry_after": data.get("retry_after", 1),
            "per_minute": int(data.get("per_minute", 0)),
            "window": float(data.get("window", 60.0)),
        }
        self.calls.clear()
        return JSONResponse(self.state["rate_limit"])

    async def control_update_limits(self, request: Request) -> Response:
        if request.method == "POST":
            data = json.loads(await request.body() or b"{}")
            return JSONResponse(self.update_limits.configure(data if isinstance(data, dict) else {}))
        return JSONResponse(self.update_limits.describe())

    async def fault_error(self, request: Request, faults: Faults) -> Response:
        if faults.outage:
            return Response(
                "<html><body><h1>503 Service Unavailable</h1></body></html>",
                status_code=503,
                media_type="text/html",
            )
        status = int(faults.status)
        titles = {
            500: "InternalServerError",
            502: "BadGateway",
            503: "ServiceUnavailable",
            504: "GatewayTimeout",
        }
        return JSONResponse(
            {"error": titles.get(status, "InjectedError"), "description": f"Injected fault: HTTP {status}"},
            status_code=status,
        )

    def routes(self) -> list[Route]:
        return [
            *(route for resource in self.resources for route in resource.routes(self.endpoint)),
            Route(CONTROL_PREFIX + "state", self.control_state, methods=["GET"]),
            Route(CONTROL_PREFIX + "reset", self.control_reset, methods=["POST"]),
            Route(CONTROL_PREFIX + "rate_limit", self.control_rate_limit, methods=["POST"]),
            Route(CONTROL_PREFIX + "update_limits", self.control_update_limits, methods=["GET", "POST"]),
            *self.apps.routes(self.endpoint),
            *fault_routes(self.faults),
        ]


def create_app(
    email: str = "admin@example.com",
    api_token: str = "sandbox-zendesk-token",
    subdomain: str = "acme",
    update_window_scale: float = 1.0,
) -> Starlette:
    """The emulator as an ASGI app; `app.state.zd` is the state. `update_window_scale` shortens the windows of the
    Update Ticket limits (10 minutes per user per ticket, a minute per account) for tests."""
    emulator = ZendeskEmulator(email, api_token, subdomain, update_window_scale)
    app = Starlette(routes=emulator.routes())
    app.add_middleware(FaultMiddleware, faults=emulator.faults, error=emulator.fault_error)
    app.state.zd = emulator.state
    return app
