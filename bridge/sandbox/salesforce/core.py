"""What every module of the Salesforce emulator shares: the org's plain-dict state (`fresh_state`), Ids, sessions,
and the error answers (REST's JSON list, SOAP's fault)."""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

REQUEST_KEY_FIELD = "Bridge_Request_Key__c"
ORG_ID = "00D5g000004ORGA"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-5]{3})?$")


class ApiError(Exception):
    """A REST error: rendered as Salesforce's JSON list."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or []

    def response(self) -> JSONResponse:
        return JSONResponse(
            [{"message": self.message, "errorCode": self.code, "fields": self.fields}],
            status_code=self.status,
        )


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def soap_fault(code: str, message: str, status: int = 500) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><soapenv:Fault>"
        f"<faultcode>sf:{code}</faultcode><faultstring>{code}: {escape(message)}</faultstring>"
        '<detail><sf:LoginFault xsi:type="sf:LoginFault">'
        f"<sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>{escape(message)}</sf:exceptionMessage>"
        "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Response(body, status_code=status, media_type="text/xml; charset=utf-8")


def checksum(id15: str) -> str:
    """The three characters Salesforce appends to a 15-character Id: one per five-character chunk, a bit per
    upper-case letter. The emulator's own reading of the rule, not the bridge's: it must not share the bridge's bugs."""
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, char in enumerate(id15[start : start + 5]) if "A" <= char <= "Z")
        suffix += _CHECKSUM_ALPHABET[bits]
    return suffix


def make_id(prefix: str, number: int) -> str:
    """An 18-character Id: key prefix, a fixed pod part, a base-62 counter and the checksum."""
    digits = ""
    for _ in range(6):
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
    id15 = f"{prefix}5g0000{digits}"
    return id15 + checksum(id15)


def canonical_id(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character Id (checksum suffix is case-insensitive), else None."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        return None
    expected = checksum(value[:15])
    if len(value) == 18 and value[15:].upper() != expected:
        return None
    return value[:15] + expected


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def fresh_state(username: str) -> dict[str, Any]:
    """The org at start: the API user and two agents, a support queue, no cases."""
    state: dict[str, Any] = {
        "org_id": ORG_ID,
        "counter": {"value": 0},
        "users": {},
        "queues": {},
        "api_user_id": None,
        "agent_ids": [],
        "default_queue_id": None,
        "cases": {},
        "case_comments": {},
        "case_number": 1000,
        "sessions": {},
        "requests": [],
        "logins": [],
        "api_limit": None,
        "api_usage": 0,
        "case_external_id_fields": [REQUEST_KEY_FIELD],
    }
    for first, last, login in (
        ("Integration", "User", username),
        ("Alice", "Agent", "alice.agent@example.com"),
        ("Bob", "Agent", "bob.agent@example.com"),
    ):
        uid = next_id(state, "005")
        state["users"][uid] = {
            "Id": uid,
            "Username": login,
            "FirstName": first,
            "LastName": last,
            "Name": f"{first} {last}",
            "Email": login,
            "IsActive": True,
            "UserType": "Standard",
        }
    qid = next_id(state, "00G")
    state["queues"][qid] = {
        "Id": qid,
        "Name": "Support Queue",
        "DeveloperName": "Support_Queue",
        "Type": "Queue",
        "Email": None,
    }
    users = list(state["users"])
    state["api_user_id"], state["agent_ids"], state["default_queue_id"] = users[0], users[1:], qid
    return state


def next_id(state: dict[str, Any], prefix: str) -> str:
    state["counter"]["value"] += 1
    return make_id(prefix, state["counter"]["value"])


def base_url(request: Request) -> str:
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


def identity_url(request: Request, user_id: str) -> str:
    """The user's identity URL, `<host>/id/<org Id>/<user Id>`, as the OAuth token answer (`id`) and the REST
    resource list (`identity`) give it."""
    return f"{base_url(request)}/id/{ORG_ID}{checksum(ORG_ID)}/{user_id}"


def new_session(state: dict[str, Any], user_id: str, flow: str) -> str:
    token = f"{ORG_ID}!{secrets.token_urlsafe(32)}"
    state["sessions"][token] = {"user_id": user_id, "flow": flow, "expired": False, "created": time.time()}
    state["logins"].append({"flow": flow, "user_id": user_id, "at": time.time()})
    return token
