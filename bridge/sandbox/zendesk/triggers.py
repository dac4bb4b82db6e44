"""Zendesk triggers: their API (create, list, show, update, delete) and how they run. A ticket change runs every
active trigger whose conditions match, in position order, and each `notification_webhook` action posts its body,
placeholders substituted, to the webhook (webhooks.py). `{{ticket.status}}` renders the way Zendesk's placeholder
does, capitalised (`Open`, `Solved`).

| route | what |
| --- | --- |
| `POST/GET /api/v2/triggers` | create, list (`active=`; cursor pagination with `page[...]`) |
| `GET/PUT/DELETE /api/v2/triggers/{id}` | show, update, delete |
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.zendesk.core import (
    API,
    STATUSES,
    Endpoint,
    api_routes,
    by_int_id,
    invalid,
    list_body,
    next_id,
    now_iso,
    read_json,
)
from bridge.sandbox.zendesk.webhooks import CONDITIONAL, Webhooks

# How Zendesk's {{ticket.status}} placeholder renders each status.
STATUS_PLACEHOLDER = {
    "new": "New",
    "open": "Open",
    "pending": "Pending",
    "hold": "On-hold",
    "solved": "Solved",
    "closed": "Closed",
}


class Triggers:
    def __init__(self, state: dict[str, Any], subdomain: str, webhooks: Webhooks):
        self.state, self.subdomain, self.webhooks = state, subdomain, webhooks

    def routes(self, endpoint: Endpoint) -> list[Route]:
        return [
            *api_routes(endpoint, "/triggers", self.create_trigger, ["POST"]),
            *api_routes(endpoint, "/triggers", self.list_triggers, ["GET"]),
            *api_routes(endpoint, "/triggers/{id}", self.show_trigger, ["GET"]),
            *api_routes(endpoint, "/triggers/{id}", self.update_trigger, ["PUT"]),
            *api_routes(endpoint, "/triggers/{id}", self.delete_trigger, ["DELETE"]),
        ]

    def _trigger_fields(self, data: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
        merged = dict(base or {})
        for key in ("title", "description", "active", "position", "conditions", "actions", "category_id"):
            if key in data:
                merged[key] = data[key]
        if not str(merged.get("title") or "").strip():
            raise invalid("title", "Title: cannot be blank", "BlankValue")
        if not merged.get("actions"):
            raise invalid("actions", "Actions: cannot be blank", "BlankValue")
        conditions = merged.get("conditions") or {}
        if not isinstance(conditions, dict) or not (conditions.get("all") or conditions.get("any")):
            raise invalid("conditions", "Conditions: must have at least one condition", "BlankValue")
        for action in merged["actions"]:
            if action.get("field") == "notification_webhook":
                value = action.get("value")
                if not (isinstance(value, list) and len(value) == 2 and value[0] in self.state["webhooks"]):
                    raise invalid("actions", "Notify webhook: webhook is invalid")
                if CONDITIONAL not in (self.state["webhooks"][value[0]].get("subscriptions") or []):
                    raise invalid("actions", "Notify webhook: the webhook is not subscribed to trigger events")
        merged["conditions"] = {
            "all": list(conditions.get("all") or []),
            "any": list(conditions.get("any") or []),
        }
        merged.setdefault("active", True)
        merged.setdefault("description", None)
        merged["raw_title"] = merged["title"]
        return merged

    async def create_trigger(self, request: Request, actor: dict[str, Any]) -> Response:
        data = (await read_json(request)).get("trigger")
        if not isinstance(data, dict):
            raise invalid("base", "Trigger is missing", "BlankValue")
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
        return JSONResponse(list_body(request, "triggers", found))

    async def show_trigger(self, request: Request, actor: dict[str, Any]) -> Response:
        return JSONResponse({"trigger": by_int_id(self.state["triggers"], request.path_params["id"])})

    async def update_trigger(self, request: Request, actor: dict[str, Any]) -> Response:
        trigger = by_int_id(self.state["triggers"], request.path_params["id"])
        data = (await read_json(request)).get("trigger")
        if not isinstance(data, dict):
            raise invalid("base", "Trigger is missing", "BlankValue")
        trigger.update(self._trigger_fields(data, trigger))
        trigger["updated_at"] = now_iso()
        return JSONResponse({"trigger": trigger})

    async def delete_trigger(self, request: Request, actor: dict[str, Any]) -> Response:
        trigger = by_int_id(self.state["triggers"], request.path_params["id"])
        del self.state["triggers"][trigger["id"]]
        return Response(status_code=204)

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

    def run(
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
                self.webhooks.schedule(webhook, ticket, self._render(str(template), ticket), trigger["id"])
