"""The agent console over HTTP: the page, the ways to open a session, and the session's API.

| route | auth | what |
| --- | --- | --- |
| `GET /console/` | open | the page; it waits for a session from the frame around it (the Salesforce utility bar) |
| `POST /console/zendesk` | Zendesk's signed-URL JWT (form field `token`) | the page, with a grant for that agent |
| `POST /console/sessions` | signed call | `{"provider", "userId", "ticketId"}`: a session for that helpdesk user |
| `POST /console/api/sessions/zendesk` | Bearer grant | `{"ticketId"}`: the session for the ticket beside the app |
| `POST /console/api/session` | Bearer session | the same session, renewed |
| `GET /console/api/groups/{groupId}` | Bearer session | the ticket's state and the group's members |
| `GET /console/api/groups/{groupId}/messages?before=` | Bearer session | history, newest last |
| `POST /console/api/groups/{groupId}/messages` | Bearer session | `{"text", "random"}`: send as the agent |
| `GET /console/api/groups/{groupId}/events?after=` | Bearer session | server-sent events: new messages, state |
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bridge.console import auth
from bridge.console.models import ConsoleMessageBody, ConsoleSessionBody, ConsoleTicketBody
from bridge.console.service import Console
from bridge.errors import BadRequest, NotFound
from bridge.routes import check_signed, ok, parse_json, raw_body, validate

STATIC = files("bridge.console") / "static"
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def console_of(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


# The pages that load the console: the bridge's own, and the Zendesk app's sidebar page (shipped in the app, served
# here because Zendesk posts its signed token to the bridge).
PAGES = {
    "console": STATIC / "index.html",
    "zendesk": files("connectors.zendesk") / "app" / "assets" / "iframe.html",
}


@cache
def _template(name: str) -> str:
    return PAGES[name].read_text(encoding="utf-8")


def page(name: str, bootstrap: dict[str, Any], script_origins: tuple[str, ...] = ()) -> HTMLResponse:
    """A page that loads the console, with `bootstrap` for its script (JSON in a non-executed script element)."""
    data = json.dumps(bootstrap).replace("<", "\\u003c")
    html = _template(name).replace("{{bootstrap}}", data)
    scripts = " ".join(("'self'", *script_origins))
    csp = f"default-src 'self'; script-src {scripts}; connect-src 'self'; img-src 'self' data:; object-src 'none'"
    return HTMLResponse(html, headers={**NO_STORE, "Content-Security-Policy": csp})


def session_of(request: Request) -> auth.Session:
    return auth.verify(console_of(request).key, auth.bearer(request.headers.get("authorization")))


# --- the page and opening sessions ---------------------------------------------------------------------------------


async def console_page(request: Request) -> Response:
    return page("console", {})


async def zendesk_entry(request: Request) -> Response:
    """Zendesk loads the app's URL with a POST carrying the signed JWT (signedUrls): it proves which agent this is."""
    console = console_of(request)
    settings: Any = console.bridge.settings.connectors["zendesk"]
    key, installation = settings.app_key, settings.app_installation_id
    if not (key and installation and settings.url):
        raise NotFound(
            "the Zendesk app is not set up: set ZENDESK_APP_PUBLIC_KEY and ZENDESK_APP_INSTALLATION_ID",
            code="zendesk_app_disabled",
        )
    # An urlencoded form, as browsers post it (parsed here: no multipart parser needed for one field).
    token = parse_qs((await raw_body(request)).decode("latin-1")).get("token", [None])[0]
    audience = auth.zendesk_audience(settings.url, installation)
    user_id = auth.verify_zendesk_app(key, audience, token)
    sdk = settings.app_sdk_url
    grant = auth.issue_grant(console.key, "zendesk", user_id)
    parts = urlsplit(sdk)
    return page("zendesk", {"zendesk": {"grant": grant, "sdk": sdk}}, (f"{parts.scheme}://{parts.netloc}",))


async def open_session(request: Request) -> JSONResponse:
    body = await raw_body(request)
    await check_signed(request, body)
    data = validate(ConsoleSessionBody, parse_json(body))
    return ok(await console_of(request).open_session(data.provider, data.userId, data.ticketId), 201)


async def zendesk_session(request: Request) -> JSONResponse:
    console = console_of(request)
    provider, user_id = auth.verify_grant(console.key, auth.bearer(request.headers.get("authorization")))
    data = validate(ConsoleTicketBody, parse_json(await raw_body(request)))
    return ok(await console.open_session(provider, user_id, data.ticketId), 201)


async def renew(request: Request) -> JSONResponse:
    session = session_of(request)
    console = console_of(request)
    await console.authorize(session, session.group_id)
    return ok(console.token(session))


# --- the session's API ---------------------------------------------------------------------------------------------


async def group_state(request: Request) -> JSONResponse:
    session = session_of(request)
    console = console_of(request)
    link = await console.authorize(session, request.path_params["group_id"])
    return ok(await console.state(session, link))


async def messages(request: Request) -> JSONResponse:
    session = session_of(request)
    console = console_of(request)
    link = await console.authorize(session, request.path_params["group_id"])
    return ok(await console.history(link, _seq(request, "before")))


async def send(request: Request) -> JSONResponse:
    session = session_of(request)
    console = console_of(request)
    data = validate(ConsoleMessageBody, parse_json(await raw_body(request)))
    link = await console.authorize(session, request.path_params["group_id"], send=True)
    return ok({"message": await console.send(session, link, data.text, data.random)}, 201)


async def events(request: Request) -> Response:
    session = session_of(request)
    console = console_of(request)
    link = await console.authorize(session, request.path_params["group_id"])
    stream = console.stream(session, link, _seq(request, "after") or 0)
    return StreamingResponse(stream, media_type="text/event-stream", headers={**NO_STORE, "X-Accel-Buffering": "no"})


def _seq(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 10) or int(value) > 2**32 - 1:
        raise BadRequest(f"{name} must be a message sequence number (MsgSeq)", code="invalid_request")
    return int(value)


routes = [
    Route("/console/", console_page, methods=["GET"]),
    Route("/console/zendesk", zendesk_entry, methods=["POST"]),
    Route("/console/sessions", open_session, methods=["POST"]),
    Route("/console/api/sessions/zendesk", zendesk_session, methods=["POST"]),
    Route("/console/api/session", renew, methods=["POST"]),
    Route("/console/api/groups/{group_id}", group_state, methods=["GET"]),
    Route("/console/api/groups/{group_id}/messages", messages, methods=["GET"]),
    Route("/console/api/groups/{group_id}/messages", send, methods=["POST"]),
    Route("/console/api/groups/{group_id}/events", events, methods=["GET"]),
    Mount("/console/static", StaticFiles(directory=str(STATIC)), name="console-static"),
]
