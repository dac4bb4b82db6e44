"""What the service's use cases answer, typed: the routes turn these into HTTP answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.store import Job


@dataclass
class Outcome:
    """What a submitted job came to: done (with its result) or queued for later."""

    job: Job
    queued: bool
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupChange:
    """A seed group primitive: applied (with the agents it added and removed), or queued as job `job_id`."""

    queued: bool
    job_id: int | None
    joined: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TicketOpened:
    """A ticket with its group: open now, or queued as job `job_id` (the ticket exists, its group is on the way)."""

    provider: str
    ticket_id: str
    group_id: str
    queued: bool
    job_id: int | None


@dataclass(frozen=True)
class IssuedUserSig:
    user_id: str
    user_sig: str
    expires_at: int
    sdk_app_id: int
