"""Thin HTTP handlers: parse (bridge.parsing), authenticate (bridge.auth), call one service method, answer.

Each module lists its `endpoints` (connectors.base.Endpoint): the app's routes and the OpenAPI document are both
made from them, so the two cannot drift apart."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from bridge.service import Bridge


def bridge_of(request: Request) -> Bridge:
    return request.app.state.bridge  # type: ignore[no-any-return]


def ok(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


IM_OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
# OpenAPI security schemes (bridge/openapi.py), for an Endpoint's `security`.
SIGNED = ("signedCall",)
SIGNED_OR_USER = ("signedCall", "userSig")
CONSOLE = ("consoleSession",)
