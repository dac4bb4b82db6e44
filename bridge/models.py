"""Request bodies of the HTTP API as pydantic models: validation, clear 400 messages, and the OpenAPI schemas."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from bridge.ids import normalize

# IM UserIDs: at most 32 bytes of letters, digits, '_' and '-' (Salesforce and Zendesk Ids fit).
UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
# IM group IDs: printable ASCII, at most 48 bytes.
GroupId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,48}$")]
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, str_strip_whitespace=True)


class _Ids(Body):
    @field_validator("groupId", "userId", "newOwnerId", "oldOwnerId", check_fields=False)
    @classmethod
    def _normalize(cls, value: str | None) -> str | None:
        return normalize(value) if value else value


class GroupBody(_Ids):
    groupId: GroupId


class MemberBody(_Ids):
    groupId: GroupId
    userId: UserId


class AssignmentBody(_Ids):
    groupId: GroupId
    newOwnerId: UserId | None = None
    oldOwnerId: UserId | None = None


class CaseInfo(Body):
    subject: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    desc: Annotated[str, StringConstraints(max_length=32000)] = ""
    name: Annotated[str, StringConstraints(max_length=255)] | None = None
    email: Annotated[str, StringConstraints(max_length=254)] | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value and not EMAIL.match(value):
            raise ValueError("email is not a well-formed address")
        return value or None


class CreateTicketBody(_Ids):
    userId: UserId
    caseInfo: CaseInfo


class UserSigBody(_Ids):
    userId: UserId
    expireSeconds: Annotated[int, Field(gt=0, le=180 * 86400)] = 86400


class SalesforceEvent(Body):
    model_config = ConfigDict(extra="ignore", strict=True, str_strip_whitespace=True)

    type: Literal["owner_changed", "work_accepted", "status_changed", "deleted"]
    eventId: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    caseId: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")]
    ownerId: str | None = None
    previousOwnerId: str | None = None
    status: str | None = None
    isClosed: bool | None = None
    userId: str | None = None

    @field_validator("caseId", "ownerId", "previousOwnerId", "userId")
    @classmethod
    def _normalize(cls, value: str | None) -> str | None:
        return normalize(value) if value else value


class SalesforceEvents(Body):
    events: Annotated[list[SalesforceEvent], Field(min_length=1, max_length=200)]
