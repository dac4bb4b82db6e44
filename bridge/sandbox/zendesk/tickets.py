"""Zendesk tickets: the Requests API (an end user's own request, anonymous or not) and the Tickets API (create
with `Idempotency-Key`, show, update, delete), with each ticket's comments and audits. A ticket change runs the
triggers (triggers.py).

| route | what |
| --- | --- |
| `POST /api/v2/requests` | a request; anonymous (no credentials) with a `requester` object |
| `POST /api/v2/tickets` | a ticket, `requester_id` or `requester: {name, email}`; `Idempotency-Key` honoured |
| `GET /api/v2/tickets` | List Tickets, by id (`sort_order=desc` newest first), one page |
| `GET/PUT /api/v2/tickets/{id}` | show, update (status rules below; limits: limits.py); deletion is deleted.py's |
| `GET /api/v2/tickets/{id}/comments` | the ticket's comments, `sort_order=desc` newest first |

A comment records the User-Agent and address of the call that wrote it (`metadata.system.client`, `ip_address`), and
the files of its `uploads` tokens (uploads.py) as its `attachments`. An update emits the ticket events webhooks
subscribe to (events.py): assignment, status, comment added.

Every path also answers with `.json` appended. A closed ticket cannot be updated (422); a comment on a solved ticket
reopens it, and so does the requester's comment on a pending one; assigning a new ticket opens it.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.zendesk.core import (
    API,
    STATUSES,
    ApiError,
    Endpoint,
    add_user,
    api_routes,
    by_int_id,
    find_user_by_email,
    invalid,
    is_email,
    list_body,
    next_id,
    now_iso,
    read_json,
)
from bridge.sandbox.zendesk.events import TicketEvents
from bridge.sandbox.zendesk.limits import UpdateLimits
from bridge.sandbox.zendesk.triggers import Triggers
from bridge.sandbox.zendesk.uploads import take_uploads

IDEMPOTENCY_TTL = 2 * 3600  # Zendesk keeps idempotency keys for two hours


def system_of(request: Request) -> dict[str, Any]:
    """A comment's `metadata.system`: the API client (User-Agent) and address of the call that wrote it."""
    address = request.client.host if request.client else None
    return {"client": request.headers.get("user-agent", ""), "ip_address": address}


