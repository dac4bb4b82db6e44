"""Agents' replies on a Zendesk ticket: reading one comment back and deciding what it is.

Zendesk's ticket events say that a comment was added; what the customer may see is read here from the Ticket
Comments API (`GET /api/v2/tickets/{id}/comments`, newest first: the comment just added is on the first page), never
taken from the event. Zendesk records the User-Agent of the API call that wrote a comment in its
`metadata.system.client`: every call of the bridge carries USER_AGENT, so the comments it wrote (a customer's chat
message, an agent's console message, both under their own author) are known as the bridge's and never come back.

Plain blocking functions of the connector's requests session (zenpy's, with its authentication and base URL): the
connector runs them in its threads and maps their errors through its table.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import requests

from bridge.api import Attachment


def _version() -> str:
    try:
        return version("helpdesk-bridge")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0"


USER_AGENT = f"helpdesk-bridge/{_version()}"
COMMENT_PAGE = 100  # cursor pagination's largest page
MAX_PAGES = 50  # Zendesk keeps at most 5000 comments a ticket
AGENT_ROLES = ("agent", "admin")


def is_bridges(comment: dict[str, Any]) -> bool:
    """Whether the bridge wrote this comment through the API (its User-Agent, as Zendesk recorded it)."""
    system = (comment.get("metadata") or {}).get("system") or {}
    client = system.get("client") if isinstance(system, dict) else None
    return isinstance(client, str) and client.startswith(USER_AGENT.split("/")[0] + "/")


def find_comment(session: requests.Session, base_url: str, ticket: int, comment_id: int) -> dict[str, Any] | None:
    """The comment `comment_id` of ticket `ticket` as the Ticket Comments API shows it; None when the ticket has
    no such comment. A missing ticket raises (zenpy's table maps its 404)."""
    url: str | None = f"{base_url.rstrip('/')}/api/v2/tickets/{ticket}/comments.json"
    params: dict[str, Any] | None = {"sort_order": "desc", "page[size]": COMMENT_PAGE}
    for _ in range(MAX_PAGES):
        if url is None:
            break
        response = session.get(url, params=params, timeout=30)
        response.raise_for_status()
        body = response.json()
        for comment in body.get("comments") or []:
            if isinstance(comment, dict) and str(comment.get("id")) == str(comment_id):
                return comment
        more = (body.get("meta") or {}).get("has_more")
        url = (body.get("links") or {}).get("next") if more else None
        params = None  # the next link carries the cursor
    return None


def attachments(comment: dict[str, Any]) -> tuple[Attachment, ...]:
    """The comment's attachments in Zendesk's order: file name and `content_url` (which needs the API credentials
    or a signed-in agent to open, as Zendesk serves it)."""
    found = []
    for item in comment.get("attachments") or []:
        if isinstance(item, dict) and item.get("content_url"):
            found.append(Attachment(file_name=str(item.get("file_name") or ""), url=str(item["content_url"])))
    return tuple(found)


def plain_text(comment: dict[str, Any]) -> str:
    """The comment's words without markup: `plain_body` (Zendesk's rendering of the body as text), else `body`."""
    for key in ("plain_body", "body"):
        value = comment.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""
