"""The IM emulator's app: `create_app`, the REST access layer, the control routes and injected faults.

`POST /v4/<service>/<command>?sdkappid=&identifier=&usersig=&random=&contenttype=json`, answered as Tencent answers:
HTTP 200 with `{"ActionStatus", "ErrorInfo", "ErrorCode", ...}` even for errors. The access layer checks, in order:
POST, `sdkappid`, `identifier` and `usersig` present, the per-API rate limit, the UserSig (recomputed, see
usersig.py), that the identifier is the app admin, a known service and command (accounts.py, groups.py,
messages.py), and a JSON-object body.

State lives in `app.state.im` (an `IMState` of plain dicts and lists, see core.py). Control routes under
`/_emulator/` are never faulted; only the client routes (client.py) are authenticated:

| route | what |
| --- | --- |
| `GET /_emulator/state` | JSON dump of accounts, groups, messages, notifications, callbacks, request log |
| `POST /_emulator/reset` | back to the state at start (admin account only, faults cleared, config as created) |
| `POST /_emulator/config` | `{"callback_url", "callback_token"}`: where `Group.CallbackAfterSendMsg` goes |
| `POST /_emulator/send`, `POST /_emulator/client/...` | a member's message; the client SDK's calls (client.py) |
| `GET/POST /_emulator/faults` | fault injection (bridge.sandbox.faults) |
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.faults import CONTROL_PREFIX, FaultMiddleware, Faults, fault_routes
from bridge.sandbox.im.accounts import Accounts
from bridge.sandbox.im.callbacks import Callbacks
from bridge.sandbox.im.client import Client
from bridge.sandbox.im.core import (
    ERRORS,
    GROUP_SVC,
    LOGIN_SVC,
    PROFILE_SVC,
    ApiError,
    Command,
    IMState,
    answer,
    json_object,
    take_slot,
)
from bridge.sandbox.im.groups import Groups
from bridge.sandbox.im.messages import Messages
from bridge.sandbox.im.usersig import verify_usersig
from bridge.sandbox.pretty import ReadableJSON

INTERNAL_ERROR = {GROUP_SVC: 10002, LOGIN_SVC: 70500, PROFILE_SVC: 40006}


class Emulator:
    """The access layer and control routes; the commands live with their resources."""

    def __init__(
        self,
        sdkappid: int,
        secret_key: str,
        admin: str,
        rate_limit: int,
        callback_url: str | None,
        callback_token: str | None,
    ):
        self.sdkappid, self.secret_key, self.admin, self.rate_limit = sdkappid, secret_key, admin, rate_limit
        self.initial_config = (callback_url, callback_token)
        self.state = IMState()
        self.faults = Faults()
        self.windows: dict[str, deque[float]] = {}
        self.accounts = Accounts(self.state)
        self.groups = Groups(self.state, admin)
        self.callbacks = Callbacks(self.state, sdkappid)
        self.messages = Messages(self.state, admin, self.callbacks)
        self.client = Client(self.state, sdkappid, secret_key, self.groups, self.messages)
        self.commands: dict[tuple[str, str], Command] = {
            **self.accounts.commands(),
            **self.groups.commands(),
            **self.messages.commands(),
        }
        self.reset()

    def reset(self) -> None:
        self.state.clear()  # in place: others hold `app.state.im`
        self.state.callback_url, self.state.callback_token = self.initial_config
        self.accounts.import_account(self.admin)
        self.faults.update({})
        self.windows.clear()
        self.messages.reset()

    # --- the access layer ---------------------------------------------------------------------------------------

    async def rest(self, request: Request) -> Response:
        service, command = request.path_params["service"], request.path_params["command"]
        entry: dict[str, Any] = {
            "Time": time.time(),
            "Method": request.method,
            "Service": service,
            "Command": command,
            "Query": {k: v for k, v in request.query_params.items() if k != "usersig"},
            "Body": None,
        }
        self.state.requests.append(entry)
        try:
            body = await self.check_access(request, service, command, entry)
            extra = self.commands[(service, command)](body)
        except ApiError as err:
            entry["ErrorCode"] = err.code
            return answer(code=err.code, info=err.info)
        entry["ErrorCode"] = 0
        return answer(extra)

    async def check_access(self, request: Request, service: str, command: str, entry: dict[str, Any]) -> dict[str, Any]:
        query = request.query_params  # names are case sensitive: `SdkAppId` is not `sdkappid`
        if request.method != "POST":
            raise ApiError(60002, "HTTP parse error: the REST API accepts POST only")
        if not query.get("sdkappid"):
            raise ApiError(60012)
        if query["sdkappid"] != str(self.sdkappid):
            raise ApiError(60006)
        identifier, usersig = query.get("identifier"), query.get("usersig")
        if not identifier or not usersig:
            raise ApiError(60004)
        # A sliding one-second window per API, as Tencent counts "calls per second per API".
        if not take_slot(self.windows, f"{service}/{command}", self.rate_limit, time.monotonic()):
            raise ApiError(60007)
        sig_error = verify_usersig(usersig, identifier=identifier, sdkappid=self.sdkappid, key=self.secret_key)
        if sig_error:
            raise ApiError(sig_error)
        if identifier != self.admin:
            raise ApiError(60010)
        if (service, command) not in self.commands:
            # The group service documents 10003 for an unknown command word; elsewhere the URL names nothing.
            raise ApiError(10003 if service == GROUP_SVC else 60009)
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise ApiError(60003) from None
        if not isinstance(body, dict):
            raise ApiError(60003, "HTTP request JSON parse error: the body must be a JSON object")
        entry["Body"] = body
        return body

    # --- faults and control routes ------------------------------------------------------------------------------

    def injected_error(self, request: Request, faults: Faults) -> Response:
        if faults.outage:
            # An outage looks like a gateway in trouble: a bare status and an HTML page, no JSON.
            return Response(
                f"<html><body><h1>{faults.status} Service Unavailable</h1></body></html>",
                status_code=faults.status,
                media_type="text/html",
            )
        parts = request.url.path.split("/")
        service = parts[2] if len(parts) > 2 else ""
        code = faults.code or INTERNAL_ERROR.get(service, 10002)
        self.state.requests.append(
            {
                "Time": time.time(),
                "Method": request.method,
                "Service": service,
                "Command": parts[3] if len(parts) > 3 else "",
                "Query": {},
                "Body": None,
                "ErrorCode": code,
                "Injected": True,
            }
        )
        return answer(code=code, info=ERRORS.get(code, "injected error"))

    async def control_state(self, request: Request) -> Response:
        return ReadableJSON(self.state.dump())

    async def control_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def control_config(self, request: Request) -> Response:
        data = await json_object(request)
        if "callback_url" in data:
            self.state.callback_url = data["callback_url"] or None
        if "callback_token" in data:
            self.state.callback_token = data["callback_token"] or None
        return JSONResponse(self.state.dump()["config"])


def create_app(
    sdkappid: int,
    secret_key: str,
    admin: str = "administrator",
    rate_limit: int = 200,
    callback_url: str | None = None,
    callback_token: str | None = None,
) -> Starlette:
    """The IM emulator as an ASGI app; its state is `app.state.im`."""
    emulator = Emulator(sdkappid, secret_key, admin, rate_limit, callback_url, callback_token)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await emulator.callbacks.drain()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]  # anything but POST gets Tencent's answer, not a 405
    routes = [
        Route("/v4/{service}/{command}", emulator.rest, methods=methods),
        Route(CONTROL_PREFIX + "state", emulator.control_state, methods=["GET"]),
        Route(CONTROL_PREFIX + "reset", emulator.control_reset, methods=["POST"]),
        Route(CONTROL_PREFIX + "config", emulator.control_config, methods=["POST"]),
        *emulator.client.routes(),
        *fault_routes(emulator.faults),
    ]
    middleware = [
        # Web clients reach IM from their own pages' origins (the sandbox's customer page does too).
        Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST"], allow_headers=["Content-Type"]),
        Middleware(FaultMiddleware, faults=emulator.faults, error=emulator.injected_error),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.im = emulator.state
    return app