class Tickets:
    def __init__(
        self, state: dict[str, Any], subdomain: str, triggers: Triggers, events: TicketEvents, limits: UpdateLimits
    ):
        self.state, self.subdomain, self.triggers, self.events = state, subdomain, triggers, events
        self.limits = limits

    def routes(self, endpoint: Endpoint) -> list[Route]:
        async def create_ticket(request: Request, actor: dict[str, Any]) -> Response:
            return await self._idempotent(request, actor, self.create_ticket)

        return [
            # Anonymous requests are allowed (an admin can turn them off; the emulator's account leaves them on).
            *api_routes(endpoint, "/requests", self.create_request, ["POST"], anonymous=True),
            *api_routes(endpoint, "/tickets", create_ticket, ["POST"]),
            *api_routes(endpoint, "/tickets", self.list_tickets, ["GET"]),
            *api_routes(endpoint, "/tickets/{id}", self.show_ticket, ["GET"]),
            *api_routes(endpoint, "/tickets/{id}", self.update_ticket, ["PUT"]),
            *api_routes(endpoint, "/tickets/{id}/comments", self.list_comments, ["GET"]),
        ]

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

    def _ticket_json(self, ticket: dict[str, Any]) -> dict[str, Any]:
        return dict(ticket)  # requester_id only: zenpy breaks on a `requester` object

    def _get_ticket(self, raw_id: str) -> dict[str, Any]:
        return by_int_id(self.state["tickets"], raw_id)

    def _resolve_requester(self, spec: Any, actor: dict[str, Any] | None) -> dict[str, Any]:
        """The requester a ticket's `requester: {name, email}` names: the user with that email, else a new one."""
        if spec is None and actor is not None:
            return actor
        if not isinstance(spec, dict):
            raise invalid("requester", "Requester is invalid")
        email = spec.get("email")
        if email:
            if not is_email(str(email)):
                raise invalid("requester", f"Requester: Email: {email} is not properly formatted")
            existing = find_user_by_email(self.state, str(email))
            if existing is not None:
                return existing
        name = str(spec.get("name") or "").strip()
        if not name:
            # A new user needs a name (Zendesk: "Requester Name: is too short").
            raise invalid("requester", "Requester: Name: is too short (minimum is 1 character)", "BlankValue")
        return add_user(self.state, name=name, email=str(email) if email else None)

    def _new_ticket(
        self, data: dict[str, Any], actor: dict[str, Any] | None, *, channel: str, system: dict[str, Any]
    ) -> tuple[dict, dict]:
        comment = data.get("comment") or {}
        body = str(comment.get("body") or comment.get("html_body") or data.get("description") or "").strip()
        if not body:
            raise invalid("description", "Description: cannot be blank", "BlankValue")
        if "requester_id" in data and data["requester_id"] is not None:
            requester = self.state["users"].get(data["requester_id"])
            if requester is None:
                raise invalid("requester", "Requester is invalid")
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
        events = [self._add_comment(ticket, body, bool(comment.get("public", True)), author_id, channel, system)]
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
        self.triggers.run(ticket, {}, update_type="Create", comment_public=bool(comment.get("public", True)))
        return ticket, audit

    def _add_comment(
        self, ticket: dict[str, Any], body: str, public: bool, author_id: Any, channel: str, system: dict[str, Any]
    ) -> dict[str, Any]:
        author = self.state["users"].get(author_id)
        if author is None:
            raise invalid("base", "Comment author is invalid")
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
            # Zendesk records the API client (its User-Agent) and address of the call that wrote the comment.
            "metadata": {"system": dict(system), "custom": {}},
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
            raise invalid("status", f"Status: {status} is not valid")

    def _check_assignee(self, assignee_id: Any) -> None:
        user = self.state["users"].get(assignee_id)
        if user is None or user["role"] not in ("admin", "agent"):
            raise invalid("assignee", "Assignee: is not an agent")

    async def create_request(self, request: Request, actor: dict[str, Any] | None) -> Response:
        """The Requests API: an end user's (or an anonymous visitor's) own request.

        Zendesk documents `requester` as "required for anonymous requests"; with credentials the request is the
        caller's, so an agent's or admin's token makes that agent or admin the requester whatever `requester` says.
        No Idempotency-Key here: Zendesk documents the key for ticket creation (`POST /tickets`) only."""
        data = (await read_json(request)).get("request")
        if not isinstance(data, dict):
            raise invalid("base", "Request is missing", "BlankValue")
        spec = data.get("requester")
        # end-user view: these are not writable, and the requester is decided below
        data = {k: v for k, v in data.items() if k not in ("assignee_id", "status", "requester_id", "requester")}
        if actor is None:
            if not isinstance(spec, dict):
                raise invalid("requester", "Requester: cannot be blank", "BlankValue")
            data["requester"] = spec
        else:
            data["requester_id"] = actor["id"]
        ticket, _ = self._new_ticket(data, actor, channel="api", system=system_of(request))
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
        data = (await read_json(request)).get("ticket")
        if not isinstance(data, dict):
            raise invalid("base", "Ticket is missing", "BlankValue")
        ticket, audit = self._new_ticket(data, actor, channel="api", system=system_of(request))
        return JSONResponse({"ticket": self._ticket_json(ticket), "audit": audit}, status_code=201)

    async def list_tickets(self, request: Request, actor: dict[str, Any]) -> Response:
        """List Tickets: the account's tickets (deleted ones left out) by id, `sort_order=desc` newest first; one page
        (the emulator's accounts stay small)."""
        tickets = [self._ticket_json(t) for _, t in sorted(self.state["tickets"].items())]
        if request.query_params.get("sort_order") == "desc":
            tickets.reverse()
        return JSONResponse(list_body(request, "tickets", tickets))

    async def show_ticket(self, request: Request, actor: dict[str, Any]) -> Response:
        return JSONResponse({"ticket": self._ticket_json(self._get_ticket(request.path_params["id"]))})

    async def update_ticket(self, request: Request, actor: dict[str, Any]) -> Response:
        ticket = self._get_ticket(request.path_params["id"])
        self.limits.check(actor["id"], ticket["id"])
        data = (await read_json(request)).get("ticket")
        if not isinstance(data, dict):
            raise invalid("base", "Ticket is missing", "BlankValue")
        if ticket["status"] == "closed":
            raise invalid("status", "Status: closed prevents ticket update")
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
                raise invalid("status", "Status: cannot be set back to new")
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
            raise invalid("comment", "Comment: body cannot be blank", "BlankValue")
        author_id = (comment or {}).get("author_id") or actor["id"]
        if comment is not None and author_id not in self.state["users"]:
            raise invalid("base", "Comment author is invalid")
        if "status" not in data:
            if after["status"] == "new" and after["assignee_id"] is not None:
                after["status"] = "open"  # assigning a new ticket opens it
            if comment is not None and before["status"] == "solved":
                after["status"] = "open"  # a reply on a solved ticket reopens it
            if comment is not None and before["status"] == "pending" and author_id == ticket["requester_id"]:
                after["status"] = "open"  # the requester answered
        events: list[dict[str, Any]] = []
        added = None
        if comment is not None:
            public = comment.get("public", True) is not False
            added = self._add_comment(ticket, str(comment["body"]), public, author_id, "api", system_of(request))
            added["attachments"] = take_uploads(self.state, comment.get("uploads"))
            events.append(added)
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
        self.triggers.run(
            ticket,
            changes,
            update_type="Change",
            comment_public=None if comment is None else comment.get("public", True) is not False,
        )
        self.events.changed(ticket, changes, added, actor["id"])
        return JSONResponse({"ticket": self._ticket_json(ticket), "audit": audit})

    async def list_comments(self, request: Request, actor: dict[str, Any]) -> Response:
        ticket = self._get_ticket(request.path_params["id"])
        comments = list(self.state["comments"].get(ticket["id"], []))
        if request.query_params.get("sort_order") == "desc" or request.query_params.get("sort") == "-created_at":
            comments.reverse()
        return JSONResponse(list_body(request, "comments", comments))
