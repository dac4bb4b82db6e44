"""An emulator of the parts of the Zendesk Support API the bridge uses, as a real HTTP server (Starlette).

Shapes follow Zendesk's public API reference: requests, tickets (with audits), ticket comments, users,
webhooks (with signing secrets), triggers, and its error bodies. A ticket change runs every active trigger
whose conditions match and posts its `notification_webhook` body, placeholders substituted, to the webhook's
endpoint, signed the way Zendesk signs (base64 HMAC-SHA256 over timestamp + body), from a background task
with a 10 s timeout.

State lives in plain dicts at `app.state.zd`. Control routes under `/_emulator/` (no auth): `GET state`,
`POST reset`, `POST rate_limit`, `apps/...` (the installed app: bridge/sandbox/zendesk_apps.py) and the shared fault
routes. `rate_limit` takes `{"count": n, "retry_after": s}` (the
next n calls answer 429) or `{"per_minute": n}` (the account budget Zendesk enforces: more than n calls in a sliding
minute answer 429 with the seconds until a call leaves the window; `"window"` shortens the minute for tests). Every
API answer carries `X-Rate-Limit` and `X-Rate-Limit-Remaining` while a budget is set.

Deliberate fidelity points (each one a trap for a client that guesses):
- ticket responses carry `requester_id`, never a `requester` object;
- `{{ticket.status}}` renders the way Zendesk's placeholder does, capitalised (`Open`, `Solved`);
- a closed ticket cannot be updated (422); a comment on a solved ticket reopens it; assigning a new
  ticket opens it;
- `Idempotency-Key` on ticket creation (`POST /tickets`): a replay answers the first response with
  `x-idempotency-lookup: hit`, a different body with the same key answers 400 `IdempotentRequestError`; the
  Requests API ignores the key (Zendesk documents it for ticket creation only);
- the Requests API is the end user's view: its requester is the caller, and a `requester` object is honoured
  only on an anonymous request (no credentials), as "Creating anonymous requests" documents. The Tickets API
  takes `requester_id` or `requester: {name, email}` (resolved by email);
- users carry `external_id`, unique per account and matched without regard to case; an email another user
  has is a 422 `DuplicateValue`; `create_or_update` matches an existing user by external_id or email.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.faults import CONTROL_PREFIX, FaultMiddleware, Faults, fault_routes
from bridge.sandbox.zendesk_apps import ZendeskApps

API = "/api/v2"
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
IDEMPOTENCY_TTL = 2 * 3600  # Zendesk keeps idempotency keys for two hours
WEBHOOK_TIMEOUT = 10.0  # Zendesk gives a webhook endpoint 10 s
ACCOUNT_ID = 9000001
# How Zendesk's {{ticket.status}} placeholder renders each status.
STATUS_PLACEHOLDER = {
    "new": "New",
    "open": "Open",
    "pending": "Pending",
    "hold": "On-hold",
    "solved": "Solved",
    "closed": "Closed",
}
_ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class ApiError(Exception):
    """Rendered as Zendesk's error body."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None, text: str = ""):
        super().__init__(body)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.text = text  # a plain-text body instead of JSON, as some of Zendesk's edge answers are

    def response(self) -> Response:
        if self.text:
            return Response(self.text, status_code=self.status, headers=self.headers, media_type="text/plain")
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def _too_many(retry_after: Any, per_minute: int = 0) -> ApiError:
    """Zendesk's 429: a plain-text body, Retry-After in whole seconds."""
    headers = {"Retry-After": str(retry_after)}
    if per_minute:
        headers.update({"X-Rate-Limit": str(per_minute), "X-Rate-Limit-Remaining": "0"})
    return ApiError(429, {}, headers=headers, text="Number of allowed API requests per minute exceeded")


def not_found() -> ApiError:
    return ApiError(404, {"error": "RecordNotFound", "description": "Not found"})


def invalid(details: dict[str, list[dict[str, str]]]) -> ApiError:
    return ApiError(422, {"error": "RecordInvalid", "description": "Record validation errors", "details": details})


