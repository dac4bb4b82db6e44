"""Agents' replies on a Case: reading a CaseComment and deciding whether it goes to the customer.

The Apex trigger only says that a comment was added (`comment_added` with `caseId` and `commentId`); what the
customer sees is read here from Salesforce itself, so text carried in an event is never trusted. A comment is an
agent's public reply when it belongs to the Case, is published (`IsPublished`: private comments never reach the
customer), and was written by someone other than the integration user the bridge logs in as (whose comments are
the customer's own chat messages coming back).

Plain blocking functions of a logged-in simple-salesforce client: the connector runs them through
`SalesforceClient.call`, which turns failures into the bridge's errors and logs in again once on an expired session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bridge.api import PermanentError
from connectors.salesforce.errors import UPSTREAM

if TYPE_CHECKING:
    from simple_salesforce import Salesforce

_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_FIELDS = "Id, ParentId, CommentBody, IsPublished, CreatedById, CreatedBy.Name"


@dataclass(frozen=True)
class CaseComment:
    """A CaseComment as Salesforce holds it, with its author's display name (`User.Name`, None if unreadable)."""

    id: str
    case_id: str
    body: str
    published: bool
    author_id: str
    author_name: str | None


def _is_id(value: str, prefix: str) -> bool:
    return _ID.match(value) is not None and value.startswith(prefix)


def same_id(a: str, b: str) -> bool:
    # The first 15 characters are the Id (case-sensitive); the 18-character form only appends their checksum.
    return len(a) >= 15 and a[:15] == b[:15]


def read_comment(sf: Salesforce, comment_id: str) -> CaseComment | None:
    """The CaseComment `comment_id` (15 or 18 characters) and its author's name, in one SOQL query; None when no
    such comment exists, it was deleted, or `comment_id` is not a CaseComment Id (key prefix `00a`)."""
    if not _is_id(comment_id, "00a"):
        return None  # never put anything but a well-formed Id into the query
    soql = f"SELECT {_FIELDS} FROM CaseComment WHERE Id = '{comment_id}'"
    records: list[dict[str, Any]] = sf.query(soql).get("records") or []
    if not records:
        return None
    record = records[0]
    author = record.get("CreatedBy") or {}
    return CaseComment(
        id=str(record["Id"]),
        case_id=str(record.get("ParentId") or ""),
        body=str(record.get("CommentBody") or ""),
        published=record.get("IsPublished") is True,
        author_id=str(record.get("CreatedById") or ""),
        author_name=str(author.get("Name") or "") or None,
    )


def integration_user_id(sf: Salesforce) -> str:
    """The Id of the user this client is logged in as (the integration user), 18 characters.

    Read from `identity` in the REST API's resource list (`GET /services/data/vXX.X/`), the session user's identity
    URL `.../id/<org Id>/<user Id>`. It works after every login flow, through the same API and session as every
    other call, whereas simple-salesforce keeps neither the SOAP login's `<userId>` nor the OAuth answer's `id`.
    Call it once per login: the user never changes for a set of credentials.
    """
    resources = sf.restful("") or {}
    identity = str(resources.get("identity") or "")
    parts = urlsplit(identity).path.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-3] == "id" and _is_id(parts[-1], "005"):
        return parts[-1]
    raise PermanentError(
        "Salesforce's REST API did not say which user the bridge is logged in as (no identity URL in its "
        "resource list): check SALESFORCE_LOGIN_URL and SALESFORCE_API_VERSION",
        upstream=UPSTREAM,
    )


def is_agent_reply(comment: CaseComment, case_id: str, integration_user: str) -> bool:
    """Whether `comment` is an agent's public reply on Case `case_id`: it belongs to that Case, is published, and
    was not written by the integration user (the bridge itself). Ids may be in either form."""
    return (
        same_id(comment.case_id, case_id)
        and comment.published
        and _is_id(comment.author_id, "005")
        and not same_id(comment.author_id, integration_user)
    )
