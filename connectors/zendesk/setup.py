"""Install (and remove) the Zendesk side of the bridge: one webhook and two triggers, found by name.

The webhook "Helpdesk Bridge" posts JSON to `<bridge_url>/webhooks/zendesk`; the triggers send the contract's
body when a ticket's assignee or status changes. Zendesk signs each delivery with the webhook's signing
secret: when ZENDESK_WEBHOOK_SECRET is set it is given to Zendesk (a webhook's `signing_secret` is
writable); otherwise the secret Zendesk generated is read back and printed so the operator can set it.

Both functions are blocking (a CLI command runs them), idempotent, and return one line per thing they did.
"""

from __future__ import annotations

import json
from typing import Any

from zenpy import Zenpy
from zenpy.lib.api_objects import Trigger, Webhook

from bridge.api import BridgeError
from connectors.zendesk.client import build_client
from connectors.zendesk.errors import translate
from connectors.zendesk.settings import ZendeskSettings

WEBHOOK_NAME = "Helpdesk Bridge"
WEBHOOK_PATH = "/webhooks/zendesk"
TRIGGER_PREFIX = "Helpdesk Bridge: "
POOL_SIZE = 4  # connections for the setup's few sequential calls
# event name -> (trigger title, the ticket field whose change fires it)
TRIGGERS = {
    "assignee_changed": (TRIGGER_PREFIX + "assignee changed", "assignee_id"),
    "status_changed": (TRIGGER_PREFIX + "status changed", "status"),
}


def trigger_body(event: str) -> str:
    """The JSON the trigger posts (the contract's webhook body); Zendesk fills in the placeholders."""
    return json.dumps(
        {
            "ticket_id": "{{ticket.id}}",
            "assignee_id": "{{ticket.assignee.id}}",
            "status": "{{ticket.status}}",
            "event": event,
        }
    )


def trigger_spec(event: str, webhook_id: str) -> dict[str, Any]:
    title, field = TRIGGERS[event]
    return {
        "title": title,
        "description": "Tells Helpdesk Bridge to update the ticket's chat group. Managed by helpdesk-bridge.",
        "active": True,
        # "Ticket is updated" and "<field> changed": creation is handled by the bridge itself.
        "conditions": {
            "all": [
                {"field": "update_type", "operator": "is", "value": "Change"},
                {"field": field, "operator": "changed"},
            ],
            "any": [],
        },
        "actions": [{"field": "notification_webhook", "value": [webhook_id, trigger_body(event)]}],
    }


def webhook_spec(bridge_url: str, secret: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "description": "Ticket events for Helpdesk Bridge. Managed by `helpdesk-bridge`.",
        "endpoint": bridge_url.rstrip("/") + WEBHOOK_PATH,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": ["conditional_ticket_events"],
    }
    if secret:
        spec["signing_secret"] = {"algorithm": "SHA256", "secret": secret}
    return spec


def _call(action: str, fn: Any) -> Any:
    try:
        return fn()
    except BridgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - the connector's one table, here too
        raise translate(exc, action) from None


def _webhooks(zenpy: Zenpy) -> list[Webhook]:
    found = _call("listing Zendesk webhooks", lambda: list(zenpy.webhooks.list(filter=WEBHOOK_NAME)))
    return [w for w in found if getattr(w, "name", None) == WEBHOOK_NAME]


def _triggers(zenpy: Zenpy) -> list[Trigger]:
    found = _call("listing Zendesk triggers", lambda: list(zenpy.triggers()))
    return [t for t in found if str(getattr(t, "title", "")).startswith(TRIGGER_PREFIX)]


def _secret(zenpy: Zenpy, webhook_id: str) -> str | None:
    shown = _call("reading the webhook's signing secret", lambda: zenpy.webhooks.show_secret(webhook_id))
    return getattr(shown, "secret", None)


def _plain(value: Any) -> Any:
    return value.to_dict() if hasattr(value, "to_dict") else value


def _trigger_matches(trigger: Trigger, spec: dict[str, Any]) -> bool:
    conditions = _plain(trigger.conditions) or {}
    return (
        bool(trigger.active)
        and _plain(trigger.actions) == spec["actions"]
        and [dict(c, value=c.get("value")) for c in conditions.get("all") or []]
        == [dict(c, value=c.get("value")) for c in spec["conditions"]["all"]]
        and not conditions.get("any")
    )


