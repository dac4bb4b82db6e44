"""Salesforce sObjects under `/services/data/v<version>/sobjects/`: `Case` (create, read, update, delete, upsert
and read by the external ID field `Bridge_Request_Key__c`), `CaseComment` (create, read), `User` (read, update: Name
follows FirstName and LastName) and `Group` (read). Fields are checked as Salesforce checks them (unknown,
read-only, too long, restricted picklist, email, owner), each error answered as Salesforce's JSON list
`[{"message", "errorCode", "fields"}]`.

A new Case goes to the support queue, as an org whose active assignment rule sends every new Case there, unless
the call says `Sforce-Auto-Assign: FALSE`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.sandbox.salesforce.core import REQUEST_KEY_FIELD, ApiError, canonical_id, next_id, not_found, timestamp

CASE_STATUSES = {"New": False, "Working": False, "Escalated": False, "Closed": True}  # value -> IsClosed
# What Salesforce accepts in an email field: local@domain.tld, no spaces, one @.
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*/=?^_+`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}$"
)

# Field name -> (label, max length, writable on create, writable on update)
CASE_FIELDS: dict[str, tuple[str, int | None, bool, bool]] = {
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
COMMENT_FIELDS: dict[str, tuple[str, int | None, bool, bool]] = {
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
USER_FIELDS = ("Id", "Username", "Name", "FirstName", "LastName", "Email", "IsActive", "UserType")
# What an update may set on a User: Name is compound (FirstName LastName), never written itself.
USER_UPDATE_FIELDS: dict[str, tuple[str, int | None, bool, bool]] = {
    "Id": ("User ID", None, False, False),
    "Username": ("Username", 80, True, True),
    "Name": ("Full Name", None, False, False),
    "FirstName": ("First Name", 40, True, True),
    "LastName": ("Last Name", 80, True, True),
    "Email": ("Email", 128, True, True),
    "IsActive": ("Active", None, True, True),
    "UserType": ("User Type", None, False, False),
}
GROUP_FIELDS = ("Id", "Name", "DeveloperName", "Type", "Email")


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw or b"null")
    except ValueError as exc:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character in the request body: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    return data


def attributes(version: str, sobject: str, record_id: str) -> dict[str, str]:
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
        case["ClosedDate"] = timestamp()
    elif not case["IsClosed"]:
        case["ClosedDate"] = None
    case["LastModifiedDate"] = case["SystemModstamp"] = timestamp()


def _create_case(request: Request, user_id: str, data: dict[str, Any]) -> dict[str, Any]:
    state = request.app.state.sf
    _check_fields("Case", data, CASE_FIELDS, creating=True)
    auto_assign = request.headers.get("sforce-auto-assign", "TRUE").strip().upper() not in ("FALSE", "0")
    # Like an org whose active assignment rule sends every new Case to the support queue.
    owner = state["default_queue_id"] if auto_assign else user_id
    case_id = next_id(state, "500")
    state["case_number"] += 1
    now = timestamp()
    case: dict[str, Any] = {name: None for name in CASE_FIELDS}
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
        raise not_found()
    if record.get("IsDeleted"):
        raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
    return record


def select_fields(
    record: dict[str, Any], fields: list[str] | None, known: Any, sobject: str, version: str
) -> dict[str, Any]:
    names = fields if fields else list(known)
    out: dict[str, Any] = {"attributes": attributes(version, sobject, record["Id"])}
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


def field_list(request: Request) -> list[str] | None:
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
                raise not_found()
            return JSONResponse(select_fields(matches[0], field_list(request), CASE_FIELDS, "Case", version))
        if method != "PATCH":
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET,PATCH")
        data = await _json_body(request)
        data.pop(field, None)
        if matches:
            _check_fields("Case", data, CASE_FIELDS, creating=False)
            _apply_case_values(state, matches[0], data)
            return JSONResponse({"id": matches[0]["Id"], "success": True, "errors": [], "created": False})
        case = _create_case(request, user_id, {**data, field: value})
        return JSONResponse({"id": case["Id"], "success": True, "errors": [], "created": True}, status_code=201)
    if len(rest) != 1:
        raise not_found()
    case = _find(state, "cases", rest[0], "500")
    if method == "GET":
        return JSONResponse(select_fields(case, field_list(request), CASE_FIELDS, "Case", version))
    if method == "PATCH":
        data = await _json_body(request)
        _check_fields("Case", data, CASE_FIELDS, creating=False)
        _apply_case_values(state, case, data)
        return Response(status_code=204)
    if method == "DELETE":
        case["IsDeleted"] = True
        case["SystemModstamp"] = timestamp()
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
        _check_fields("CaseComment", data, COMMENT_FIELDS, creating=True)
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
        comment_id = next_id(state, "00a")
        now = timestamp()
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
        return JSONResponse(select_fields(comment, field_list(request), COMMENT_FIELDS, "CaseComment", version))
    raise not_found()


async def _update_user(request: Request, raw_id: str) -> Response:
    """Update a User (an admin renaming an agent): Name follows FirstName and LastName."""
    user = _find(request.app.state.sf, "users", raw_id, "005")
    data = await _json_body(request)
    _check_fields("User", data, USER_UPDATE_FIELDS, creating=False)
    values = {name: value for name, value in data.items() if name != "attributes"}
    if "LastName" in values and not str(values["LastName"] or "").strip():
        raise ApiError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", ["LastName"])
    if "Email" in values and not _EMAIL_RE.match(str(values["Email"] or "")):
        raise ApiError(400, "INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {values['Email']}", ["Email"])
    user.update(values)
    user["Name"] = f"{user.get('FirstName') or ''} {user['LastName']}".strip()
    return Response(status_code=204)


async def sobject_routes(request: Request, user_id: str, version: str, sobject: str, args: list[str]) -> Response:
    """`/sobjects/<sobject>/<args...>`: Case and CaseComment, and reading a User or a Group (a queue) by Id."""
    if sobject == "Case":
        return await _case_routes(request, user_id, version, args)
    if sobject == "CaseComment":
        return await _comment_routes(request, user_id, version, args)
    if sobject == "User" and len(args) == 1 and request.method == "PATCH":
        return await _update_user(request, args[0])
    if sobject in ("User", "Group") and len(args) == 1 and request.method == "GET":
        table, prefix, known = ("users", "005", USER_FIELDS) if sobject == "User" else ("queues", "00G", GROUP_FIELDS)
        record = _find(request.app.state.sf, table, args[0], prefix)
        return JSONResponse(select_fields(record, field_list(request), known, sobject, version))
    raise not_found()
