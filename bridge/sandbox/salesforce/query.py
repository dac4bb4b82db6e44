"""SOQL at `GET /services/data/v<version>/query?q=` (and `queryAll`, deleted records too): a deliberately tiny
subset, `SELECT fields FROM object [WHERE field = value [AND ...]] [ORDER BY field [ASC|DESC]] [LIMIT n]`, over Case,
CaseComment, User and Group, with Salesforce's `MALFORMED_QUERY`, `INVALID_TYPE` and `INVALID_FIELD` errors.

The selected fields may name the creator's User fields through the `CreatedBy` relationship (`CreatedBy.Name`),
answered as Salesforce nests a parent record: `"CreatedBy": {"attributes": {"type": "User", "url": ...}, "Name": ...}`,
or `"CreatedBy": null` when there is none (SOQL guide, "Relationship Queries")."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

from bridge.sandbox.salesforce.core import ApiError, canonical_id
from bridge.sandbox.salesforce.sobjects import CASE_FIELDS, COMMENT_FIELDS, GROUP_FIELDS, USER_FIELDS, attributes

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
# Parent relationships a selected field may follow: name -> (the Id field it follows, the parent's table, type, fields)
_PARENTS: dict[str, tuple[str, str, str, Any]] = {"CreatedBy": ("CreatedById", "users", "User", USER_FIELDS)}


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


def _check_column(field: str, known: Any, name: str) -> None:
    if field not in known:
        raise ApiError(
            400,
            "INVALID_FIELD",
            f"No such column '{field}' on entity '{name}'. If you are attempting "
            "to use a custom field, be sure to append the '__c' after the custom field name.",
        )


def _check_parent_field(field: str, known: Any) -> None:
    relation, _, column = field.partition(".")
    parent = _PARENTS.get(relation)
    if parent is None or parent[0] not in known or "." in column:
        raise ApiError(
            400,
            "INVALID_FIELD",
            f"Didn't understand relationship '{relation}' in field path. If you are attempting to use a custom "
            "relationship, be sure to append the '__r' after the custom relationship name. Please reference your "
            "WSDL or the describe call for the appropriate names.",
        )
    _check_column(column, parent[3], parent[2])


def _row(state: dict[str, Any], record: dict[str, Any], fields: list[str], name: str, version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": attributes(version, name, record["Id"])}
    for field in fields:
        if "." not in field:
            out[field] = record.get(field)
            continue
        relation, _, column = field.partition(".")
        id_field, table, parent_type, _ = _PARENTS[relation]
        parent = state[table].get(record.get(id_field) or "")
        if parent is None:
            out[relation] = None
        else:
            nested = out.setdefault(relation, {"attributes": attributes(version, parent_type, parent["Id"])})
            nested[column] = parent.get(column)
    return out


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
    plain = [f for f in fields if "." not in f]
    for field in [f for f, _, _ in conditions] + plain + ([match.group("order")] if match.group("order") else []):
        _check_column(field, known, name)
    for field in fields:
        if "." in field:
            _check_parent_field(field, known)
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
        "records": [_row(state, r, fields, name, version) for r in rows],
    }
