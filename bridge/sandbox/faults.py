"""Fault injection shared by the emulators: error rate, latency, outage, set over HTTP by tests.

`POST /_emulator/faults` with `{"error_rate": 0.3, "latency": 0.05, "outage": false, "status": 503,
"paths": ["/v4/group_open_http_svc/"], "count": 2, "code": 10006}` replaces the faults in force (every field
optional; `{}` clears all). `paths` limits the faults to request paths that start with one of the prefixes; `count`
limits how many injected errors are served before the faults clear themselves; `code` is the error code an emulator
with codes answers (IM: its `ErrorCode`). Each emulator decides what an injected error looks like (IM: HTTP 200 with
an ErrorCode; helpdesks: an HTTP 5xx), through the `error` callback.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

CONTROL_PREFIX = "/_emulator/"


@dataclass
class Faults:
    error_rate: float = 0.0
    latency: float = 0.0
    outage: bool = False
    status: int = 503
    paths: list[str] = field(default_factory=list)
    count: int | None = None
    code: int | None = None  # the error code an emulator with codes (IM) answers; its internal error by default
    injected: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def update(self, data: dict[str, Any]) -> None:
        """Replace the faults with `data`: what it leaves out is off (so `{}` clears everything)."""
        self.error_rate = float(data.get("error_rate", 0.0))
        self.latency = float(data.get("latency", 0.0))
        self.outage = bool(data.get("outage", False))
        self.status = int(data.get("status", 503))
        self.paths = list(data.get("paths", []))
        self.count = data.get("count")
        self.code = data.get("code")
        self.injected = 0
        if "seed" in data:
            self.rng.seed(data["seed"])

    def applies(self, path: str) -> bool:
        return not path.startswith(CONTROL_PREFIX) and (not self.paths or path.startswith(tuple(self.paths)))

    def should_fail(self) -> bool:
        if self.count is not None and self.injected >= self.count:
            return False
        fail = self.outage or (self.error_rate > 0 and self.rng.random() < self.error_rate)
        if fail:
            self.injected += 1
        return fail

    def snapshot(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "latency": self.latency,
            "outage": self.outage,
            "status": self.status,
            "paths": self.paths,
            "count": self.count,
            "code": self.code,
            "injected": self.injected,
        }


ErrorFactory = Callable[[Request, Faults], Awaitable[Response] | Response]


class FaultMiddleware:
    """Delays or fails requests as `faults` says; control routes under /_emulator/ are never faulted."""

    def __init__(self, app: ASGIApp, faults: Faults, error: ErrorFactory):
        self.app = app
        self.faults = faults
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.faults.applies(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        if self.faults.should_fail():
            response = self.error(Request(scope, receive), self.faults)
            if asyncio.iscoroutine(response):
                response = await response
            await response(scope, receive, send)  # type: ignore[operator]
            return
        await self.app(scope, receive, send)


def fault_routes(faults: Faults) -> list[Route]:
    async def set_faults(request: Request) -> Response:
        faults.update(await request.json() if await request.body() else {})
        return JSONResponse(faults.snapshot())

    async def get_faults(request: Request) -> Response:
        return JSONResponse(faults.snapshot())

    return [
        Route(CONTROL_PREFIX + "faults", set_faults, methods=["POST"]),
        Route(CONTROL_PREFIX + "faults", get_faults, methods=["GET"]),
    ]