def webhook_error(status: int, code: str, title: str, detail: str = "") -> ApiError:
    # The webhooks API (a newer service) answers JSON:API style error lists.
    error = {"code": code, "title": title}
    if detail:
        error["detail"] = detail
    return ApiError(status, {"errors": [error]})


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ulid() -> str:
    """A ULID-like id such as Zendesk gives webhooks (`01FMJQSY40HZBCBVPZB9212S8V`)."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_ULID_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_state(email: str, subdomain: str) -> dict[str, Any]:
    state: dict[str, Any] = {
        "subdomain": subdomain,
        "users": {},
        "tickets": {},
        "deleted_tickets": {},
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


class ZendeskEmulator:
    """Routes and behaviour; `state` is the plain-dict store exposed at `app.state.zd`."""

    def __init__(self, email: str, api_token: str, subdomain: str):
        self.email = email
        self.api_token = api_token
        self.subdomain = subdomain
        self.state = new_state(email, subdomain)
        self.faults = Faults()
        self.tasks: set[asyncio.Task[None]] = set()
        self.calls: deque[float] = deque()  # when the calls of the current rate-limit window came
        self.apps = ZendeskApps(self)  # the installed app with signed URLs (the agent console)

    # ---------------------------------------------------------------- plumbing
    def reset(self) -> None:
        fresh = new_state(self.email, self.subdomain)
        self.state.clear()
        self.state.update(fresh)
        self.faults.update({})
        self.calls.clear()

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

    def endpoint(self, handler: Any, anonymous: bool = False) -> Any:
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

    async def _json(self, request: Request) -> dict[str, Any]:
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

    # -------------------------------------------------------------- idempotency
    async def _idempotent(self, request: Request, actor: dict[str, Any], create: Any) -> Response:
        key = request.headers.get("idempotency-key")
        if not key:
            return await create(request, actor)
        raw = await request.body()
        try:
            canonical = json.dumps(json.loads(raw or b"{}"), sort_keys=True, separators=(",", ":"))
        except ValueError:
            canonical = raw.decode("utf-8", "replace")
        fingerprint = hashlib.sha256(f"{request.url.path}\n{canonical}".encode()).hexdigest()
        store = self.state["idempotency"]
        now = time.time()
        for old in [k for k, v in store.items() if now - v["at"] > IDEMPOTENCY_TTL]:
            del store[old]
        seen = store.get(key)
        if seen is not None:
            if seen["fingerprint"] != fingerprint:
                raise ApiError(
                    400,
                    {
                        "error": "IdempotentRequestError",
                        "description": "Request parameters don't match the given idempotency key",
                    },
                )
            return JSONResponse(seen["body"], status_code=seen["status"], headers={"x-idempotency-lookup": "hit"})
        response = await create(request, actor)
        if 200 <= response.status_code < 300:
            store[key] = {
                "fingerprint": fingerprint,
                "status": response.status_code,
                "body": json.loads(bytes(response.body)),
                "at": now,
            }
        response.headers["x-idempotency-lookup"] = "miss"
        return response

    # ------------------------------------------------------------------ tickets
    def _ticket_json(self, ticket: dict[str, Any]) -> dict[str, Any]:
        return dict(ticket)  # requester_id only: zenpy breaks on a `requester` object

    def _get_ticket(self, raw_id: str) -> dict[str, Any]:
        try:
            ticket = self.state["tickets"].get(int(raw_id))
        except ValueError:
            ticket = None
        if ticket is None:
            raise not_found()
        return ticket

    def _resolve_requester(self, spec: Any, actor: dict[str, Any] | None) -> dict[str, Any]:
        """The requester a ticket's `requester: {name, email}` names: the user with that email, else a new one."""
        if spec is None and actor is not None:
            return actor
        if not isinstance(spec, dict):
            raise invalid({"requester": [{"description": "Requester is invalid", "error": "InvalidValue"}]})
        email = spec.get("email")
        if email:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", str(email)):
                raise invalid(
                    {
                        "requester": [
                            {
                                "description": f"Requester: Email: {email} is not properly formatted",
                                "error": "InvalidValue",
                            }
                        ]
                    }
                )
            existing = find_user_by_email(self.state, str(email))
            if existing is not None:
                return existing
        name = str(spec.get("name") or "").strip()
        if not name:
            # A new user needs a name (Zendesk: "Requester Name: is too short").
            raise invalid(
                {
                    "requester": [
                        {
                            "description": "Requester: Name: is too short (minimum is 1 character)",
                            "error": "BlankValue",
                        }
                    ]
                }
            )
        return add_user(self.state, name=name, email=str(email) if email else None)

    def _new_ticket(self, data: dict[str, Any], actor: dict[str, Any] | None, *, channel: str) -> tuple[dict, dict]:
        comment = data.get("comment") or {}
        body = str(comment.get("body") or comment.get("html_body") or data.get("description") or "").strip()
        if not body:
            raise invalid({"description": [{"description": "Description: cannot be blank", "error": "BlankValue"}]})
        if "requester_id" in data and data["requester_id"] is not None:
            requester = self.state["users"].get(data["requester_id"])
            if requester is None:
                raise invalid({"requester": [{"description": "Requester is invalid", "error": "InvalidValue"}]})
        else:
            requester = self._resolve_requester(data.get("requester"), actor)
        status = data.get("status") or "new"
        self._check_status(status)
        assignee_id = data.get("assignee_id")
        if assignee_id is not None:
            self._check_assignee(assignee_id)
            if status == "new":
                status = "open"
        tid = next_id(self.state, "ticket")
        stamp = now_iso()
        subject = str(data.get("subject") or body[:80])
        ticket = {
            "id": tid,
            "url": f"https://{self.subdomain}.zendesk.com{API}/tickets/{tid}.json",
            "external_id": None,
            "via": {"channel": channel, "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": stamp,
            "updated_at": stamp,
            "type": data.get("type"),
            "subject": subject,
            "raw_subject": subject,
            "description": body,
            "priority": data.get("priority"),
            "status": status,
            "recipient": None,
            "requester_id": requester["id"],
            "submitter_id": requester["id"],
            "assignee_id": assignee_id,
            "organization_id": None,
            "group_id": None,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "forum_topic_id": None,
            "problem_id": None,
            "has_incidents": False,
            "is_public": comment.get("public", True) is not False,
            "due_at": None,
            "tags": list(data.get("tags") or []),
            "custom_fields": [],
            "satisfaction_rating": None,
            "sharing_agreement_ids": [],
            "fields": [],
            "followup_ids": [],
            "brand_id": 1,
            "allow_channelback": False,
            "allow_attachments": True,
            "from_messaging_channel": False,
        }
        self.state["tickets"][tid] = ticket
        self.state["comments"][tid] = []
        self.state["audits"][tid] = []
        author_id = comment.get("author_id") or requester["id"]
        events = [self._add_comment(ticket, body, bool(comment.get("public", True)), author_id, channel)]
        for field in ("subject", "status", "assignee_id", "requester_id"):
            events.append(
                {
                    "id": next_id(self.state, "comment"),
                    "type": "Create",
                    "field_name": field,
                    "value": ticket[field],
                }
            )
        audit = self._audit(ticket, actor or requester, events, channel)
        self._run_triggers(ticket, {}, update_type="Create", comment_public=bool(comment.get("public", True)))
        return ticket, audit

    def _add_comment(
        self, ticket: dict[str, Any], body: str, public: bool, author_id: Any, channel: str
    ) -> dict[str, Any]:
        author = self.state["users"].get(author_id)
        if author is None:
            raise invalid({"base": [{"description": "Comment author is invalid", "error": "InvalidValue"}]})
        comment = {
            "id": next_id(self.state, "comment"),
            "type": "Comment",
            "author_id": author["id"],
            "body": body,
            "html_body": f'<div class="zd-comment" dir="auto"><p>{body}</p></div>',
            "plain_body": body,
            "public": public,
            "attachments": [],
            "audit_id": None,
            "via": {"channel": channel, "source": {"from": {}, "to": {}, "rel": None}},
            "metadata": {"system": {}, "custom": {}},
            "created_at": now_iso(),
        }
        self.state["comments"][ticket["id"]].append(comment)
        return comment

    def _audit(
        self, ticket: dict[str, Any], actor: dict[str, Any], events: list[dict[str, Any]], channel: str
    ) -> dict[str, Any]:
        audit = {
            "id": next_id(self.state, "audit"),
            "ticket_id": ticket["id"],
            "created_at": now_iso(),
            "author_id": actor["id"],
            "metadata": {"system": {}, "custom": {}},
            "via": {"channel": channel, "source": {"from": {}, "to": {}, "rel": None}},
            "events": events,
        }
        for event in events:
            if event.get("type") == "Comment":
                event["audit_id"] = audit["id"]
        self.state["audits"][ticket["id"]].append(audit)
        return audit

    def _check_status(self, status: Any) -> None:
        if status not in STATUSES:
            raise invalid({"status": [{"description": f"Status: {status} is not valid", "error": "InvalidValue"}]})

    def _check_assignee(self, assignee_id: Any) -> None:
        user = self.state["users"].get(assignee_id)
        if user is None or user["role"] not in ("admin", "agent"):
            raise invalid({"assignee": [{"description": "Assignee: is not an agent", "error": "InvalidValue"}]})

    async def create_request(self, request: Request, actor: dict[str, Any] | None) -> Response:
        """The Requests API: an end user's (or an anonymous visitor's) own request.

        Zendesk documents `requester` as "required for anonymous requests"; with credentials the request is the
        caller's, so an agent's or admin's token makes that agent or admin the requester whatever `requester` says.
        No Idempotency-Key here: Zendesk documents the key for ticket creation (`POST /tickets`) only."""
        data = (await self._json(request)).get("request")
        if not isinstance(data, dict):
            raise invalid({"base": [{"description": "Request is missing", "error": "BlankValue"}]})
        spec = data.get("requester")
        # end-user view: these are not writable, and the requester is decided below
        data = {k: v for k, v in data.items() if k not in ("assignee_id", "status", "requester_id", "requester")}
        if actor is None:
            if not isinstance(spec, dict):
                raise invalid({"requester": [{"description": "Requester: cannot be blank", "error": "BlankValue"}]})
            data["requester"] = spec
        else:
            data["requester_id"] = actor["id"]
        ticket, _ = self._new_ticket(data, actor, channel="api")
        return JSONResponse({"request": self._request_json(ticket)}, status_code=201)

    def _request_json(self, ticket: dict[str, Any]) -> dict[str, Any]:
        keys = (
            "id",
            "status",
            "priority",
            "type",
            "subject",
            "description",
            "organization_id",
            "via",
            "custom_fields",
            "requester_id",
            "collaborator_ids",
            "email_cc_ids",
            "is_public",
            "due_at",
            "created_at",
            "updated_at",
            "recipient",
            "assignee_id",
            "fields",
            "group_id",
        )
        body = {k: ticket.get(k) for k in keys}
        body["url"] = f"https://{self.subdomain}.zendesk.com{API}/requests/{ticket['id']}.json"
        body["can_be_solved_by_me"] = False
        body["followup_source_id"] = None
        body["ticket_form_id"] = None
        return body

    async def create_ticket(self, request: Request, actor: dict[str, Any]) -> Response:
        data = (await self._json(request)).get("ticket")
        if not isinstance(data, dict):
            raise invalid({"base": [{"description": "Ticket is missing", "error": "BlankValue"}]})
        ticket, audit = self._new_ticket(data, actor, channel="api")
        return JSONResponse({"ticket": self._ticket_json(ticket), "audit": audit}, status_code=201)

    async def show_ticket(self, request: Request, actor: dict[str, Any]) -> Response:
        return JSONResponse({"ticket": self._ticket_json(self._get_ticket(request.path_params["id"]))})

    async def update_ticket(self, request: Request, actor: dict[str, Any]) -> Response:
        ticket = self._get_ticket(request.path_params["id"])
        data = (await self._json(request)).get("ticket")
        if not isinstance(data, dict):
            raise invalid({"base": [{"description": "Ticket is missing", "error": "BlankValue"}]})
        if ticket["status"] == "closed":
            raise invalid(
                {"status": [{"description": "Status: closed prevents ticket update", "error": "InvalidValue"}]}
            )
        before = {
            "status": ticket["status"],
            "assignee_id": ticket["assignee_id"],
            "subject": ticket["subject"],
            "priority": ticket["priority"],
        }
        after = dict(before)
        if "status" in data:
            self._check_status(data["status"])
            if data["status"] == "new" and before["status"] != "new":
                raise invalid(
                    {"status": [{"description": "Status: cannot be set back to new", "error": "InvalidValue"}]}
                )
            after["status"] = data["status"]
        if "assignee_id" in data:
            if data["assignee_id"] is not None:
                self._check_assignee(data["assignee_id"])
            after["assignee_id"] = data["assignee_id"]
        for field in ("subject", "priority"):
            if field in data:
                after[field] = data[field]
        comment = data.get("comment")
        if comment is not None and not (isinstance(comment, dict) and str(comment.get("body") or "").strip()):
            raise invalid({"comment": [{"description": "Comment: body cannot be blank", "error": "BlankValue"}]})
        author_id = (comment or {}).get("author_id") or actor["id"]
        if comment is not None and author_id not in self.state["users"]:
            raise invalid({"base": [{"description": "Comment author is invalid", "error": "InvalidValue"}]})
        if "status" not in data:
            if after["status"] == "new" and after["assignee_id"] is not None:
                after["status"] = "open"  # assigning a new ticket opens it
            if comment is not None and before["status"] == "solved":
                after["status"] = "open"  # a reply on a solved ticket reopens it
            if comment is not None and before["status"] == "pending" and author_id == ticket["requester_id"]:
                after["status"] = "open"  # the requester answered
        events: list[dict[str, Any]] = []
        if comment is not None:
            events.append(
                self._add_comment(
                    ticket, str(comment["body"]), comment.get("public", True) is not False, author_id, "api"
                )
            )
        changes: dict[str, Any] = {}
        for field, value in after.items():
            if value != before[field]:
                changes[field] = before[field]
                ticket[field] = value
                events.append(
                    {
                        "id": next_id(self.state, "comment"),
                        "type": "Change",
                        "field_name": field,
                        "value": value,
                        "previous_value": before[field],
                    }
                )
        if "subject" in changes:
            ticket["raw_subject"] = ticket["subject"]
        ticket["updated_at"] = now_iso()
        audit = self._audit(ticket, actor, events, "api")
        self._run_triggers(
            ticket,
            changes,
            update_type="Change",
            comment_public=None if comment is None else comment.get("public", True) is not False,
        )
        return JSONResponse({"ticket": self._ticket_json(ticket), "audit": audit})

    async def delete_ticket(self, request: Request, actor: dict[str, Any]) -> Response:
        ticket = self._get_ticket(request.path_params["id"])
        self.state["deleted_tickets"][ticket["id"]] = self.state["tickets"].pop(ticket["id"])
        return Response(status_code=204)

    async def list_comments(self, request: Request, actor: dict[str, Any]) -> Response:
        ticket = self._get_ticket(request.path_params["id"])
        comments = list(self.state["comments"].get(ticket["id"], []))
        if request.query_params.get("sort_order") == "desc" or request.query_params.get("sort") == "-created_at":
            comments.reverse()
        body: dict[str, Any] = {"comments": comments}
        if any(k.startswith("page[") for k in request.query_params):
            body["meta"] = {"has_more": False, "after_cursor": None, "before_cursor": None}
            body["links"] = {"prev": None, "next": None}
        else:
            body.update({"next_page": None, "previous_page": None, "count": len(comments)})
        return JSONResponse(body)

    # -------------------------------------------------------------------- users
    def _get_user(self, raw_id: str) -> dict[str, Any]:
        try:
            user = self.state["users"].get(int(raw_id))
        except ValueError:
            user = None
        if user is None:
            raise not_found()
        return user  # type: ignore[no-any-return]

    async def show_user(self, request: Request, actor: dict[str, Any]) -> Response:
        raw = request.path_params["id"]
        if raw == "me":
            return JSONResponse({"user": actor})
        return JSONResponse({"user": self._get_user(raw)})

    async def search_users(self, request: Request, actor: dict[str, Any]) -> Response:
        query = request.query_params.get("query", "")
        email = request.query_params.get("email") or ""
        external_id = request.query_params.get("external_id")
        if query.startswith("email:"):
            email = query[len("email:") :]
        if external_id is not None:  # "does not support the search syntax. It only accepts ids."
            found = find_user_by_external_id(self.state, external_id) if external_id else None
            users = [found] if found else []
        elif email:
            found = find_user_by_email(self.state, email)
            users = [found] if found else []
        elif query:
            users = [
                u
                for u in self.state["users"].values()
                if query.lower() in (u["name"] or "").lower() or query.lower() in (u["email"] or "").lower()
            ]
        else:
            users = list(self.state["users"].values())
        return JSONResponse({"users": users, "next_page": None, "previous_page": None, "count": len(users)})

    def _user_fields(self, data: Any, user: dict[str, Any] | None) -> dict[str, Any]:
        """Validate the writable fields of a user body against the account: Zendesk's 422 bodies when wrong."""
        if not isinstance(data, dict):
            raise invalid({"base": [{"description": "User is missing", "error": "BlankValue"}]})
        fields: dict[str, Any] = {}
        if "name" in data or user is None:
            name = str(data.get("name") or "").strip()
            if not name:
                raise invalid(
                    {"name": [{"description": "Name: is too short (minimum is 1 character)", "error": "BlankValue"}]}
                )
            fields["name"] = name
        email = data.get("email")
        if email:
            email = str(email).strip()
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                raise invalid(
                    {"email": [{"description": f"Email: {email} is not properly formatted", "error": "InvalidValue"}]}
                )
            owner = find_user_by_email(self.state, email)
            if owner is not None and owner is not user:
                raise invalid(
                    {
                        "email": [
                            {
                                "description": f"Email: {email} is already being used by another user",
                                "error": "DuplicateValue",
                            }
                        ]
                    }
                )
            # "Writeable on create only. On update, a secondary email is added": the primary stays (secondary
            # identities are not modelled), a user without one gets this one.
            if user is None or not user.get("email"):
                fields["email"] = email
        if data.get("external_id") is not None:
            external_id = str(data["external_id"])
            owner = find_user_by_external_id(self.state, external_id)
            if owner is not None and owner is not user:
                raise invalid(
                    {"external_id": [{"description": "External has already been taken", "error": "DuplicateValue"}]}
                )
            fields["external_id"] = external_id
        if "role" in data:
            if data["role"] not in ("end-user", "agent", "admin"):
                raise invalid(
                    {"role": [{"description": f"Role: {data['role']} is not valid", "error": "InvalidValue"}]}
                )
            fields["role"] = data["role"]
        return fields

    def _store_user(self, fields: dict[str, Any], user: dict[str, Any] | None) -> dict[str, Any]:
        if user is None:
            user = add_user(
                self.state,
                name=fields["name"],
                email=fields.get("email"),
                role=fields.get("role", "end-user"),
                external_id=fields.get("external_id"),
            )
        else:
            user.update(fields)
            user["updated_at"] = now_iso()
        return user

    async def create_user(self, request: Request, actor: dict[str, Any]) -> Response:
        user = self._store_user(self._user_fields((await self._json(request)).get("user"), None), None)
        return JSONResponse({"user": user}, status_code=201, headers={"Location": f"{API}/users/{user['id']}.json"})

    async def create_or_update_user(self, request: Request, actor: dict[str, Any]) -> Response:
        """Creates a user, or updates the one "identified by e-mail address or external ID" (Zendesk's words; which
        one wins when both name different users is not documented: external_id first here). 201 new, 200 existing."""
        data = (await self._json(request)).get("user")
        existing = None
        if isinstance(data, dict):
            if data.get("external_id") is not None:
                existing = find_user_by_external_id(self.state, str(data["external_id"]))
            if existing is None and data.get("email"):
                existing = find_user_by_email(self.state, str(data["email"]))
        user = self._store_user(self._user_fields(data, existing), existing)
        return JSONResponse(
            {"user": user},
            status_code=200 if existing else 201,
            headers={"Location": f"{API}/users/{user['id']}.json"},
        )

    async def update_user(self, request: Request, actor: dict[str, Any]) -> Response:
        user = self._get_user(request.path_params["id"])
        user = self._store_user(self._user_fields((await self._json(request)).get("user"), user), user)
        return JSONResponse({"user": user})

    # ----------------------------------------------------------------- webhooks
    def _webhook_json(self, webhook: dict[str, Any]) -> dict[str, Any]:
        return dict(webhook)  # the secret is only shown by /signing_secret

    def _get_webhook(self, raw_id: str) -> dict[str, Any]:
        webhook = self.state["webhooks"].get(raw_id)
        if webhook is None:
            raise webhook_error(404, "RecordNotFound", "Not Found", f"Webhook {raw_id} not found")
        return webhook

    def _validate_webhook(self, data: dict[str, Any]) -> None:
        for field in ("name", "endpoint", "http_method", "request_format", "status"):
            if not data.get(field):
                raise webhook_error(400, "InvalidValue", f"{field} is required")
        if data["http_method"] not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise webhook_error(400, "InvalidValue", "Invalid http_method")
        if data["request_format"] not in ("json", "xml", "form_encoded"):
            raise webhook_error(400, "InvalidValue", "Invalid request_format")
        if data["status"] not in ("active", "inactive"):
            raise webhook_error(400, "InvalidValue", "Invalid status")
        if not re.match(r"https?://", str(data["endpoint"])):
            raise webhook_error(400, "InvalidValue", "Invalid endpoint URL")

    _WEBHOOK_FIELDS = (
        "name",
        "description",
        "endpoint",
        "http_method",
        "request_format",
        "status",
        "subscriptions",
        "authentication",
        "custom_headers",
    )

    async def create_webhook(self, request: Request, actor: dict[str, Any]) -> Response:
        data = (await self._json(request)).get("webhook")
        if not isinstance(data, dict):
            raise webhook_error(400, "InvalidValue", "webhook is required")
        self._validate_webhook(data)
        wid = ulid()
        stamp = now_iso()
        webhook = {k: data.get(k) for k in self._WEBHOOK_FIELDS if k in data}
        webhook.update(
            {
                "id": wid,
                "created_at": stamp,
                "created_by": str(actor["id"]),
                "updated_at": stamp,
                "updated_by": str(actor["id"]),
            }
        )
        webhook.setdefault("subscriptions", [])
        secret = (
            (data.get("signing_secret") or {}).get("secret") if isinstance(data.get("signing_secret"), dict) else None
        )
        self.state["webhooks"][wid] = webhook
        self.state["webhook_secrets"][wid] = secret or base64.b64encode(secrets.token_bytes(32)).decode()
        return JSONResponse({"webhook": self._webhook_json(webhook)}, status_code=201)

    async def list_webhooks(self, request: Request, actor: dict[str, Any]) -> Response:
        contains = request.query_params.get("filter[name_contains]")
        status = request.query_params.get("filter[status]")
        found = [
            w
            for w in self.state["webhooks"].values()
            if (not contains or contains.lower() in w["name"].lower()) and (not status or w["status"] == status)
        ]
        if request.query_params.get("sort") in ("name", "status"):
            found.sort(key=lambda w: w[request.query_params["sort"]])
        return JSONResponse(
            {
                "webhooks": [self._webhook_json(w) for w in found],
                "meta": {"has_more": False, "after_cursor": None, "before_cursor": None},
                "links": {"prev": None, "next": None},
            }
        )

    async def show_webhook(self, request: Request, actor: dict[str, Any]) -> Response:
        return JSONResponse({"webhook": self._webhook_json(self._get_webhook(request.path_params["id"]))})

    async def change_webhook(self, request: Request, actor: dict[str, Any]) -> Response:
        webhook = self._get_webhook(request.path_params["id"])
        data = (await self._json(request)).get("webhook")
        if not isinstance(data, dict):
            raise webhook_error(400, "InvalidValue", "webhook is required")
        if request.method == "PUT":
            merged = {k: data.get(k) for k in self._WEBHOOK_FIELDS if k in data}
        else:
            merged = {k: v for k, v in webhook.items() if k in self._WEBHOOK_FIELDS}
            merged.update({k: v for k, v in data.items() if k in self._WEBHOOK_FIELDS})
        self._validate_webhook(merged)
        for key in self._WEBHOOK_FIELDS:
            webhook.pop(key, None)
        webhook.update(merged)
        webhook.setdefault("subscriptions", [])
        webhook.update({"updated_at": now_iso(), "updated_by": str(actor["id"])})
        if isinstance(data.get("signing_secret"), dict) and data["signing_secret"].get("secret"):
            self.state["webhook_secrets"][webhook["id"]] = data["signing_secret"]["secret"]
        return Response(status_code=204)

    async def delete_webhook(self, request: Request, actor: dict[str, Any]) -> Response:
        webhook = self._get_webhook(request.path_params["id"])
        users = [
            t["id"]
            for t in self.state["triggers"].values()
            if any(
                a.get("field") == "notification_webhook" and (a.get("value") or [None])[0] == webhook["id"]
                for a in t["actions"]
            )
        ]
        if users:
            raise webhook_error(
                400,
                "WebhookInUse",
                "Webhook is used by triggers or automations",
                f"Remove it from triggers {users} first",
            )
        del self.state["webhooks"][webhook["id"]]
        self.state["webhook_secrets"].pop(webhook["id"], None)
        return Response(status_code=204)

    async def signing_secret(self, request: Request, actor: dict[str, Any]) -> Response:
        webhook = self._get_webhook(request.path_params["id"])
        if request.method == "POST":
            self.state["webhook_secrets"][webhook["id"]] = base64.b64encode(secrets.token_bytes(32)).decode()
        body = {"signing_secret": {"algorithm": "SHA256", "secret": self.state["webhook_secrets"][webhook["id"]]}}
        return JSONResponse(body, status_code=201 if request.method == "POST" else 200)

    # ----------------------------------------------------------------- triggers
    def _get_trigger(self, raw_id: str) -> dict[str, Any]:
        try:
            trigger = self.state["triggers"].get(int(raw_id))
        except ValueError:
            trigger = None
        if trigger is None:
            raise not_found()
        return trigger

    def _trigger_fields(self, data: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
        merged = dict(base or {})
        for key in ("title", "description", "active", "position", "conditions", "actions", "category_id"):
            if key in data:
                merged[key] = data[key]
        if not str(merged.get("title") or "").strip():
            raise invalid({"title": [{"description": "Title: cannot be blank", "error": "BlankValue"}]})
        if not merged.get("actions"):
            raise invalid({"actions": [{"description": "Actions: cannot be blank", "error": "BlankValue"}]})
        conditions = merged.get("conditions") or {}
        if not isinstance(conditions, dict) or not (conditions.get("all") or conditions.get("any")):
            raise invalid(
                {"conditions": [{"description": "Conditions: must have at least one condition", "error": "BlankValue"}]}
            )
        for action in merged["actions"]:
            if action.get("field") == "notification_webhook":
                value = action.get("value")
                if not (isinstance(value, list) and len(value) == 2 and value[0] in self.state["webhooks"]):
                    raise invalid(
                        {"actions": [{"description": "Notify webhook: webhook is invalid", "error": "InvalidValue"}]}
                    )
        merged["conditions"] = {
            "all": list(conditions.get("all") or []),
            "any": list(conditions.get("any") or []),
        }
        merged.setdefault("active", True)
        merged.setdefault("description", None)
        merged["raw_title"] = merged["title"]
        return merged

    async def create_trigger(self, request: Request, actor: dict[str, Any]) -> Response:
        data = (await self._json(request)).get("trigger")
        if not isinstance(data, dict):
            raise invalid({"base": [{"description": "Trigger is missing", "error": "BlankValue"}]})
        trigger = self._trigger_fields(data, None)
        tid = next_id(self.state, "trigger")
        stamp = now_iso()
        trigger.setdefault("position", len(self.state["triggers"]) + 1)
        trigger.update(
            {
                "id": tid,
                "url": f"https://{self.subdomain}.zendesk.com{API}/triggers/{tid}.json",
                "created_at": stamp,
                "updated_at": stamp,
                "default": False,
            }
        )
        self.state["triggers"][tid] = trigger
        return JSONResponse({"trigger": trigger}, status_code=201)

    async def list_triggers(self, request: Request, actor: dict[str, Any]) -> Response:
        found = sorted(self.state["triggers"].values(), key=lambda t: (t["position"], t["id"]))
        active = request.query_params.get("active")
        if active is not None:
            found = [t for t in found if t["active"] == (active == "true")]
        body: dict[str, Any] = {"triggers": found}
        if any(k.startswith("page[") for k in request.query_params):
            body["meta"] = {"has_more": False, "after_cursor": None, "before_cursor": None}
            body["links"] = {"prev": None, "next": None}
        else:
            body.update({"next_page": None, "previous_page": None, "count": len(found)})
        return JSONResponse(body)

    async def show_trigger(self, request: Request, actor: dict[str, Any]) -> Response:
        return JSONResponse({"trigger": self._get_trigger(request.path_params["id"])})

    async def update_trigger(self, request: Request, actor: dict[str, Any]) -> Response:
        trigger = self._get_trigger(request.path_params["id"])
        data = (await self._json(request)).get("trigger")
        if not isinstance(data, dict):
            raise invalid({"base": [{"description": "Trigger is missing", "error": "BlankValue"}]})
        trigger.update(self._trigger_fields(data, trigger))
        trigger["updated_at"] = now_iso()
        return JSONResponse({"trigger": trigger})

    async def delete_trigger(self, request: Request, actor: dict[str, Any]) -> Response:
        trigger = self._get_trigger(request.path_params["id"])
        del self.state["triggers"][trigger["id"]]
        return Response(status_code=204)

    # ------------------------------------------------------ triggers: execution
    def _condition(
        self,
        cond: dict[str, Any],
        ticket: dict[str, Any],
        changes: dict[str, Any],
        update_type: str,
        comment_public: bool | None,
    ) -> bool:
        field, op, value = cond.get("field"), cond.get("operator"), cond.get("value")
        if field == "update_type":
            return (update_type == value) == (op == "is")
        if field == "comment_is_public":
            wanted = {"true": True, "false": False}.get(str(value).lower(), value)
            if wanted == "not_relevant":
                return True
            return comment_public is not None and comment_public == wanted
        if field not in ("status", "assignee_id", "group_id", "priority", "requester_id", "type"):
            return False
        current = ticket.get(field)
        changed = field in changes
        previous = changes.get(field, current)

        def same(a: Any, b: Any) -> bool:
            return str("" if a is None else a) == str("" if b is None else b)

        if op == "changed":
            return changed
        if op == "not_changed":
            return not changed
        if op == "is":
            return same(current, value)
        if op == "is_not":
            return not same(current, value)
        if op == "value":  # changed to
            return changed and same(current, value)
        if op == "value_previous":  # changed from
            return changed and same(previous, value)
        if op == "not_value":
            return changed and not same(current, value)
        if op == "not_value_previous":
            return changed and not same(previous, value)
        if field == "status" and op in ("less_than", "greater_than") and value in STATUSES and current in STATUSES:
            diff = STATUSES.index(current) - STATUSES.index(value)
            return diff < 0 if op == "less_than" else diff > 0
        return False

    def _render(self, template: str, ticket: dict[str, Any]) -> str:
        values = {
            "ticket.id": str(ticket["id"]),
            "ticket.assignee.id": "" if ticket["assignee_id"] is None else str(ticket["assignee_id"]),
            "ticket.status": STATUS_PLACEHOLDER.get(ticket["status"], ticket["status"]),
            "ticket.title": ticket["subject"] or "",
            "ticket.requester.id": str(ticket["requester_id"]),
            "ticket.url": f"{self.subdomain}.zendesk.com/agent/tickets/{ticket['id']}",
        }
        return re.sub(r"\{\{\s*([\w.]+)\s*\}\}", lambda m: values.get(m.group(1), ""), template)

    def _run_triggers(
        self,
        ticket: dict[str, Any],
        changes: dict[str, Any],
        *,
        update_type: str,
        comment_public: bool | None,
    ) -> None:
        for trigger in sorted(self.state["triggers"].values(), key=lambda t: (t["position"], t["id"])):
            if not trigger.get("active", True):
                continue
            conds = trigger["conditions"]
            check = [self._condition(c, ticket, changes, update_type, comment_public) for c in conds["all"]]
            if not all(check):
                continue
            if conds["any"] and not any(
                self._condition(c, ticket, changes, update_type, comment_public) for c in conds["any"]
            ):
                continue
            for action in trigger["actions"]:
                if action.get("field") != "notification_webhook":
                    continue
                webhook_id, template = action["value"][0], action["value"][1]
                webhook = self.state["webhooks"].get(webhook_id)
                if webhook is None or webhook.get("status") != "active":
                    continue
                self._schedule(webhook, trigger, ticket, self._render(str(template), ticket))

    def _schedule(self, webhook: dict[str, Any], trigger: dict[str, Any], ticket: dict[str, Any], body: str) -> None:
        delivery: dict[str, Any] = {
            "id": len(self.state["deliveries"]) + 1,
            "webhook_id": webhook["id"],
            "trigger_id": trigger["id"],
            "ticket_id": ticket["id"],
            "endpoint": webhook["endpoint"],
            "method": webhook["http_method"],
            "body": body,
            "headers": {},
            "status": None,
            "error": None,
            "state": "pending",
            "at": now_iso(),
        }
        self.state["deliveries"].append(delivery)
        task = asyncio.get_running_loop().create_task(self._deliver(delivery, webhook))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, delivery: dict[str, Any], webhook: dict[str, Any]) -> None:
        secret = self.state["webhook_secrets"].get(webhook["id"], "")
        timestamp = now_iso()
        signature = base64.b64encode(
            hmac.new(secret.encode(), (timestamp + delivery["body"]).encode(), hashlib.sha256).digest()
        ).decode()
        content_type = {
            "json": "application/json; charset=utf-8",
            "xml": "application/xml; charset=utf-8",
            "form_encoded": "application/x-www-form-urlencoded",
        }.get(webhook["request_format"], "application/json")
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Zendesk Webhook",
            "X-Zendesk-Account-Id": str(ACCOUNT_ID),
            "X-Zendesk-Webhook-Id": webhook["id"],
            "X-Zendesk-Webhook-Invocation-Id": str(secrets.randbelow(10**10)),
            "X-Zendesk-Webhook-Signature": signature,
            "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
        }
        headers.update({str(k): str(v) for k, v in (webhook.get("custom_headers") or {}).items()})
        delivery["headers"] = headers
        try:
            async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT) as client:
                response = await client.request(
                    webhook["http_method"],
                    webhook["endpoint"],
                    content=delivery["body"].encode(),
                    headers=headers,
                )
            delivery["status"] = response.status_code
            delivery["state"] = "success" if response.status_code < 400 else "failed"
        except httpx.TimeoutException:
            delivery.update(state="timeout", error="timed out after 10 s")
        except httpx.HTTPError as exc:
            delivery.update(state="failed", error=f"{type(exc).__name__}: {exc}")

    async def wait_deliveries(self, timeout: float = 15.0) -> None:
        """Wait until every scheduled webhook delivery finished (tests and the sandbox use it)."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)

    # ----------------------------------------------------------------- control
    async def control_state(self, request: Request) -> Response:
        return JSONResponse(json.loads(json.dumps(self.state, default=str)))

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
        e = self.endpoint

        def both(path: str, handler: Any, methods: list[str]) -> list[Route]:
            # ".json" first: "/tickets/{id}" would otherwise take "5.json" as the id
            return [
                Route(API + path + ".json", e(handler), methods=methods),
                Route(API + path, e(handler), methods=methods),
            ]

        async def create_ticket(request: Request, actor: dict[str, Any]) -> Response:
            return await self._idempotent(request, actor, self.create_ticket)

        routes = [
            # Anonymous requests are allowed (an admin can turn them off; the emulator's account leaves them on).
            Route(API + "/requests.json", e(self.create_request, anonymous=True), methods=["POST"]),
            Route(API + "/requests", e(self.create_request, anonymous=True), methods=["POST"]),
            *both("/tickets", create_ticket, ["POST"]),
            *both("/tickets/{id}", self.show_ticket, ["GET"]),
            *both("/tickets/{id}", self.update_ticket, ["PUT"]),
            *both("/tickets/{id}", self.delete_ticket, ["DELETE"]),
            *both("/tickets/{id}/comments", self.list_comments, ["GET"]),
            *both("/users/search", self.search_users, ["GET"]),
            *both("/users/create_or_update", self.create_or_update_user, ["POST"]),
            *both("/users", self.search_users, ["GET"]),
            *both("/users", self.create_user, ["POST"]),
            *both("/users/{id}", self.show_user, ["GET"]),
            *both("/users/{id}", self.update_user, ["PUT"]),
            *both("/webhooks", self.create_webhook, ["POST"]),
            *both("/webhooks", self.list_webhooks, ["GET"]),
            *both("/webhooks/{id}/signing_secret", self.signing_secret, ["GET", "POST"]),
            *both("/webhooks/{id}", self.show_webhook, ["GET"]),
            *both("/webhooks/{id}", self.change_webhook, ["PUT", "PATCH"]),
            *both("/webhooks/{id}", self.delete_webhook, ["DELETE"]),
            *both("/triggers", self.create_trigger, ["POST"]),
            *both("/triggers", self.list_triggers, ["GET"]),
            *both("/triggers/{id}", self.show_trigger, ["GET"]),
            *both("/triggers/{id}", self.update_trigger, ["PUT"]),
            *both("/triggers/{id}", self.delete_trigger, ["DELETE"]),
            Route(CONTROL_PREFIX + "state", self.control_state, methods=["GET"]),
            Route(CONTROL_PREFIX + "reset", self.control_reset, methods=["POST"]),
            Route(CONTROL_PREFIX + "rate_limit", self.control_rate_limit, methods=["POST"]),
            *self.apps.routes(API, e),
            *fault_routes(self.faults),
        ]
        return routes


def create_app(
    email: str = "admin@example.com", api_token: str = "sandbox-zendesk-token", subdomain: str = "acme"
) -> Starlette:
    """The emulator as an ASGI app. `app.state.zd` is the state; `app.state.emulator` the behaviour."""
    emulator = ZendeskEmulator(email, api_token, subdomain)
    app = Starlette(routes=emulator.routes())
    app.add_middleware(FaultMiddleware, faults=emulator.faults, error=emulator.fault_error)
    app.state.zd = emulator.state
    app.state.emulator = emulator
    app.state.faults = emulator.faults
    return app