def setup(settings: ZendeskSettings, bridge_url: str) -> list[str]:
    """Create or update the webhook and the triggers; safe to run again."""
    zenpy, session = build_client(settings, POOL_SIZE)
    lines: list[str] = []
    try:
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        spec = webhook_spec(bridge_url, secret)
        existing = _webhooks(zenpy)
        if existing:
            webhook = existing[0]
            current = {k: getattr(webhook, k, None) for k in ("endpoint", "http_method", "request_format", "status")}
            stale = current != {k: spec[k] for k in current}
            if secret and not stale:
                stale = _secret(zenpy, webhook.id) != secret
            if stale:
                _call("updating the Zendesk webhook", lambda: zenpy.webhooks.update(webhook.id, Webhook(**spec)))
                lines.append(f"webhook {WEBHOOK_NAME!r} ({webhook.id}) updated: POST {spec['endpoint']}")
            else:
                lines.append(f"webhook {WEBHOOK_NAME!r} ({webhook.id}) already up to date: POST {spec['endpoint']}")
            for extra in existing[1:]:
                _call("removing a duplicate Zendesk webhook", lambda w=extra: zenpy.webhooks.delete(w))
                lines.append(f"duplicate webhook {WEBHOOK_NAME!r} ({extra.id}) removed")
        else:
            webhook = _call("creating the Zendesk webhook", lambda: zenpy.webhooks.create(Webhook(**spec)))
            lines.append(f"webhook {WEBHOOK_NAME!r} ({webhook.id}) created: POST {spec['endpoint']}")

        actual = _secret(zenpy, webhook.id)
        if secret and actual == secret:
            lines.append("signing secret: Zendesk signs with ZENDESK_WEBHOOK_SECRET")
        elif actual:
            # Printed on purpose: the operator needs it, and this goes to their terminal, not to a log.
            lines.append(f"signing secret: set ZENDESK_WEBHOOK_SECRET={actual}")
        else:
            lines.append("signing secret: Zendesk did not reveal it; copy it from Admin Center > Webhooks")

        triggers = _triggers(zenpy)
        for event in TRIGGERS:
            tspec = trigger_spec(event, webhook.id)
            same_title = [t for t in triggers if t.title == tspec["title"]]
            if not same_title:
                created = _call("creating a Zendesk trigger", lambda s=tspec: zenpy.triggers.create(Trigger(**s)))
                lines.append(f"trigger {tspec['title']!r} ({created.id}) created")
                continue
            trigger = same_title[0]
            if _trigger_matches(trigger, tspec):
                lines.append(f"trigger {tspec['title']!r} ({trigger.id}) already up to date")
            else:
                _call(
                    "updating a Zendesk trigger",
                    lambda s=tspec, t=trigger: zenpy.triggers.update(Trigger(id=t.id, **s)),
                )
                lines.append(f"trigger {tspec['title']!r} ({trigger.id}) updated")
            for extra in same_title[1:]:
                _call("removing a duplicate Zendesk trigger", lambda t=extra: zenpy.triggers.delete(t))
                lines.append(f"duplicate trigger {tspec['title']!r} ({extra.id}) removed")
        return lines
    finally:
        session.close()


def teardown(settings: ZendeskSettings) -> list[str]:
    """Remove the bridge's triggers, then its webhook (Zendesk refuses to delete a webhook a trigger uses)."""
    zenpy, session = build_client(settings, POOL_SIZE)
    lines: list[str] = []
    try:
        titles = {title for title, _ in TRIGGERS.values()}
        for trigger in _triggers(zenpy):
            if trigger.title in titles:
                _call("deleting a Zendesk trigger", lambda t=trigger: zenpy.triggers.delete(t))
                lines.append(f"trigger {trigger.title!r} ({trigger.id}) deleted")
        for webhook in _webhooks(zenpy):
            _call("deleting the Zendesk webhook", lambda w=webhook: zenpy.webhooks.delete(w))
            lines.append(f"webhook {WEBHOOK_NAME!r} ({webhook.id}) deleted")
        if not lines:
            lines.append("nothing to remove: no Helpdesk Bridge webhook or triggers in Zendesk")
        return lines
    finally:
        session.close()
