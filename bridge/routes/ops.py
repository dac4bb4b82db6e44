"""Operations (open): health, readiness, metrics, the OpenAPI document; and credentials (signed): `/usersig`."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge import auth
from bridge.errors import Forbidden
from bridge.models import UserSigBody
from bridge.openapi import openapi_document
from bridge.routes import APP, bridge_of, check_signed, ok, parse_json, raw_body, validate


async def healthz(request: Request) -> JSONResponse:
    return ok({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    if await bridge_of(request).db.ping():
        return ok({"status": "ready"})
    return ok({"error": {"code": "database_unavailable", "message": "the database does not answer"}}, 503)


async def metrics(request: Request) -> Response:
    await request.app.state.metrics.refresh(bridge_of(request))
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> JSONResponse:
    return ok(openapi_document(request.app.state.connector_classes))


async def usersig(request: Request) -> JSONResponse:
    body = await raw_body(request)
    scope = await check_signed(request, body, app_allowed=True)
    data = validate(UserSigBody, parse_json(body))
    bridge = bridge_of(request)
    settings = bridge.settings
    if data.userId == settings.im_admin_userid:
        # The admin's UserSig is every REST power over the whole IM application: never handed out.
        raise Forbidden("no UserSig is issued for IM_ADMIN_USERID, whoever asks")
    if scope == APP:
        bridge.check_customer(data.userId)  # a customer backend's UserSig is for a customer: 400 reserved_user_id
    sig = auth.gen_usersig(
        settings.im_sdkappid, settings.im_secret_key.get_secret_value(), data.userId, data.expireSeconds
    )
    return ok(
        {
            "userId": data.userId,
            "userSig": sig,
            "expiresAt": int(time.time()) + data.expireSeconds,
            "sdkAppId": settings.im_sdkappid,
        }
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/usersig", usersig, methods=["POST"]),
]
