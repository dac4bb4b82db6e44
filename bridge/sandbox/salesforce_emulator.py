"""An emulator of the Salesforce APIs the bridge uses, served over real HTTP (Starlette).

Built from Salesforce's public documentation, and shaped by what simple-salesforce sends and parses:

- SOAP `login()` at `POST /services/Soap/u/<version>`: a `loginResponse` whose `serverUrl` points back at this
  server (derived from the request's Host), or the documented `sf:INVALID_LOGIN` fault (HTTP 500).
- OAuth 2.0 at `POST /services/oauth2/token`: grant types `password`, `client_credentials` (HTTP Basic or form
  credentials) and `urn:ietf:params:oauth:grant-type:jwt-bearer` (RS256-verified when a public key is
  configured; the `exp` claim may be a string, as simple-salesforce sends it). Errors are `{"error",
  "error_description"}` with 400.
- REST under `/services/data/v<version>/`: `sobjects/Case` (create, read, update, delete, upsert by the
  external ID field `Bridge_Request_Key__c`), `sobjects/CaseComment`, `sobjects/User`, `sobjects/Group` and a
  tiny SOQL `query`. Errors are JSON lists `[{"message", "errorCode", "fields"}]`; an unknown or expired
  session is 401 `INVALID_SESSION_ID`; over `api_limit` requests, 403 `REQUEST_LIMIT_EXCEEDED` (Salesforce's
  daily limit answer).
- Control routes under `/_emulator/` (unauthenticated): `GET state`, `POST reset`, `POST expire_sessions`,
  `POST limits` (`{"api_limit": 5, "api_usage": 0}`) and the shared fault routes.

Everything lives in `app.state.sf`, a plain dict (see `_fresh_state`). Nothing secret is written to the
request log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.ids import checksum
from bridge.sandbox.faults import CONTROL_PREFIX, FaultMiddleware, Faults, fault_routes

REQUEST_KEY_FIELD = "Bridge_Request_Key__c"
CASE_STATUSES = {"New": False, "Working": False, "Escalated": False, "Closed": True}  # value -> IsClosed
ORG_ID = "00D5g000004ORGA"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-5]{3})?$")
# What Salesforce accepts in an email field: local@domain.tld, no spaces, one @.
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*/=?^_+`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}$"
)

INVALID_LOGIN = "Invalid username, password, security token; or user locked out."
SESSION_INVALID = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]

# Field name -> (label, max length, writable on create, writable on update)
_CASE_FIELDS: dict[str, tuple[str, int | None, bool, bool]] = {
    "Id": ("Case ID", None, False, False),
    "CaseNumber": ("Case Number", None, False, False),
    "Subject": ("Subject", 255, True, True),
    "Description": ("Description", 32000, True, True),
    "SuppliedName": ("Web Name", 80, True, True),
    "SuppliedEmail": ("Web Email", 80, True, True),
    "SuppliedPhone": ("Web Phone", 40, True, True),
    "SuppliedCompany": ("Web Company", 80, True, True),
    "Origin": ("Case Origin", 40, True, True),
    "Status": ("Status", 40, True, True),
    "Priority": ("Priority", 40, True, True),
    "OwnerId": ("Owner ID", None, True, True),
    "IsClosed": ("Closed", None, False, False),
    "IsDeleted": ("Deleted", None, False, False),
    "IsEscalated": ("Escalated", None, True, True),
    "ClosedDate": ("Closed Date", None, False, False),
    "CreatedById": ("Created By ID", None, False, False),
    "CreatedDate": ("Created Date", None, False, False),
    "LastModifiedDate": ("Last Modified Date", None, False, False),
    "SystemModstamp": ("System Modstamp", None, False, False),
    REQUEST_KEY_FIELD: ("Bridge Request Key", 255, True, True),
}
_COMMENT_FIELDS: dict[str, tuple[str, int | None, bool, bool]] = {
    "Id": ("Case Comment ID", None, False, False),
    "ParentId": ("Parent Case ID", None, True, False),
    "CommentBody": ("Body", 4000, True, True),
    "IsPublished": ("Published", None, True, True),
    "IsDeleted": ("Deleted", None, False, False),
    "CreatedById": ("Created By ID", None, False, False),
    "CreatedDate": ("Created Date", None, False, False),
    "LastModifiedDate": ("Last Modified Date", None, False, False),
    "SystemModstamp": ("System Modstamp", None, False, False),
}
_USER_FIELDS = ("Id", "Username", "Name", "FirstName", "LastName", "Email", "IsActive", "UserType")
_GROUP_FIELDS = ("Id", "Name", "DeveloperName", "Type", "Email")


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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _fresh_state(username: str) -> dict[str, Any]:
    counter = {"value": 0}

    def next_id(prefix: str) -> str:
        counter["value"] += 1
        return make_id(prefix, counter["value"])

    users: dict[str, dict[str, Any]] = {}
    for first, last, login in (
        ("Integration", "User", username),
        ("Alice", "Agent", "alice.agent@example.com"),
        ("Bob", "Agent", "bob.agent@example.com"),
    ):
        uid = next_id("005")
        users[uid] = {
            "Id": uid,
            "Username": login,
            "FirstName": first,
            "LastName": last,
            "Name": f"{first} {last}",
            "Email": login,
            "IsActive": True,
            "UserType": "Standard",
        }
    qid = next_id("00G")
    queues = {
        qid: {
            "Id": qid,
            "Name": "Support Queue",
            "DeveloperName": "Support_Queue",
            "Type": "Queue",
            "Email": None,
        }
    }
    api_user, *agents = list(users)
    return {
        "org_id": ORG_ID,
        "counter": counter,
        "users": users,
        "queues": queues,
        "api_user_id": api_user,
        "agent_ids": agents,
        "default_queue_id": qid,
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


def _next_id(state: dict[str, Any], prefix: str) -> str:
    state["counter"]["value"] += 1
    return make_id(prefix, state["counter"]["value"])


def _base_url(request: Request) -> str:
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


def _new_session(state: dict[str, Any], user_id: str, flow: str) -> str:
    token = f"{ORG_ID}!{secrets.token_urlsafe(32)}"
    state["sessions"][token] = {"user_id": user_id, "flow": flow, "expired": False, "created": time.time()}
    state["logins"].append({"flow": flow, "user_id": user_id, "at": time.time()})
    return token


# --- SOAP login ---------------------------------------------------------------------------------------------


def _soap_fault(code: str, message: str, status: int = 500) -> Response:
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


def _xml_text(root: ET.Element, local_name: str) -> str | None:
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == local_name:
            return element.text or ""
    return None


async def soap_login(request: Request) -> Response:
    conf = request.app.state.sf_config
    state = request.app.state.sf
    version = request.path_params["version"]
    try:
        root = ET.fromstring(await request.body())
    except ET.ParseError:
        return _soap_fault("INVALID_SOAP_HEADER", "The request is not a well-formed SOAP envelope")
    username, password = _xml_text(root, "username"), _xml_text(root, "password")
    if username is None or password is None:
        return _soap_fault("UNKNOWN_EXCEPTION", "The emulator only implements the login() call")
    expected = conf["password"] + (conf["security_token"] or "")
    if username != conf["username"] or not hmac.compare_digest(password.encode(), expected.encode()):
        return _soap_fault("INVALID_LOGIN", INVALID_LOGIN)
    user_id = state["api_user_id"]
    user = state["users"][user_id]
    token = _new_session(state, user_id, "soap")
    base = _base_url(request)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><loginResponse><result>"
        f"<metadataServerUrl>{base}/services/Soap/m/{version}/{ORG_ID}</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
        f"<serverUrl>{base}/services/Soap/u/{version}/{ORG_ID}</serverUrl>"
        f"<sessionId>{escape(token)}</sessionId><userId>{user_id}</userId>"
        "<userInfo>"
        f"<organizationId>{ORG_ID}{checksum(ORG_ID)}</organizationId>"
        "<organizationName>Emulated Org</organizationName>"
        f"<userEmail>{escape(user['Email'])}</userEmail><userFullName>{escape(user['Name'])}</userFullName>"
        f"<userId>{user_id}</userId><userName>{escape(user['Username'])}</userName>"
        "</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"
    )
    return Response(body, media_type="text/xml; charset=utf-8")


# --- OAuth 2.0 ----------------------------------------------------------------------------------------------


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def _token_response(request: Request, user_id: str, flow: str) -> JSONResponse:
    state = request.app.state.sf
    token = _new_session(state, user_id, flow)
    base = _base_url(request)
    issued_at = str(int(time.time() * 1000))
    identity = f"{base}/id/{ORG_ID}{checksum(ORG_ID)}/{user_id}"
    signature = base64.b64encode(hmac.new(token.encode(), (identity + issued_at).encode(), hashlib.sha256).digest())
    return JSONResponse(
        {
            "access_token": token,
            "instance_url": base,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature.decode(),
            "scope": "api",
            "api_instance_url": base,
        },
        headers={"Cache-Control": "no-store"},
    )


def _audience_ok(aud: Any, base: str) -> bool:
    audiences = aud if isinstance(aud, list) else [aud]
    for value in audiences:
        if not isinstance(value, str):
            continue
        value = value.rstrip("/")
        if value in ("https://login.salesforce.com", "https://test.salesforce.com", base):
            return True
        if re.fullmatch(r"https://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.my\.salesforce\.com", value):
            return True
    return False


async def oauth_token(request: Request) -> Response:
    conf = request.app.state.sf_config
    state = request.app.state.sf
    # Parsed by hand: Starlette's form parser needs python-multipart, and this body is always urlencoded.
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    grant = str(form.get("grant_type") or "")
    user_by_name = {u["Username"]: uid for uid, u in state["users"].items()}

    if grant == "password":
        if not conf["consumer_key"] or form.get("client_id") != conf["consumer_key"]:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if not conf["consumer_secret"] or form.get("client_secret") != conf["consumer_secret"]:
            return _oauth_error("invalid_client", "invalid client credentials")
        expected = conf["password"] + (conf["security_token"] or "")
        password = str(form.get("password") or "")
        if form.get("username") != conf["username"] or password not in (expected, conf["password"]):
            return _oauth_error("invalid_grant", "authentication failure")
        return _token_response(request, state["api_user_id"], "oauth_password")

    if grant == "client_credentials":
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return _oauth_error("invalid_client", "invalid client credentials")
        if not conf["consumer_key"] or client_id != conf["consumer_key"]:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if not conf["consumer_secret"] or client_secret != conf["consumer_secret"]:
            return _oauth_error("invalid_client", "invalid client credentials")
        return _token_response(request, state["api_user_id"], "client_credentials")

    if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        assertion = str(form.get("assertion") or "")
        try:
            header = jwt.get_unverified_header(assertion)
            if conf["jwt_public_key_pem"]:
                if header.get("alg") != "RS256":
                    return _oauth_error("invalid_grant", "invalid assertion")
                # exp arrives as a string from simple-salesforce; PyJWT insists on a number, so check it here.
                claims = jwt.decode(
                    assertion,
                    conf["jwt_public_key_pem"],
                    algorithms=["RS256"],
                    options={
                        "verify_exp": False,
                        "verify_aud": False,
                        "verify_iat": False,
                        "verify_nbf": False,
                    },
                )
            else:
                claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "invalid assertion")
        if not conf["consumer_key"] or claims.get("iss") != conf["consumer_key"]:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if not _audience_ok(claims.get("aud"), _base_url(request)):
            return _oauth_error("invalid_grant", "audience is invalid")
        try:
            expired = float(claims.get("exp", "")) < time.time()
        except (TypeError, ValueError):
            return _oauth_error("invalid_grant", "invalid assertion")
        if expired:
            return _oauth_error("invalid_grant", "expired authorization code")
        user_id = user_by_name.get(str(claims.get("sub")))
        if user_id is None:
            return _oauth_error("invalid_grant", "authentication failure")
        return _token_response(request, user_id, "jwt_bearer")

    return _oauth_error("unsupported_grant_type", "grant type not supported")


# --- REST ---------------------------------------------------------------------------------------------------


def _session_user(request: Request) -> str:
    state = request.app.state.sf
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    session = state["sessions"].get(token.strip()) if scheme.lower() in ("bearer", "oauth") else None
    if session is None or session["expired"]:
        raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
    return str(session["user_id"])


def _count_api_call(request: Request) -> dict[str, str]:
    state = request.app.state.sf
    limit = state["api_limit"]
    if limit is not None and state["api_usage"] >= limit:
        raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    state["api_usage"] += 1
    return {"Sforce-Limit-Info": f"api-usage={state['api_usage']}/{limit if limit is not None else 15000}"}


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw or b"null")
    except ValueError as exc:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character in the request body: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    return data


def _attributes(version: str, sobject: str, record_id: str) -> dict[str, str]:
    return {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{record_id}"}


def _check_fields(
    sobject: str, data: dict[str, Any], fields: dict[str, tuple[str, int | None, bool, bool]], creating: bool
) -> None:
    for name in data:
        if name == "attributes":
            continue
        if name not in fields:
            raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}")
    read_only = [n for n in data if n != "attributes" and not fields[n][2 if creating else 3]]
    if read_only:
        raise ApiError(
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(read_only)}. Please check the security settings "
            "of this field and verify that it is read/write for your profile or permission set.",
            read_only,
        )
    for name, value in data.items():
        if name == "attributes" or value is None:
            continue
        label, max_length, _, _ = fields[name]
        if max_length is not None and isinstance(value, str) and len(value) > max_length:
            raise ApiError(
                400,
                "STRING_TOO_LONG",
                f"{label}: data value too large: {value[:20]}... (max length={max_length})",
                [name],
            )


def _check_owner(state: dict[str, Any], value: Any) -> str:
    owner = canonical_id(value) if isinstance(value, str) else None
    if owner is None or not owner.startswith(("005", "00G")):
        raise ApiError(400, "MALFORMED_ID", f"Owner ID: id value of incorrect type: {value}", ["OwnerId"])
    user = state["users"].get(owner)
    if (user is None or not user["IsActive"]) and owner not in state["queues"]:
        raise ApiError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["OwnerId"])
    return owner


def _apply_case_values(state: dict[str, Any], case: dict[str, Any], data: dict[str, Any]) -> None:
    values = {name: value for name, value in data.items() if name != "attributes"}
    email = values.get("SuppliedEmail")
    if email not in (None, "") and not _EMAIL_RE.match(str(email)):
        raise ApiError(400, "INVALID_EMAIL_ADDRESS", f"Web Email: invalid email address: {email}", ["SuppliedEmail"])
    if "Status" in values and values["Status"] not in CASE_STATUSES:
        raise ApiError(
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"Status: bad value for restricted picklist field: {values['Status']}",
            ["Status"],
        )
    if "OwnerId" in values:
        values["OwnerId"] = _check_owner(state, values["OwnerId"])
    was_closed = bool(case.get("IsClosed"))
    case.update(values)
    case["IsClosed"] = CASE_STATUSES[case["Status"]]
    if case["IsClosed"] and not was_closed:
        case["ClosedDate"] = _now()
    elif not case["IsClosed"]:
        case["ClosedDate"] = None
    case["LastModifiedDate"] = case["SystemModstamp"] = _now()


def _create_case(request: Request, user_id: str, data: dict[str, Any]) -> dict[str, Any]:
    state = request.app.state.sf
    _check_fields("Case", data, _CASE_FIELDS, creating=True)
    auto_assign = request.headers.get("sforce-auto-assign", "TRUE").strip().upper() not in ("FALSE", "0")
    # Like an org whose active assignment rule sends every new Case to the support queue.
    owner = state["default_queue_id"] if auto_assign else user_id
    case_id = _next_id(state, "500")
    state["case_number"] += 1
    now = _now()
    case: dict[str, Any] = {name: None for name in _CASE_FIELDS}
    case.update(
        {
            "Id": case_id,
            "CaseNumber": f"{state['case_number']:08d}",
            "Status": "New",
            "Priority": "Medium",
            "OwnerId": owner,
            "IsClosed": False,
            "IsDeleted": False,
            "IsEscalated": False,
            "CreatedById": user_id,
            "CreatedDate": now,
        }
    )
    _apply_case_values(state, case, {k: v for k, v in data.items() if not (k == "OwnerId" and v is None)})
    state["cases"][case_id] = case
    return case


def _find(state: dict[str, Any], table: str, raw_id: str, prefix: str) -> dict[str, Any]:
    record_id = canonical_id(raw_id)
    record = state[table].get(record_id) if record_id and record_id.startswith(prefix) else None
    if record is None:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    if record.get("IsDeleted"):
        raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
    return record


def _select(record: dict[str, Any], fields: list[str] | None, known: Any, sobject: str, version: str) -> dict[str, Any]:
    names = fields if fields else list(known)
    out: dict[str, Any] = {"attributes": _attributes(version, sobject, record["Id"])}
    for name in names:
        if name not in known:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{sobject}'. If you are "
                "attempting to use a custom field, be sure to append the '__c' after the custom field name.",
            )
        out[name] = record.get(name)
    return out


def _field_list(request: Request) -> list[str] | None:
    raw = request.query_params.get("fields")
    return [f.strip() for f in raw.split(",") if f.strip()] if raw else None


async def _case_routes(request: Request, user_id: str, version: str, rest: list[str]) -> Response:
    state = request.app.state.sf
    method = request.method
    if not rest:
        if method != "POST":
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET,POST")
        case = _create_case(request, user_id, await _json_body(request))
        return JSONResponse({"id": case["Id"], "success": True, "errors": []}, status_code=201)
    if len(rest) == 2:  # upsert / get by external ID
        field, value = rest
        if field not in state["case_external_id_fields"]:
            raise ApiError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {field}")
        matches = [c for c in state["cases"].values() if c.get(field) == value and not c["IsDeleted"]]
        if method == "GET":
            if not matches:
                raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
            return JSONResponse(_select(matches[0], _field_list(request), _CASE_FIELDS, "Case", version))
        if method != "PATCH":
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET,PATCH")
        data = await _json_body(request)
        data.pop(field, None)
        if matches:
            _check_fields("Case", data, _CASE_FIELDS, creating=False)
            _apply_case_values(state, matches[0], data)
            return JSONResponse({"id": matches[0]["Id"], "success": True, "errors": [], "created": False})
        case = _create_case(request, user_id, {**data, field: value})
        return JSONResponse({"id": case["Id"], "success": True, "errors": [], "created": True}, status_code=201)
    if len(rest) != 1:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    case = _find(state, "cases", rest[0], "500")
    if method == "GET":
        return JSONResponse(_select(case, _field_list(request), _CASE_FIELDS, "Case", version))
    if method == "PATCH":
        data = await _json_body(request)
        _check_fields("Case", data, _CASE_FIELDS, creating=False)
        _apply_case_values(state, case, data)
        return Response(status_code=204)
    if method == "DELETE":
        case["IsDeleted"] = True
        case["SystemModstamp"] = _now()
        for comment in state["case_comments"].values():
            if comment["ParentId"] == case["Id"]:
                comment["IsDeleted"] = True
        return Response(status_code=204)
    raise ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET,PATCH,DELETE")


async def _comment_routes(request: Request, user_id: str, version: str, rest: list[str]) -> Response:
    state = request.app.state.sf
    method = request.method
    if not rest and method == "POST":
        data = await _json_body(request)
        _check_fields("CaseComment", data, _COMMENT_FIELDS, creating=True)
        if not data.get("ParentId"):
            raise ApiError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [ParentId]", ["ParentId"])
        parent_id = canonical_id(str(data["ParentId"]))
        parent = state["cases"].get(parent_id) if parent_id else None
        if parent_id is None or not parent_id.startswith("500"):
            raise ApiError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                f"Parent Case ID: id value of incorrect type: {data['ParentId']}",
                ["ParentId"],
            )
        if parent is None:
            raise ApiError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["ParentId"])
        if parent["IsDeleted"]:
            raise ApiError(400, "ENTITY_IS_DELETED", "entity is deleted", ["ParentId"])
        comment_id = _next_id(state, "00a")
        now = _now()
        state["case_comments"][comment_id] = {
            "Id": comment_id,
            "ParentId": parent_id,
            "CommentBody": data.get("CommentBody"),
            "IsPublished": bool(data.get("IsPublished", False)),
            "IsDeleted": False,
            "CreatedById": user_id,
            "CreatedDate": now,
            "LastModifiedDate": now,
            "SystemModstamp": now,
        }
        return JSONResponse({"id": comment_id, "success": True, "errors": []}, status_code=201)
    if len(rest) == 1 and method == "GET":
        comment = _find(state, "case_comments", rest[0], "00a")
        return JSONResponse(_select(comment, _field_list(request), _COMMENT_FIELDS, "CaseComment", version))
    raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")


# --- SOQL (a deliberately tiny subset) ----------------------------------------------------------------------

_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s+FROM\s+(?P<object>[A-Za-z_]\w*)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER\s+BY\s+(?P<order>[A-Za-z_]\w*)(?:\s+(?P<dir>ASC|DESC))?)?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(
    r"\s*(?P<field>[A-Za-z_]\w*)\s*(?P<op>=|!=)\s*(?P<value>'(?:[^'\\]|\\.)*'|true|false|null|-?\d+(?:\.\d+)?)\s*",
    re.IGNORECASE,
)


def _parse_where(where: str) -> list[tuple[str, str, Any]]:
    conditions = []
    position = 0
    while True:
        match = _CONDITION.match(where, position)
        if not match:
            raise ApiError(400, "MALFORMED_QUERY", f"unexpected token near: {where[position : position + 30]!r}")
        raw = match.group("value")
        value: Any
        if raw.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", raw[1:-1])
        elif raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        elif raw.lower() == "null":
            value = None
        else:
            value = float(raw) if "." in raw else int(raw)
        conditions.append((match.group("field"), match.group("op"), value))
        position = match.end()
        if position >= len(where):
            return conditions
        connective = re.match(r"AND\s+", where[position:], re.IGNORECASE)
        if not connective:
            raise ApiError(400, "MALFORMED_QUERY", f"unexpected token near: {where[position : position + 30]!r}")
        position += connective.end()


def _matches(record: dict[str, Any], field: str, op: str, value: Any) -> bool:
    actual = record.get(field)
    if field.endswith("Id") and isinstance(value, str) and canonical_id(value):
        value = canonical_id(value)
    equal = actual == value
    return equal if op == "=" else not equal


def _query(request: Request, version: str, include_deleted: bool) -> dict[str, Any]:
    state = request.app.state.sf
    soql = request.query_params.get("q", "")
    match = _SOQL.match(soql)
    if not match:
        raise ApiError(
            400,
            "MALFORMED_QUERY",
            "unexpected token: the emulator understands "
            "SELECT fields FROM object [WHERE field = value [AND ...]] [ORDER BY field] [LIMIT n]",
        )
    sobject = match.group("object")
    tables: dict[str, tuple[str, Any, list[dict[str, Any]]]] = {
        "case": ("Case", _CASE_FIELDS, list(state["cases"].values())),
        "casecomment": ("CaseComment", _COMMENT_FIELDS, list(state["case_comments"].values())),
        "user": ("User", _USER_FIELDS, list(state["users"].values())),
        "group": ("Group", _GROUP_FIELDS, list(state["queues"].values())),
    }
    if sobject.lower() not in tables:
        raise ApiError(
            400,
            "INVALID_TYPE",
            f"sObject type '{sobject}' is not supported. If you are attempting to "
            "use a custom object, be sure to append the '__c' after the entity name.",
        )
    name, known, records = tables[sobject.lower()]
    fields = [f.strip() for f in match.group("fields").split(",")]
    conditions = _parse_where(match.group("where")) if match.group("where") else []
    for field in [f for f, _, _ in conditions] + fields + ([match.group("order")] if match.group("order") else []):
        if field not in known:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"No such column '{field}' on entity '{name}'. If you are attempting "
                "to use a custom field, be sure to append the '__c' after the custom field name.",
            )
    rows = [
        r
        for r in records
        if (include_deleted or not r.get("IsDeleted")) and all(_matches(r, f, op, v) for f, op, v in conditions)
    ]
    if match.group("order"):
        order = match.group("order")
        rows.sort(
            key=lambda r: (r.get(order) is None, str(r.get(order))),
            reverse=(match.group("dir") or "").upper() == "DESC",
        )
    if match.group("limit"):
        rows = rows[: int(match.group("limit"))]
    return {
        "totalSize": len(rows),
        "done": True,
        "records": [_select(r, fields, known, name, version) for r in rows],
    }


async def rest_api(request: Request) -> Response:
    version = request.path_params["version"]
    rest = [part for part in request.path_params.get("rest", "").split("/") if part]
    try:
        if not re.fullmatch(r"\d{2}\.0", version) or float(version) < 20:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        user_id = _session_user(request)
        headers = _count_api_call(request)
        response = await _dispatch(request, user_id, version, rest)
    except ApiError as exc:
        return exc.response()
    response.headers.update(headers)
    return response


async def _dispatch(request: Request, user_id: str, version: str, rest: list[str]) -> Response:
    state = request.app.state.sf
    if not rest:
        return JSONResponse(
            {
                "sobjects": f"/services/data/v{version}/sobjects",
                "query": f"/services/data/v{version}/query",
                "limits": f"/services/data/v{version}/limits",
            }
        )
    head, tail = rest[0], rest[1:]
    if head in ("query", "queryAll") and not tail and request.method == "GET":
        return JSONResponse(_query(request, version, include_deleted=head == "queryAll"))
    if head == "limits" and not tail:
        limit = state["api_limit"] if state["api_limit"] is not None else 15000
        return JSONResponse({"DailyApiRequests": {"Max": limit, "Remaining": max(limit - state["api_usage"], 0)}})
    if head == "sobjects" and tail:
        sobject, args = tail[0], tail[1:]
        if sobject == "Case":
            return await _case_routes(request, user_id, version, args)
        if sobject == "CaseComment":
            return await _comment_routes(request, user_id, version, args)
        if sobject in ("User", "Group") and len(args) == 1 and request.method == "GET":
            table, prefix, known = (
                ("users", "005", _USER_FIELDS) if sobject == "User" else ("queues", "00G", _GROUP_FIELDS)
            )
            record = _find(state, table, args[0], prefix)
            return JSONResponse(_select(record, _field_list(request), known, sobject, version))
        if sobject not in ("User", "Group"):
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")


async def data_versions(request: Request) -> Response:
    base = "/services/data"
    return JSONResponse([{"label": "Emulated", "url": f"{base}/v{v}.0", "version": f"{v}.0"} for v in range(59, 63)])


# --- control, faults, request log ---------------------------------------------------------------------------


class RequestLog:
    """Records method, path, status and kind of every non-control request (never a body or a header)."""

    def __init__(self, app: ASGIApp, state_of: Any):
        self.app = app
        self.state_of = state_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        status = {"code": 0}

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, record_status)
        path = scope["path"]
        kind = (
            "soap_login"
            if path.startswith("/services/Soap/u/")
            else "oauth_token"
            if path == "/services/oauth2/token"
            else "rest"
        )
        self.state_of()["requests"].append(
            {
                "method": scope["method"],
                "path": path,
                "status": status["code"],
                "kind": kind,
                "at": time.time(),
            }
        )


_FAULT_CODES = {
    400: "MALFORMED_QUERY",
    401: "INVALID_SESSION_ID",
    403: "REQUEST_LIMIT_EXCEEDED",
    404: "NOT_FOUND",
    409: "UNABLE_TO_LOCK_ROW",
    429: "REQUEST_LIMIT_EXCEEDED",
    500: "UNKNOWN_EXCEPTION",
    502: "SERVER_UNAVAILABLE",
    503: "SERVER_UNAVAILABLE",
    504: "SERVER_UNAVAILABLE",
}
_FAULT_MESSAGES = {
    "INVALID_SESSION_ID": "Session expired or invalid",
    "REQUEST_LIMIT_EXCEEDED": "TotalRequests Limit exceeded.",
    "UNKNOWN_EXCEPTION": "An unexpected error occurred. Please include this ErrorId if you contact "
    "support: 1234567890-12345 (-987654321)",
    "SERVER_UNAVAILABLE": "Server temporarily unavailable, please retry.",
    "MALFORMED_QUERY": "Injected fault: malformed request",
    "NOT_FOUND": "The requested resource does not exist",
    "UNABLE_TO_LOCK_ROW": "unable to obtain exclusive access to this record",
}


def _fault_error(request: Request, faults: Faults) -> Response:
    status = 503 if faults.outage else int(faults.status)
    code = _FAULT_CODES.get(status, "UNKNOWN_EXCEPTION")
    message = _FAULT_MESSAGES.get(code, "Injected fault")
    headers = {"Retry-After": "1"} if status in (429, 503) else {}
    if request.url.path.startswith("/services/Soap/"):
        response = _soap_fault(code, message, status=status)
        response.headers.update(headers)
        return response
    if request.url.path == "/services/oauth2/token":
        return JSONResponse(
            {
                "error": "temporarily_unavailable" if status >= 500 else "invalid_request",
                "error_description": message,
            },
            status_code=status,
            headers=headers,
        )
    return JSONResponse([{"message": message, "errorCode": code, "fields": []}], status_code=status, headers=headers)


def _public_state(state: dict[str, Any]) -> dict[str, Any]:
    hidden = {"counter", "sessions"}
    out = {k: v for k, v in state.items() if k not in hidden}
    out["sessions"] = [
        {"flow": s["flow"], "user_id": s["user_id"], "expired": s["expired"]} for s in state["sessions"].values()
    ]  # tokens stay out of the snapshot
    return out


def create_app(
    username: str = "agent@example.com",
    password: str = "emulator-password",
    security_token: str = "emulator-token",
    consumer_key: str | None = None,
    consumer_secret: str | None = None,
    jwt_public_key_pem: str | bytes | None = None,
) -> Starlette:
    """The emulator app. `app.state.sf` holds the org (see the module docstring); the credentials are the ones
    it accepts."""
    faults = Faults()

    async def get_state(request: Request) -> Response:
        return JSONResponse(_public_state(request.app.state.sf))

    async def reset(request: Request) -> Response:
        request.app.state.sf = _fresh_state(username)
        faults.update({})
        faults.injected = 0
        return JSONResponse({"ok": True})

    async def expire_sessions(request: Request) -> Response:
        sessions = request.app.state.sf["sessions"]
        for session in sessions.values():
            session["expired"] = True
        return JSONResponse({"expired": len(sessions)})

    async def limits(request: Request) -> Response:
        data = await request.json() if await request.body() else {}
        state = request.app.state.sf
        for key in ("api_limit", "api_usage"):
            if key in data:
                state[key] = data[key]
        return JSONResponse({"api_limit": state["api_limit"], "api_usage": state["api_usage"]})

    routes = [
        Route("/services/Soap/u/{version}", soap_login, methods=["POST"]),
        Route("/services/oauth2/token", oauth_token, methods=["POST"]),
        Route("/services/data", data_versions, methods=["GET"]),
        Route("/services/data/", data_versions, methods=["GET"]),
        Route("/services/data/v{version}", rest_api, methods=["GET"]),
        Route("/services/data/v{version}/{rest:path}", rest_api, methods=["GET", "POST", "PATCH", "DELETE"]),
        Route(CONTROL_PREFIX + "state", get_state, methods=["GET"]),
        Route(CONTROL_PREFIX + "reset", reset, methods=["POST"]),
        Route(CONTROL_PREFIX + "expire_sessions", expire_sessions, methods=["POST"]),
        Route(CONTROL_PREFIX + "limits", limits, methods=["POST"]),
        *fault_routes(faults),
    ]
    app = Starlette(routes=routes)
    app.state.sf = _fresh_state(username)
    app.state.sf_config = {
        "username": username,
        "password": password,
        "security_token": security_token,
        "consumer_key": consumer_key,
        "consumer_secret": consumer_secret,
        "jwt_public_key_pem": jwt_public_key_pem,
    }
    app.state.faults = faults
    app.add_middleware(FaultMiddleware, faults=faults, error=_fault_error)
    app.add_middleware(RequestLog, state_of=lambda: app.state.sf)
    return app
