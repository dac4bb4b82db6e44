"""The bridge's public API for connectors: everything a helpdesk plugin may use of the core, from this one module.

A connector package imports from `bridge.api` and from nowhere else in `bridge` (tests/test_boundary.py holds every
connector to that, the built-in ones included), so the core can change behind it. What is here:

- the protocol and its types (from `connectors.base`): `Connector`, `ConnectorSettings`, `NewTicket`, `TicketState`,
  `TicketStatus`, `Comment`, `Author`, for batched comments `UpdateBudget` and `merge_runs`, and for inbound routes
  `Endpoint`, `TicketEvent`, `EventKind`, `EventReceipt`, `EventOutcome`;
- the errors a connector raises, split by what the caller should do next, and `parse_retry_after` for its table;
- settings helpers: `base_url` and `readable_file` (validators), `ConfigError`, `load_connector_settings` (one
  connector's settings alone, for its commands);
- for a connector's routes: request parsing (`raw_body`, `parse_json`, `validate` with the request models' `Body`,
  `ok`), signed calls (`check_signed`, and `SIGNED_CALL`, its OpenAPI security scheme), `check_window` for a
  helpdesk's own signatures, `settings_of` (the connector's settings), `require_enabled`, and `take_events`, which
  hands neutral events to the service;
- for a connector's way into the agent console (a helpdesk app that vouches for its agent): `console_page` (a page
  that loads the console), `issue_console_grant` and `console_grant` (the step between the helpdesk proving the agent
  and the page naming its ticket), `open_console_session` (a session for that agent on that ticket).
"""

from __future__ import annotations

from importlib.resources.abc import Traversable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import HTMLResponse

from bridge.auth import WINDOW_SECONDS, check_signed, check_window
from bridge.config import ConfigError, base_url, load_connector_settings, readable_file
from bridge.console import auth as console_auth
from bridge.console.routes import console_of, page
from bridge.errors import (
    BadRequest,
    BridgeError,
    Forbidden,
    NotFound,
    PermanentError,
    RetriableError,
    SignatureError,
    UnknownConnector,
    UpstreamError,
    parse_retry_after,
)
from bridge.models import Body
from bridge.parsing import parse_json, raw_body, validate
from bridge.routes import bridge_of, ok
from connectors.base import (
    Attachment,
    Author,
    Comment,
    Connector,
    ConnectorSettings,
    Endpoint,
    EventKind,
    EventOutcome,
    EventReceipt,
    NewTicket,
    Reply,
    TicketEvent,
    TicketState,
    TicketStatus,
    UpdateBudget,
    merge_runs,
)

S = TypeVar("S", bound=ConnectorSettings)
SIGNED_CALL = "signedCall"  # the OpenAPI security scheme of signed calls, for an Endpoint's `security`


def settings_of(request: Request, settings_class: type[S]) -> S:
    """The running bridge's settings of the connector whose settings class this is (enabled or not)."""
    for settings in bridge_of(request).settings.connectors.values():
        if isinstance(settings, settings_class):
            return settings
    raise UnknownConnector(f"no connector with {settings_class.__name__} is installed")


def require_enabled(request: Request, name: str) -> None:
    """404 `unknown_connector` unless the connector `name` is enabled."""
    bridge_of(request).connector(name)


async def take_events(request: Request, events: list[TicketEvent]) -> list[EventReceipt]:
    """Hand the events to the service, which stores each as the next job of its group (see TicketEvent)."""
    return await bridge_of(request).take_events(events)


def console_page(
    template: Traversable, bootstrap: dict[str, Any], script_origins: tuple[str, ...] = ()
) -> HTMLResponse:
    """A page that loads the agent console: `template` (HTML with `{{bootstrap}}` where the console's bootstrap JSON
    goes, and the console's script), served with a Content-Security-Policy allowing `script_origins` too."""
    return page(template, bootstrap, script_origins)


def issue_console_grant(request: Request, provider: str, user_id: str) -> str:
    """A short-lived grant for a helpdesk user the connector has proven (its helpdesk vouched for them), to be traded,
    once the page knows its ticket, for a session (`console_grant`, then `open_console_session`)."""
    return console_auth.issue_grant(console_of(request).key, provider, user_id)


def console_grant(request: Request) -> tuple[str, str]:
    """(provider, helpdesk user id) of the grant the request carries as `Authorization: Bearer`; 401 otherwise."""
    return console_auth.verify_grant(console_of(request).key, console_auth.bearer(request.headers.get("authorization")))


async def open_console_session(request: Request, provider: str, user_id: str, ticket_id: str) -> dict[str, Any]:
    """A console session for a helpdesk user on one of their tickets (403 `not_your_ticket` unless the helpdesk, read
    now, says they have it): `{"token", "expiresAt", "groupId", "agent"}`."""
    return await console_of(request).open_session(provider, user_id, ticket_id)


__all__ = [
    "SIGNED_CALL",
    "WINDOW_SECONDS",
    "Attachment",
    "Author",
    "BadRequest",
    "Body",
    "BridgeError",
    "Comment",
    "ConfigError",
    "Connector",
    "ConnectorSettings",
    "Endpoint",
    "EventKind",
    "EventOutcome",
    "EventReceipt",
    "Forbidden",
    "NewTicket",
    "NotFound",
    "PermanentError",
    "Reply",
    "RetriableError",
    "SignatureError",
    "TicketEvent",
    "TicketState",
    "TicketStatus",
    "UpdateBudget",
    "UpstreamError",
    "base_url",
    "check_signed",
    "check_window",
    "console_grant",
    "console_page",
    "issue_console_grant",
    "open_console_session",
    "load_connector_settings",
    "merge_runs",
    "ok",
    "parse_json",
    "parse_retry_after",
    "raw_body",
    "readable_file",
    "require_enabled",
    "settings_of",
    "take_events",
    "validate",
]
