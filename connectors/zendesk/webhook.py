"""`POST /webhooks/zendesk`: the signed deliveries of the webhook `zendesk setup` installs, as ticket events.

Zendesk signs each delivery: base64 HMAC-SHA256(ZENDESK_WEBHOOK_SECRET, timestamp + body), with an ISO-8601
timestamp (Zendesk's "Verifying webhook authenticity"). Two bodies are accepted:

- Zendesk's own ticket events, which the webhook subscribes to (Zendesk's "Webhook event types: Ticket events"):
  `{"type": "zen:event-type:ticket.<event>", "id", "time", "subject": "zen:ticket:<id>", "detail": {the ticket},
  "event": {what changed}, "account_id", "zendesk_event_version"}`. An assignment, a status change, a soft or
  permanent deletion and an undeletion converge the group on the ticket as Zendesk has it now (a deleted ticket's
  group is dismissed, an undeleted one is reopened if it still can be); `comment_added` relays the comment if it is
  an agent's public reply (read back from Zendesk, never from the event). Other event types are answered and
  ignored. Ids may arrive as strings or numbers.
- the older trigger body `{"ticket_id", "assignee_id", "status", "event"}` (installs made before the event
  subscriptions): the ticket id, and its assignee and status as hints.

Convergence re-reads the ticket, whatever the delivery says.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from bridge.api import (
    WINDOW_SECONDS,
    BadRequest,
    EventKind,
    EventOutcome,
    SignatureError,
    TicketEvent,
    check_window,
    ok,
    parse_json,
    raw_body,
    settings_of,
    take_events,
)
from connectors.zendesk.ids import group_id_of
from connectors.zendesk.settings import ZendeskSettings

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
INVOCATION_HEADER = "X-Zendesk-Webhook-Invocation-Id"
_DIGITS = re.compile(r"^[0-9]{1,20}$")
EVENT_PREFIX = "zen:event-type:ticket."
# The ticket events the bridge acts on (what `zendesk setup` subscribes to), and what each becomes.
EVENTS = {
    "agent_assignment_changed": EventKind.CHANGED,
    "status_changed": EventKind.CHANGED,
    "soft_deleted": EventKind.CHANGED,  # convergence finds the ticket gone: the group is dismissed
    "permanently_deleted": EventKind.CHANGED,
    "undeleted": EventKind.CHANGED,  # the ticket is back: the group is reopened if it was not dismissed yet
    "comment_added": EventKind.COMMENT_ADDED,
}
SUBSCRIPTIONS = [EVENT_PREFIX + name for name in EVENTS]


def _id(value: Any, name: str) -> str:
    """A Zendesk id that may arrive as a string or a number."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not _DIGITS.match(text):
        raise BadRequest(f"{name} must be a Zendesk id (digits)", code="invalid_request")
    return text


def _small(value: Any) -> Any:
    """A hint kept for operators: short strings, numbers and null only."""
    return value[:64] if isinstance(value, str) else value if isinstance(value, (int, float, type(None))) else None


def ticket_event(data: dict[str, Any]) -> tuple[str, EventKind | None, str | None, dict[str, Any]]:
    """(ticket id, kind or None for an event the bridge ignores, comment id, hints) of a Zendesk ticket event."""
    name = str(data["type"])[len(EVENT_PREFIX) :]
    detail, event = data.get("detail"), data.get("event")
    if not isinstance(detail, dict) or not isinstance(event, dict):
        raise BadRequest("a Zendesk ticket event carries `detail` and `event` objects", code="invalid_request")
    subject = data.get("subject")
    ticket_id = _id(
        detail.get("id", subject.removeprefix("zen:ticket:") if isinstance(subject, str) else None), "detail.id"
    )
    hints = {
        "ticket_id": ticket_id,
        "event": name[:64],
        "status": str(detail.get("status") or "").lower()[:32],
        "previous": _small(event.get("previous")),
        "current": _small(event.get("current")),
    }
    kind = EVENTS.get(name)
    comment_id = None
    if kind is EventKind.COMMENT_ADDED:
        comment = event.get("comment")
        if not isinstance(comment, dict):
            raise BadRequest("a comment_added event carries `event.comment`", code="invalid_request")
        comment_id = _id(comment.get("id"), "event.comment.id")
        hints["comment_id"] = comment_id
        author = comment.get("author")
        if comment.get("is_public") is False or (isinstance(author, dict) and author.get("is_staff") is False):
            # An internal note, or an end user's comment (the customer's own chat messages among them): never an
            # agent's reply, so nothing to read back. Only ever a reason not to send, never one to send.
            kind = None
    return ticket_id, kind, comment_id, hints


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()).decode()


