"""The agent console over HTTP: the page, the ways to open a session, and the session's API.

| route | auth | what |
| --- | --- | --- |
| `GET /console/` | open | the page; it waits for a session from the frame around it (the Salesforce utility bar) |
| `POST /console/sessions` | signed call | `{"provider", "userId", "ticketId"}`: a session for that helpdesk user |
| `POST /console/api/session` | Bearer session | the same session, renewed |
| `GET /console/api/groups/{groupId}` | Bearer session | the ticket's state and the group's members |
| `GET /console/api/groups/{groupId}/messages?before=` | Bearer session | history, newest last |
| `POST /console/api/groups/{groupId}/messages` | Bearer session | `{"text", "random"}`: send as the agent |
| `GET /console/api/groups/{groupId}/events?after=` | Bearer session | server-sent events: new messages, state |

A connector may add its own ways in (the Zendesk app's signed first load, connectors/zendesk/console.py): a page that
loads the console (`page`), a grant for an agent its helpdesk vouched for, and a session for that agent's ticket.
"""

from __future__ import annotations

import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from bridge.auth import check_signed
from bridge.console import auth
from bridge.console.models import ConsoleMessageBody, ConsoleSessionBody
from bridge.console.service import Console
from bridge.errors import BadRequest
from bridge.parsing import parse_json, raw_body, validate
from bridge.routes import CONSOLE, SIGNED, ok
from connectors.base import Endpoint

STATIC = files("bridge.console") / "static"
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def console_of(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


_templates: dict[str, str] = {}


def _template(template: Traversable) -> str:
    key = str(template)
    if key not in _templates:
        _templates[key] = template.read_text(encoding="utf-8")
    return _templates[key]


def page(template: Traversable, bootstrap: dict[str, Any], script_origins: tuple[str, ...] = ()) -> HTMLResponse:
    """A page that loads the console (the bridge's own, or a connector's, e.g. a helpdesk app's sidebar page), with
    `bootstrap` for its script (JSON in a non-executed script element, where `{{bootstrap}}` stands)."""
    data = json.dumps(bootstrap).replace("<", "\\u003c")
    html = _template(template).replace("{{bootstrap}}", data)
    scripts = " ".join(("'self'", *script_origins))
    csp = f"default-src 'self'; script-src {scripts}; connect-src 'self'; img-src 'self' data:; object-src 'none'"
    return HTMLResponse(html, headers={**NO_STORE, "Content-Security-Policy": csp})


def session_of(request: Request) -> auth.Session:
    return auth.verify(console_of(request).key, auth.bearer(request.headers.get("authorization")))


# --- the page and opening sessions ---------------------------------------------------------------------------------


async def console_page(request: Request) -> Response:
    return page(STATIC / "index.html", {})


async def open_session(request: Request) -> JSONResponse:
    body = await raw_body(request)
    await check_signed(request, body)
    data = validate(ConsoleSessionBody, parse_json(body))
    return ok(await console_of(request).open_session(data.provider, data.userId, data.ticketId), 201)


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


GROUP = "/console/api/groups/{group_id}"

endpoints = [
    Endpoint(
        "GET", "/console/", console_page, "The agent console page (it waits for a session from the frame around it)"
    ),
    Endpoint(
        "POST",
        "/console/sessions",
        open_session,
        "Open a console session for a helpdesk user on a ticket",
        ConsoleSessionBody,
        SIGNED,
        "201",
    ),
    Endpoint("POST", "/console/api/session", renew, "Renew the console session", security=CONSOLE),
    Endpoint("GET", GROUP, group_state, "The ticket's state and the group's members", security=CONSOLE),
    Endpoint(
        "GET",
        GROUP + "/messages",
        messages,
        "The group's history, newest last (before= a MsgSeq for older)",
        security=CONSOLE,
    ),
    Endpoint("POST", GROUP + "/messages", send, "Send a text as the agent", ConsoleMessageBody, CONSOLE, "201"),
    Endpoint(
        "GET",
        GROUP + "/events",
        events,
        "Server-sent events: new messages (after= a MsgSeq), state changes",
        security=CONSOLE,
    ),
]
static = Mount("/console/static", StaticFiles(directory=str(STATIC)), name="console-static")
