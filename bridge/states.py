"""The states and kinds the bridge stores as text: a link's state, a job's status and kind. Each enum's values are
the stored strings (changing one needs a migration)."""

from __future__ import annotations

from enum import StrEnum


class LinkState(StrEnum):
    """A link's state, stored as its value."""

    PENDING = "pending"  # the ticket exists, its group is being opened
    OPEN = "open"
    SOLVED = "solved"
    CLOSED = "closed"
    DISMISSED = "dismissed"  # the group is gone (deleted ticket, /deletegroup)


class JobStatus(StrEnum):
    """A job's status, stored as its value (see bridge/jobs.py)."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # failed permanently while its caller waited, and the caller was told
    DEAD = "dead"  # failed permanently, or retried until the schedule ran out


class JobKind(StrEnum):
    """What a job does, stored as its value; each kind has one handler (bridge/service.py)."""

    JOIN = "join"
    LEAVE = "leave"
    DELETE_GROUP = "delete_group"
    CONVERGE = "converge"
    CREATE_TICKET = "createticket"
    ASSIGNMENT = "assignment"
    SYNC_MESSAGE = "sync_message"
    RELAY_REPLY = "relay_reply"  # an agent's public reply sent into the chat (bridge/replies.py)
    AGENT_NAME = "agent_name"  # read an agent's name again after the helpdesk failed to answer (bridge/agents.py)
