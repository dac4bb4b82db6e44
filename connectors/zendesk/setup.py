"""Install (and remove) the Zendesk side of the bridge: one webhook, found by name.

The webhook "Helpdesk Bridge" subscribes to Zendesk's ticket events (assignment, status, comment added, soft and
permanent deletion, undeletion: `webhook.SUBSCRIPTIONS`), which Zendesk posts as JSON to
`<bridge_url>/webhooks/zendesk` with no trigger involved. The triggers earlier versions installed (assignee and status
changes) are removed; their deliveries are still understood by the bridge, so an install keeps working in between.
Zendesk signs each delivery with the webhook's signing secret: when ZENDESK_WEBHOOK_SECRET is set it is given to
Zendesk (a webhook's `signing_secret` is writable); otherwise the secret Zendesk generated is read back and printed
so the operator can set it.

Both functions are blocking (a CLI command runs them), idempotent, and return one line per thing they did.
"""

from __future__ import annotations

from typing import Any

from zenpy import Zenpy
from zenpy.lib.api_objects import Trigger, Webhook

from bridge.api import BridgeError
from connectors.zendesk.client import build_client
from connectors.zendesk.errors import translate
from connectors.zendesk.settings import ZendeskSettings
from connectors.zendesk.webhook import SUBSCRIPTIONS

WEBHOOK_NAME = "Helpdesk Bridge"
WEBHOOK_PATH = "/webhooks/zendesk"
# Triggers that earlier versions installed to post to the webhook: removed by `setup`, since the webhook now
# subscribes to Zendesk's ticket events (and a webhook with event subscriptions cannot serve triggers).
TRIGGER_PREFIX = "Helpdesk Bridge: "
POOL_SIZE = 4  # connections for the setup's few sequential calls


def webhook_spec(bridge_url: str, secret: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "description": "Ticket events for Helpdesk Bridge. Managed by `helpdesk-bridge`.",
        "endpoint": bridge_url.rstrip("/") + WEBHOOK_PATH,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": list(SUBSCRIPTIONS),
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


def setup(settings: ZendeskSettings, bridge_url: str) -> list[str]:
    """Create or update the webhook, subscribed to the ticket events the bridge needs, and remove the triggers
    earlier versions made; safe to run again."""
    zenpy, session = build_client(settings, POOL_SIZE)
    lines: list[str] = []
    try:
        # First, since Zendesk refuses to change a webhook that triggers still use.
        for trigger in _triggers(zenpy):
            _call("removing an old Zendesk trigger", lambda t=trigger: zenpy.triggers.delete(t))
            lines.append(f"trigger {trigger.title!r} ({trigger.id}) removed: the webhook subscribes to ticket events")
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        spec = webhook_spec(bridge_url, secret)
        existing = _webhooks(zenpy)
        if existing:
            webhook = existing[0]
            fields = ("endpoint", "http_method", "request_format", "status", "subscriptions")
            current = {k: _plain(getattr(webhook, k, None)) for k in fields}
            stale = current != {k: spec[k] for k in fields}
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
        lines.append("subscribed to: " + ", ".join(spec["subscriptions"]))

        actual = _secret(zenpy, webhook.id)
        if secret and actual == secret:
            lines.append("signing secret: Zendesk signs with ZENDESK_WEBHOOK_SECRET")
        elif actual:
            # Printed on purpose: the operator needs it, and this goes to their terminal, not to a log.
            lines.append(f"signing secret: set ZENDESK_WEBHOOK_SECRET={actual}")
        else:
            lines.append("signing secret: Zendesk did not reveal it; copy it from Admin Center > Webhooks")
        return lines
    finally:
        session.close()


def teardown(settings: ZendeskSettings) -> list[str]:
    """Remove the bridge's triggers, then its webhook (Zendesk refuses to delete a webhook a trigger uses)."""
    zenpy, session = build_client(settings, POOL_SIZE)
    lines: list[str] = []
    try:
        for trigger in _triggers(zenpy):
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
