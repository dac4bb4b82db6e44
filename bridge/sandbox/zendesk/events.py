"""Zendesk's ticket events for webhooks that subscribe to them (a webhook's `subscriptions`), without triggers.

What a ticket change emits, in the shape of Zendesk's "Webhook event types" / "Ticket events" reference: one JSON body
per event, posted (signed as every webhook delivery is, webhooks.py) to each active webhook subscribed to its type.

```
{"type": "zen:event-type:ticket.agent_assignment_changed", "account_id": 9000001, "id": "<uuid>",
 "time": "2099-07-04T05:33:18Z", "zendesk_event_version": "2022-11-06", "subject": "zen:ticket:42",
 "detail": {"id": "42", "assignee_id": "10002", "requester_id": "10004", "status": "OPEN", ...},
 "event": {"previous": null, "current": "10002", "meta": {"sequence": {"id", "position"}}}}
```

`detail` carries the ticket's fields with ids as strings and the status, priority and type in capitals;
`event` is what changed: `previous`/`current` for an assignment (user ids as strings) or a status (capitals), the
comment for `comment_added` (`id`, `body`, `is_public`, `author: {id, is_staff, name}`, its ids as numbers, as
Zendesk's published example has them), nothing more for a soft deletion, an undeletion or a permanent deletion.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from bridge.sandbox.zendesk.core import now_iso
from bridge.sandbox.zendesk.webhooks import ACCOUNT_ID, Webhooks

PREFIX = "zen:event-type:ticket."
EVENT_VERSION = "2022-11-06"
ASSIGNMENT = PREFIX + "agent_assignment_changed"
STATUS = PREFIX + "status_changed"
COMMENT = PREFIX + "comment_added"
SOFT_DELETED = PREFIX + "soft_deleted"
PERMANENTLY_DELETED = PREFIX + "permanently_deleted"
UNDELETED = PREFIX + "undeleted"
TYPES = (ASSIGNMENT, STATUS, COMMENT, SOFT_DELETED, PERMANENTLY_DELETED, UNDELETED)


def _id(value: Any) -> str | None:
    return None if value is None else str(value)


def _caps(value: Any) -> str | None:
    return None if value is None else str(value).upper()


def detail(ticket: dict[str, Any], actor_id: Any) -> dict[str, Any]:
    """The ticket as a ticket event's `detail` shows it."""
    return {
        "actor_id": _id(actor_id),
        "assignee_id": _id(ticket.get("assignee_id")),
        "brand_id": _id(ticket.get("brand_id")),
        "created_at": ticket.get("created_at"),
        "custom_status": None,
        "description": ticket.get("description"),
        "external_id": _id(ticket.get("external_id")),
        "form_id": None,
        "group_id": _id(ticket.get("group_id")),
        "id": str(ticket["id"]),
        "is_public": bool(ticket.get("is_public", True)),
        "organization_id": _id(ticket.get("organization_id")),
        "priority": _caps(ticket.get("priority")),
        "requester_id": _id(ticket.get("requester_id")),
        "status": "DELETED" if ticket.get("deleted") else _caps(ticket.get("status")),
        "subject": ticket.get("subject"),
        "submitter_id": _id(ticket.get("submitter_id")),
        "tags": list(ticket.get("tags") or []),
        "type": _caps(ticket.get("type")),
        "updated_at": ticket.get("updated_at"),
        "via": {"channel": (ticket.get("via") or {}).get("channel", "api")},
    }


class TicketEvents:
    def __init__(self, state: dict[str, Any], webhooks: Webhooks):
        self.state, self.webhooks = state, webhooks

    def emit(self, kind: str, ticket: dict[str, Any], actor_id: Any, events: list[dict[str, Any]]) -> None:
        """Deliver `events` (the `event` objects of one action, in order) of type `kind` to its subscribers."""
        subscribers = [
            w
            for w in self.state["webhooks"].values()
            if w.get("status") == "active" and kind in (w.get("subscriptions") or [])
        ]
        if not subscribers:
            return
        sequence = uuid.uuid4().hex.upper()
        for position, event in enumerate(events, start=1):
            body = {
                "type": kind,
                "account_id": ACCOUNT_ID,
                "id": str(uuid.uuid4()),
                "time": now_iso(),
                "zendesk_event_version": EVENT_VERSION,
                "subject": f"zen:ticket:{ticket['id']}",
                "detail": detail(ticket, actor_id),
                "event": {**event, "meta": {"sequence": {"id": sequence, "position": position}}},
            }
            for webhook in subscribers:
                self.webhooks.schedule(webhook, ticket, json.dumps(body))

    def changed(
        self, ticket: dict[str, Any], changes: dict[str, Any], comment: dict[str, Any] | None, actor_id: Any
    ) -> None:
        """A ticket created or updated: its assignment, its status (previous values in `changes`), its comment."""
        if "assignee_id" in changes:
            previous = {"previous": _id(changes["assignee_id"]), "current": _id(ticket["assignee_id"])}
            self.emit(ASSIGNMENT, ticket, actor_id, [previous])
        if "status" in changes:
            previous = {"previous": _caps(changes["status"]), "current": _caps(ticket["status"])}
            self.emit(STATUS, ticket, actor_id, [previous])
        if comment is not None:
            author = self.state["users"].get(comment["author_id"]) or {}
            self.emit(
                COMMENT,
                ticket,
                actor_id,
                [
                    {
                        "comment": {
                            "id": comment["id"],
                            "body": comment["body"],
                            "is_public": bool(comment["public"]),
                            "author": {
                                "id": comment["author_id"],
                                "is_staff": author.get("role") in ("agent", "admin"),
                                "name": author.get("name"),
                            },
                        }
                    }
                ],
            )
