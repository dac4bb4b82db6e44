"""The Zendesk connector: zenpy behind the Connector protocol.

Modules: `connector` (the protocol methods), `settings` (ZENDESK_*), `ids` (`ZENDESK#<ticket id>` groups), `webhook`
(`POST /webhooks/zendesk`: ticket events and their signature), `replies` (a comment read back, and whether the bridge
wrote it), `console` (the sidebar app's way into the agent console), `commands` (`helpdesk-bridge zendesk
setup|teardown|app`), `setup` (the webhook in Zendesk, subscribed to ticket events), `client` and `session` (zenpy
reaching ZENDESK_URL), `errors` (the exception table), `sidebar_app` (the app's zip).
"""

from __future__ import annotations

from connectors.zendesk.connector import ZendeskConnector

__all__ = ["ZendeskConnector"]
