"""The Zendesk connector: zenpy behind the Connector protocol; `setup` installs the webhook and triggers."""

from __future__ import annotations

from connectors.zendesk.connector import ZendeskConnector

__all__ = ["ZendeskConnector"]