def verify(secret: str, signature: str | None, timestamp: str | None, body: bytes, now: float | None = None) -> None:
    """A delivery signed with `secret` within the window, else SignatureError with a reason a person can act on."""
    if not signature or not timestamp:
        raise SignatureError(f"Zendesk webhooks must carry {SIGNATURE_HEADER} and {TIMESTAMP_HEADER}")
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} must be an ISO-8601 UTC time") from None
    check_window(moment.timestamp(), now, TIMESTAMP_HEADER)
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.strip().encode()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match ZENDESK_WEBHOOK_SECRET")


def hints(data: Any) -> dict[str, str]:
    """The trigger's body, checked. Assignee and status are only hints: they are kept with the job for operators."""
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    ticket_id = str(data.get("ticket_id", "")).strip()
    if not _DIGITS.match(ticket_id):
        raise BadRequest("ticket_id must be a Zendesk ticket id (digits)", code="invalid_request")
    assignee = str(data.get("assignee_id") or "").strip()
    if assignee and not _DIGITS.match(assignee):
        raise BadRequest("assignee_id must be a Zendesk user id (digits) or empty", code="invalid_request")
    status = data.get("status") or ""
    if not isinstance(status, str):
        raise BadRequest("status must be a string", code="invalid_request")
    event = data.get("event") or ""
    if not isinstance(event, str):
        raise BadRequest("event must be a string", code="invalid_request")
    # {{ticket.status}} renders the status as Zendesk's UI writes it ("Open", "On-hold").
    return {"ticket_id": ticket_id, "assignee_id": assignee, "status": status.strip().lower()[:32], "event": event[:64]}


async def zendesk_webhook(request: Request) -> JSONResponse:
    settings = settings_of(request, ZendeskSettings)
    body = await raw_body(request)
    if settings.webhook_secret is None:
        raise SignatureError(
            "Zendesk webhooks are disabled: ZENDESK_WEBHOOK_SECRET is not set on the bridge", code="webhooks_disabled"
        )
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    verify(settings.webhook_secret.get_secret_value(), request.headers.get(SIGNATURE_HEADER), timestamp, body)
    data = parse_json(body)
    kind: EventKind | None = EventKind.CHANGED
    comment_id = None
    if isinstance(data, dict) and str(data.get("type") or "").startswith(EVENT_PREFIX):
        ticket_id, kind, comment_id, fields = ticket_event(data)
    else:
        fields = hints(data)
        ticket_id = fields["ticket_id"]
    if kind is None:
        return ok({"ok": True, "ignored": f"event {fields['event']} needs nothing", "groupId": group_id_of(ticket_id)})
    # Zendesk's invocation id names one delivery across its retries (each retry is signed afresh), but it is not
    # signed: a captured delivery replayed with another id (or none) must not become new work. So the signed content
    # (timestamp and body) is remembered for the signature's window as well, and a delivery is new only when both
    # are. The cost: the same body twice within one second (A -> B -> A) is taken as one delivery.
    content = hashlib.sha256((timestamp or "").encode() + b"." + body).hexdigest()
    invocation = (request.headers.get(INVOCATION_HEADER) or "").strip()[:200]
    event = TicketEvent(
        provider="zendesk",
        group_id=group_id_of(ticket_id),
        key=f"zendesk-invocation:{invocation}" if invocation else f"zendesk-webhook:{content}",
        kind=kind,
        reason=f"zendesk:{fields['event'] or 'webhook'}",
        hints=fields,
        comment_id=comment_id,
        linked_only=True,  # the triggers fire for every ticket of the account
        replay_key=f"zendesk:{content}",
        replay_until=time.time() + 2 * WINDOW_SECONDS + 1,  # the timestamp may be up to a window ahead of the clock
    )
    [receipt] = await take_events(request, [event])
    group_id = receipt.group_id
    if receipt.outcome is EventOutcome.IGNORED:
        return ok({"ok": True, "ignored": "no linked group", "groupId": group_id})
    if receipt.outcome is EventOutcome.DUPLICATE:
        return ok({"ok": True, "duplicate": True, "groupId": group_id})
    return ok({"ok": True, "queued": True, "groupId": group_id, "jobId": str(receipt.job_id)}, 202)
