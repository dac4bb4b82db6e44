"""Operations (open): health, readiness, metrics, the OpenAPI document; and credentials (signed): `/usersig`."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.auth import APP, check_signed
from bridge.models import UserSigBody
from bridge.openapi import openapi_document
from bridge.parsing import parse_json, raw_body, validate
from bridge.routes import SIGNED, bridge_of, ok
from connectors.base import Endpoint


async def healthz(request: Request) -> JSONResponse:
    return ok({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    if await bridge_of(request).ready():
        return ok({"status": "ready"})
    return ok({"error": {"code": "database_unavailable", "message": "the database does not answer"}}, 503)


async def metrics(request: Request) -> Response:
    await bridge_of(request).refresh_metrics()
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> JSONResponse:
    return ok(openapi_document(request.app.state.endpoints, request.app.state.connector_classes))


async def usersig(request: Request) -> JSONResponse:
    body = await raw_body(request)
    scope = await check_signed(request, body, app_allowed=True)
    data = validate(UserSigBody, parse_json(body))
    # A customer backend's UserSig is for a customer: 400 reserved_user_id for an agent's account.
    issued = bridge_of(request).issue_usersig(data.userId, data.expireSeconds, customers_only=scope == APP)
    answer = {"userId": issued.user_id, "userSig": issued.user_sig, "expiresAt": issued.expires_at}
    return ok({**answer, "sdkAppId": issued.sdk_app_id})


endpoints = [
    Endpoint("POST", "/usersig", usersig, "Issue an IM UserSig", UserSigBody, SIGNED),
    Endpoint("GET", "/healthz", healthz, "Liveness"),
    Endpoint("GET", "/readyz", readyz, "Readiness: the database answers"),
    Endpoint("GET", "/metrics", metrics, "Prometheus metrics"),
    Endpoint("GET", "/openapi.json", openapi, "This document"),
]
