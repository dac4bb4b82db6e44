"""Deleting Zendesk tickets: `DELETE /api/v2/tickets/{id}` moves a ticket to the deleted tickets (a soft deletion,
restorable for 30 days), and the Deleted Tickets API lists them, restores one, or deletes one for good. Each step
emits its ticket event to the webhooks subscribed to it (events.py); no trigger fires on deletion.

| route | what |
| --- | --- |
| `DELETE /api/v2/tickets/{id}` | soft delete: 204, `ticket.soft_deleted` |
| `GET /api/v2/deleted_tickets` | `id`, `subject`, `description`, `actor`, `deleted_at`, `previous_state` each |
| `PUT /api/v2/deleted_tickets/{id}/restore` | back among the tickets, as it was: 200, `ticket.undeleted` |
| `DELETE /api/v2/deleted_tickets/{id}` | gone for good: 200, a completed `job_status`, `ticket.permanently_deleted` |
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.zendesk.core import Endpoint, api_routes, by_int_id, list_body, now_iso
from bridge.sandbox.zendesk.events import PERMANENTLY_DELETED, SOFT_DELETED, UNDELETED, TicketEvents


class DeletedTickets:
    def __init__(self, state: dict[str, Any], events: TicketEvents):
        self.state, self.events = state, events

    def routes(self, endpoint: Endpoint) -> list[Route]:
        return [
            *api_routes(endpoint, "/tickets/{id}", self.delete_ticket, ["DELETE"]),
            *api_routes(endpoint, "/deleted_tickets", self.list_deleted, ["GET"]),
            *api_routes(endpoint, "/deleted_tickets/{id}/restore", self.restore, ["PUT"]),
            *api_routes(endpoint, "/deleted_tickets/{id}", self.delete_for_good, ["DELETE"]),
        ]

    async def delete_ticket(self, request: Request, actor: dict[str, Any]) -> Response:
        ticket = by_int_id(self.state["tickets"], request.path_params["id"])
        del self.state["tickets"][ticket["id"]]
        ticket["deleted_at"], ticket["deleted_by"] = now_iso(), actor["id"]
        self.state["deleted_tickets"][ticket["id"]] = ticket
        self.events.emit(SOFT_DELETED, {**ticket, "deleted": True}, actor["id"], [{}])
        return Response(status_code=204)

    async def list_deleted(self, request: Request, actor: dict[str, Any]) -> Response:
        users = self.state["users"]
        listed = [
            {
                "id": t["id"],
                "subject": t["subject"],
                "description": t["description"],
                "actor": {"id": t["deleted_by"], "name": (users.get(t["deleted_by"]) or {}).get("name")},
                "deleted_at": t["deleted_at"],
                "previous_state": t["status"],
            }
            for t in self.state["deleted_tickets"].values()
        ]
        return JSONResponse(list_body(request, "deleted_tickets", listed))

    async def restore(self, request: Request, actor: dict[str, Any]) -> Response:
        ticket = by_int_id(self.state["deleted_tickets"], request.path_params["id"])
        del self.state["deleted_tickets"][ticket["id"]]
        ticket.pop("deleted_at", None)
        ticket.pop("deleted_by", None)
        ticket["updated_at"] = now_iso()
        self.state["tickets"][ticket["id"]] = ticket
        self.events.emit(UNDELETED, ticket, actor["id"], [{}])
        return Response(status_code=200)

    async def delete_for_good(self, request: Request, actor: dict[str, Any]) -> Response:
        ticket = by_int_id(self.state["deleted_tickets"], request.path_params["id"])
        del self.state["deleted_tickets"][ticket["id"]]
        self.state["comments"].pop(ticket["id"], None)
        self.state["audits"].pop(ticket["id"], None)
        self.events.emit(PERMANENTLY_DELETED, {**ticket, "deleted": True}, actor["id"], [{}])
        job = {"id": uuid.uuid4().hex, "job_type": "bulk_delete", "status": "completed", "total": 1, "progress": 1}
        return JSONResponse({"job_status": job})
