"""What every module of the Zendesk emulator shares: the account's plain-dict state, Zendesk's error bodies, request
bodies, list bodies, and the pair of routes (`/x.json` and `/x`) each API path answers on."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API = "/api/v2"
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")

# An API handler gets the request and the authenticated user (None on an anonymous request); `endpoint` wraps it
# into a route endpoint (rate limit, authentication, request log, error bodies: app.py).
Handler = Callable[[Request, Any], Awaitable[Response]]
Endpoint = Callable[..., Callable[[Request], Awaitable[Response]]]


class ApiError(Exception):
    """Rendered as Zendesk's error body."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        text: str = "",
        media_type: str = "text/plain",
    ):
        super().__init__(body)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.text = text  # a text body instead of JSON, as some of Zendesk's edge answers are
        self.media_type = media_type

    def response(self) -> Response:
        if self.text:
            return Response(self.text, status_code=self.status, headers=self.headers, media_type=self.media_type)
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def not_found() -> ApiError:
    return ApiError(404, {"error": "RecordNotFound", "description": "Not found"})


def invalid(field: str, description: str, error: str = "InvalidValue") -> ApiError:
    """Zendesk's 422 for one field of a record that failed validation."""
    details = {field: [{"description": description, "error": error}]}
    return ApiError(422, {"error": "RecordInvalid", "description": "Record validation errors", "details": details})


def is_email(value: str) -> bool:
    """Whether Zendesk would take `value` as an email address (a user's, or a requester's)."""
    return re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) is not None


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, {"error": "InvalidJSON", "description": "The request body is not valid JSON"}) from None
    if not isinstance(data, dict):
        raise ApiError(400, {"error": "InvalidJSON", "description": "The request body must be a JSON object"})
    return data


def by_int_id(table: dict[int, Any], raw_id: str) -> dict[str, Any]:
    """The record a path's numeric id names (tickets, users, triggers), else Zendesk's 404."""
    try:
        record = table.get(int(raw_id))
    except ValueError:
        record = None
    if record is None:
        raise not_found()
    return record  # type: ignore[no-any-return]


def list_body(request: Request, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A list answer: cursor pagination's `meta`/`links` when the caller asked with `page[...]`, else offset's."""
    body: dict[str, Any] = {key: items}
    if any(k.startswith("page[") for k in request.query_params):
        body["meta"] = {"has_more": False, "after_cursor": None, "before_cursor": None}
        body["links"] = {"prev": None, "next": None}
    else:
        body.update({"next_page": None, "previous_page": None, "count": len(items)})
    return body


def api_routes(
    endpoint: Endpoint, path: str, handler: Handler, methods: list[str], anonymous: bool = False
) -> list[Route]:
    # ".json" first: "/tickets/{id}" would otherwise take "5.json" as the id
    return [
        Route(API + path + ".json", endpoint(handler, anonymous=anonymous), methods=methods),
        Route(API + path, endpoint(handler, anonymous=anonymous), methods=methods),
    ]


def new_state(email: str, subdomain: str) -> dict[str, Any]:
    state: dict[str, Any] = {
        "subdomain": subdomain,
        "users": {},
        "tickets": {},
        "deleted_tickets": {},
        "uploads": {},
        "comments": {},
        "audits": {},
        "webhooks": {},
        "webhook_secrets": {},
        "triggers": {},
        "idempotency": {},
        "deliveries": [],
        "requests": [],
        "rate_limit": {"count": 0, "retry_after": 1, "per_minute": 0, "window": 60.0},
        "next_id": {"user": 10001, "ticket": 1, "comment": 50001, "audit": 70001, "trigger": 360001},
    }
    for name, mail, role in (
        (email.split("@")[0].title() or "Admin", email, "admin"),
        ("Alice Agent", "alice@example.com", "agent"),
        ("Bob Agent", "bob@example.com", "agent"),
    ):
        add_user(state, name=name, email=mail, role=role)
    return state


def next_id(state: dict[str, Any], kind: str) -> int:
    value = int(state["next_id"][kind])
    state["next_id"][kind] = value + 1
    return value


def add_user(
    state: dict[str, Any], *, name: str, email: str | None, role: str = "end-user", external_id: str | None = None
) -> dict[str, Any]:
    uid = next_id(state, "user")
    stamp = now_iso()
    user = {
        "id": uid,
        "url": f"https://{state['subdomain']}.zendesk.com{API}/users/{uid}.json",
        "name": name,
        "email": email,
        "external_id": external_id,
        "role": role,
        "active": True,
        "verified": role != "end-user",
        "suspended": False,
        "locale": "en-US",
        "locale_id": 1,
        "time_zone": "UTC",
        "organization_id": None,
        "phone": None,
        "shared": False,
        "moderator": role != "end-user",
        "ticket_restriction": None if role == "admin" else "requested",
        "created_at": stamp,
        "updated_at": stamp,
    }
    state["users"][uid] = user
    return user


def find_user_by_email(state: dict[str, Any], email: str) -> dict[str, Any] | None:
    email = email.strip().lower()
    return next((u for u in state["users"].values() if (u.get("email") or "").lower() == email), None)


def find_user_by_external_id(state: dict[str, Any], external_id: str) -> dict[str, Any] | None:
    # "External ID values are not case sensitive" (Zendesk, "Using external ID with profiles").
    wanted = str(external_id).lower()
    return next((u for u in state["users"].values() if str(u.get("external_id") or "").lower() == wanted), None)
