"""The bridge's public API for connectors: everything a helpdesk plugin may use of the core, from this one module.

A connector package imports from `bridge.api` and from nowhere else in `bridge` (tests/test_boundary.py holds every
connector to that, the built-in ones included), so the core can change behind it. What is here:

- the protocol and its types (from `connectors.base`): `Connector`, `ConnectorSettings`, `NewTicket`, `TicketState`,
  `TicketStatus`, `Comment`, `Author`;
- the errors a connector raises, split by what the caller should do next, and `parse_retry_after` for its table;
- settings helpers: `base_url` and `readable_file` (validators), `ConfigError`, `load_connector_settings` (one
  connector's settings alone, for its commands).
"""

from __future__ import annotations

from bridge.config import ConfigError, base_url, load_connector_settings, readable_file
from bridge.errors import (
    BadRequest,
    BridgeError,
    Forbidden,
    NotFound,
    PermanentError,
    RetriableError,
    SignatureError,
    UpstreamError,
    parse_retry_after,
)
from connectors.base import (
    Author,
    Comment,
    Connector,
    ConnectorSettings,
    NewTicket,
    TicketState,
    TicketStatus,
)

__all__ = [
    "Author",
    "BadRequest",
    "BridgeError",
    "Comment",
    "ConfigError",
    "Connector",
    "ConnectorSettings",
    "Forbidden",
    "NewTicket",
    "NotFound",
    "PermanentError",
    "RetriableError",
    "SignatureError",
    "TicketState",
    "TicketStatus",
    "UpstreamError",
    "base_url",
    "load_connector_settings",
    "parse_retry_after",
    "readable_file",
]
