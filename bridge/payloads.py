"""One pydantic model per job kind: what a job carries, checked when it is stored and again when it is read back.

Fields are named as they are stored (the JSON in `job.payload_json`); a step a job records as done (its checkpoint)
is a field too, so a retry knows what is left. `of(job)` reads a stored job's payload; `stored()` is what is written.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.errors import PermanentError
from bridge.models import CreateTicketBody
from bridge.states import JobKind
from bridge.store import Job


class JobPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    kind: ClassVar[JobKind]

    @classmethod
    def of(cls, job: Job) -> Self:
        """The payload of a stored job, checked against this kind's model: one that does not fit never will."""
        try:
            return cls.model_validate_json(job.payload_json)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"]) or "payload"
            raise PermanentError(
                f"job {job.id} ({job.kind}) has a payload that is not a {cls.__name__}: {where}: {problem['msg']}",
                upstream="bridge",
            ) from None

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def but(self, **changes: Any) -> Self:
        """A copy with `changes` (stored field names), checked like the original."""
        return self.model_validate({**self.stored(), **changes})


class Join(JobPayload):
    kind = JobKind.JOIN
    groupId: str
    userId: str


class Leave(JobPayload):
    kind = JobKind.LEAVE
    groupId: str
    userId: str


class Assignment(JobPayload):
    """A seed's /assignment callout: converge a linked group, else apply the delta."""

    kind = JobKind.ASSIGNMENT
    groupId: str
    newOwnerId: str | None = None
    oldOwnerId: str | None = None


class Converge(JobPayload):
    """Make a group follow its ticket. `event` holds the helpdesk's own words for operators (TicketEvent.hints)."""

    kind = JobKind.CONVERGE
    groupId: str
    reason: str | None = None
    event: dict[str, Any] | None = None
    greet: bool = False  # a new ticket's group: greet the customer first (once: `done`)
    done: list[str] = Field(default_factory=list)


class DeleteGroup(JobPayload):
    """Dismiss a group: /deletegroup, or its ticket was deleted (then with the event's reason and hints)."""

    kind = JobKind.DELETE_GROUP
    groupId: str
    reason: str | None = None
    event: dict[str, Any] | None = None


class CreateTicket(JobPayload):
    """Open a ticket, then its group. `hash` tells a repeated Idempotency-Key with another body; `ticketId`, `groupId`
    and `done` are the steps recorded so far."""

    kind = JobKind.CREATE_TICKET
    provider: str
    request: CreateTicketBody
    hash: str
    requestKey: str
    caller: str
    ticketId: str | None = None
    groupId: str | None = None
    done: list[str] = Field(default_factory=list)


class SyncMessage(JobPayload):
    """Append a group's chat message to its ticket (with those queued behind it, in one comment); `outcome` once the
    comment is written (`commentId`: one comment per message, as stored before batches)."""

    kind = JobKind.SYNC_MESSAGE
    groupId: str
    sender: str = Field(alias="from")
    msgSeq: int
    msgTime: int | None = None
    commentId: str | None = None
    outcome: dict[str, Any] | None = None


class RelayReply(JobPayload):
    """Send an agent's public comment into the ticket's group (bridge/replies.py)."""

    kind = JobKind.RELAY_REPLY
    groupId: str
    commentId: str
    reason: str | None = None
    event: dict[str, Any] | None = None


class AgentName(JobPayload):
    """Read an agent's name again after the helpdesk failed to answer (bridge/agents.py)."""

    kind = JobKind.AGENT_NAME
    provider: str
    account: str


GroupJob = Join | Leave | DeleteGroup | Assignment  # the seed's group primitives

PAYLOADS: dict[JobKind, type[JobPayload]] = {
    model.kind: model
    for model in (Join, Leave, Assignment, Converge, DeleteGroup, CreateTicket, SyncMessage, RelayReply, AgentName)
}
