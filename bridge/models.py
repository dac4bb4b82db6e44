"""Request bodies of the HTTP API as pydantic models: validation, clear 400 messages, and the OpenAPI schemas."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from bridge.ids import normalize

# IM UserIDs: at most 32 bytes of letters, digits, '_' and '-' (Salesforce and Zendesk Ids fit).
UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
# IM group IDs: printable ASCII, at most 48 bytes.
GROUP_ID = re.compile(r"^[\x21-\x7e]{1,48}$")
GroupId = Annotated[str, StringConstraints(pattern=GROUP_ID.pattern)]
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# C0 and C1 control characters and DEL: PostgreSQL refuses NUL in text (the ticket would exist and its link could
# not be stored), and none of them belongs in a subject, a name or an address. A description keeps its line breaks
# (\n, and the \r of \r\n) and tabs.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CONTROL_EXCEPT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _refuse(pattern: re.Pattern[str], allowed: str) -> AfterValidator:
    def check(value: str) -> str:
        found = pattern.search(value)
        if found:
            raise ValueError(f"must not contain control characters{allowed} (found U+{ord(found.group()):04X})")
        return value

    return AfterValidator(check)


OneLine = _refuse(CONTROL, "")
Lines = _refuse(CONTROL_EXCEPT_LINES, " other than line breaks and tabs")


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
    """Either owner may be empty or absent: an assignment from no one (a new ticket) or to no one (unassigned)."""

    groupId: GroupId
    newOwnerId: UserId | None = None
    oldOwnerId: UserId | None = None

    @field_validator("newOwnerId", "oldOwnerId", mode="before")
    @classmethod
    def _no_owner(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class CaseInfo(Body):
    subject: Annotated[str, StringConstraints(min_length=1, max_length=255), OneLine]
    desc: Annotated[str, StringConstraints(max_length=32000), Lines] = ""
    name: Annotated[str, StringConstraints(max_length=255), OneLine] | None = None
    email: Annotated[str, StringConstraints(max_length=254), OneLine] | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value and not EMAIL.match(value):
            raise ValueError("email is not a well-formed address")
        return value or None


class LinkQuery(Body):
    """`GET /links?provider=&ticketId=`: the values a link can hold (printable ASCII), checked before any lookup."""

    provider: Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,32}$")]
    ticketId: Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,64}$")]


class CreateTicketBody(_Ids):
    userId: UserId
    caseInfo: CaseInfo


class UserSigBody(_Ids):
    userId: UserId
    expireSeconds: Annotated[int, Field(gt=0, le=180 * 86400)] = 86400
