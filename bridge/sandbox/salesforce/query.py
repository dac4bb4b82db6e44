"""SOQL at `GET /services/data/v<version>/query?q=` (and `queryAll`, deleted records too): a deliberately tiny
subset, `SELECT fields FROM object [WHERE field = value [AND ...]] [ORDER BY field [ASC|DESC]] [LIMIT n]`, over Case,
CaseComment, User and Group, with Salesforce's `MALFORMED_QUERY`, `INVALID_TYPE` and `INVALID_FIELD` errors."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

from bridge.sandbox.salesforce.core import ApiError, canonical_id
from bridge.sandbox.salesforce.sobjects import CASE_FIELDS, COMMENT_FIELDS, GROUP_FIELDS, USER_FIELDS, select_fields

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


def run_query(request: Request, version: str, include_deleted: bool) -> dict[str, Any]:
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
        "case": ("Case", CASE_FIELDS, list(state["cases"].values())),
        "casecomment": ("CaseComment", COMMENT_FIELDS, list(state["case_comments"].values())),
        "user": ("User", USER_FIELDS, list(state["users"].values())),
        "group": ("Group", GROUP_FIELDS, list(state["queues"].values())),
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
        "records": [select_fields(r, fields, known, name, version) for r in rows],
    }
