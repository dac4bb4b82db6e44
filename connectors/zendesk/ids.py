"""Zendesk's ids in the bridge: a ticket's IM group is `ZENDESK#<ticket id>`."""

from __future__ import annotations

import re

GROUP_PREFIX = "ZENDESK#"
DIGITS = re.compile(r"^[0-9]+$")
_GROUP = re.compile("^" + re.escape(GROUP_PREFIX) + "([0-9]+)$")


def group_id_of(ticket_id: str) -> str:
    """The IM group ID of a Zendesk ticket."""
    return f"{GROUP_PREFIX}{ticket_id}"


def ticket_id_of(group_id: str) -> str | None:
    """The ticket id of a Zendesk ticket's group ID; None for any other group."""
    match = _GROUP.match(group_id)
    return match.group(1) if match else None
