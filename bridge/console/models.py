"""Request bodies of the console's API (validation, 400 messages and the OpenAPI schemas)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from bridge.models import Body


class ConsoleSessionBody(Body):
    """Who the session is for: a helpdesk user (as the connector names users) and one of their tickets."""

    provider: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    userId: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    ticketId: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class ConsoleMessageBody(Body):
    """A text from the agent; the same `random` and text again within 5 minutes is the same message."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    random: Annotated[int, Field(ge=0, le=2**32 - 1)]
