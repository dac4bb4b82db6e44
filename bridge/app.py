"""create_app(settings) -> Starlette. The lifespan opens storage, IM and the connectors, and runs the job worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from sqlalchemy.exc import DataError, DBAPIError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.auth import KeepAnswers
from bridge.config import Settings
from bridge.console import routes as console
from bridge.console.service import Console
from bridge.errors import BridgeError
from bridge.im import IMClient
from bridge.metrics import Metrics, MetricsMiddleware
from bridge.migrations import prepare_database
from bridge.routes import groups, ops, tickets, webhooks
from bridge.service import Bridge
from bridge.store import Database
from connectors.base import Connector, endpoints_of, load_connector_classes

log = logging.getLogger("bridge")

HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 401: "unauthenticated"}
PURGE_EVERY = 600.0


class JSONCORSMiddleware(CORSMiddleware):
    """Starlette's CORS handling, with a refused preflight in the bridge's JSON error shape instead of plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        reason = bytes(response.body).decode()  # "Disallowed CORS origin, headers"
        message = f"{reason}: this origin, method or header is not allowed (BRIDGE_ALLOWED_ORIGINS)"
        cors_headers = {k: v for k, v in response.headers.items() if k.lower().startswith(("access-control", "vary"))}
        return JSONResponse({"error": {"code": "cors_refused", "message": message}}, 400, headers=cors_headers)


def build_connectors(settings: Settings, limiter: anyio.CapacityLimiter) -> dict[str, Connector]:
    """The enabled connectors, each made with its own settings. Each spaces its calls to its own budget."""
    classes = load_connector_classes()
    return {name: classes[name](settings.connectors[name], limiter) for name in settings.enabled_connectors}


def loggable(text: str) -> str:
    """`text` with its unprintable characters escaped: a request path (percent-decoded) must not write control
    characters, forged line breaks or terminal escapes into the log."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


async def bridge_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BridgeError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = {
        404: f"there is no {request.url.path} here",
        405: f"{request.method} is not allowed on {request.url.path}",
    }
    body = {"error": {"code": code, "message": message.get(exc.status_code, str(exc.detail))}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database error on %s %s: %s", loggable(request.method), loggable(request.url.path), type(exc).__name__)
    message = "the bridge's database does not answer; nothing was done, try again shortly"
    body = {"error": {"code": "database_unavailable", "message": message}}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


async def client_disconnected(request: Request, exc: Exception) -> JSONResponse:
    # Common on mobile networks and harmless: one line, not an error with a traceback. Nobody reads the answer.
    log.info("client disconnected mid-body: %s %s", loggable(request.method), loggable(request.url.path))
    body = {"error": {"code": "client_disconnected", "message": "the client closed the connection mid-request"}}
    return JSONResponse(body, status_code=400)


async def database_refused(request: Request, exc: Exception) -> JSONResponse:
    # A value the database cannot hold (NUL in text, ...) that slipped past validation: the request is at fault,
    # and retrying it, as a 503 would invite, fails the same way.
    log.warning("database refused a value on %s %s", loggable(request.method), loggable(request.url.path))
    message = "a value of this request cannot be stored or looked up (control characters?); correct it"
    return JSONResponse({"error": {"code": "invalid_value", "message": message}}, status_code=400)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s: %s", loggable(request.method), loggable(request.url.path), type(exc).__name__)
    body = {"error": {"code": "internal_error", "message": "the bridge failed unexpectedly; the error was logged"}}
    return JSONResponse(body, status_code=500)


def create_app(settings: Settings, *, run_worker: bool = True, prepare_schema: bool = True) -> Starlette:
    """The service. `run_worker=False` leaves queued jobs for another process (and for crash tests);
    `prepare_schema=False` when the caller has already run `prepare_database` (the `serve` command does, to stop
    with a message before the server starts)."""
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.bridge_insecure_no_auth:
            log.warning(
                "BRIDGE_INSECURE_NO_AUTH=1: signed calls and UserSigs are NOT checked; never use this in production"
            )
        if settings.im_callback_token is None:
            log.warning(
                "IM_CALLBACK_TOKEN is not set: IM callbacks (/callbacks/im) are refused, "
                "so chat messages do not reach tickets"
            )
        if prepare_schema:
            await anyio.to_thread.run_sync(prepare_database, settings.bridge_database_url)
        db = Database(settings.bridge_database_url)
        im = IMClient.from_settings(settings)
        connectors = build_connectors(settings, anyio.CapacityLimiter(settings.bridge_helpdesk_threads))
        for connector in connectors.values():
            await connector.start()
        bridge = Bridge(settings, db, im, connectors, metrics)
        app.state.bridge = bridge
        app.state.console = Console(bridge)
        tasks = [asyncio.create_task(_purge(db))]
        if run_worker:
            tasks.append(asyncio.create_task(bridge.queue.work()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for connector in connectors.values():
                await connector.close()
            await im.close()
            await db.close()

    middleware = [Middleware(MetricsMiddleware, metrics=metrics), Middleware(KeepAnswers)]
    if settings.bridge_allowed_origins:
        middleware.append(
            Middleware(
                JSONCORSMiddleware,
                allow_origins=settings.bridge_allowed_origins,
                allow_methods=["GET", "POST"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "Idempotency-Key",
                    "X-Bridge-Timestamp",
                    "X-Bridge-Signature",
                ],
            )
        )
    # Installed connectors add their routes (webhooks, console entries) whether enabled or not: one not configured
    # answers for itself (a 401 or 404 saying what is missing) rather than a bare 404.
    classes = tuple(cls for name, cls in load_connector_classes().items() if name in settings.connectors)
    endpoints = (
        *ops.endpoints,
        *groups.endpoints,
        *tickets.endpoints,
        *webhooks.endpoints,
        *console.endpoints,
        *(e for cls in classes for e in endpoints_of(cls)),
    )
    app = Starlette(
        routes=[*(Route(e.path, e.handler, methods=[e.method]) for e in endpoints), console.static],
        middleware=middleware,
        exception_handlers={
            BridgeError: bridge_error,
            HTTPException: http_error,
            ClientDisconnect: client_disconnected,
            DataError: database_refused,
            DBAPIError: database_unavailable,
            Exception: internal_error,
        },
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.settings = settings
    app.state.connector_classes = classes
    app.state.endpoints = endpoints  # the routes, as the OpenAPI document describes them
    return app


async def _purge(db: Database) -> None:
    while True:
        await asyncio.sleep(PURGE_EVERY)
        with contextlib.suppress(Exception):
            await db.purge()
