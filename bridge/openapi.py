"""The OpenAPI document of the HTTP API, built from the request models so the two cannot drift apart: the core's
operations, and those of the installed connectors (their Endpoints)."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from bridge import __version__
from bridge.console.models import ConsoleMessageBody, ConsoleSessionBody
from bridge.models import AssignmentBody, CreateTicketBody, GroupBody, MemberBody, UserSigBody
from connectors.base import Connector, endpoints_of

SIGNED: list[dict[str, list[str]]] = [{"signedCall": []}]
SIGNED_OR_USER: list[dict[str, list[str]]] = [{"signedCall": []}, {"userSig": []}]
CONSOLE: list[dict[str, list[str]]] = [{"consoleSession": []}]
GROUP = "/console/api/groups/{groupId}"

# (method, path, summary, request model, security, success status)
Operation = tuple[str, str, str, type[BaseModel] | None, list[dict[str, list[str]]] | None, str]
OPERATIONS: list[Operation] = [
    (
        "post",
        "/createticket",
        "Open a ticket on the default helpdesk, with its chat group",
        CreateTicketBody,
        SIGNED_OR_USER,
        "201",
    ),
    (
        "post",
        "/{connector}/createticket",
        "Open a ticket on one helpdesk, with its chat group",
        CreateTicketBody,
        SIGNED_OR_USER,
        "201",
    ),
    ("post", "/joingroup", "Add an agent to a group", MemberBody, SIGNED, "200"),
    ("post", "/leavegroup", "Remove an agent from a group", MemberBody, SIGNED, "200"),
    ("post", "/deletegroup", "Dismiss a group and close its link", GroupBody, SIGNED, "200"),
    ("post", "/assignment", "Converge a group on its ticket's current owner", AssignmentBody, SIGNED, "200"),
    ("post", "/usersig", "Issue an IM UserSig", UserSigBody, SIGNED, "200"),
    ("post", "/callbacks/im", "Tencent IM third-party callbacks", None, [{"imCallback": []}], "200"),
    ("get", "/links/{groupId}", "The link of a group", None, SIGNED, "200"),
    ("get", "/links", "The link of a ticket (provider, ticketId query parameters)", None, SIGNED, "200"),
    ("get", "/console/", "The agent console page (it waits for a session from the frame around it)", None, None, "200"),
    (
        "post",
        "/console/sessions",
        "Open a console session for a helpdesk user on a ticket",
        ConsoleSessionBody,
        SIGNED,
        "201",
    ),
    ("post", "/console/api/session", "Renew the console session", None, CONSOLE, "200"),
    ("get", GROUP, "The ticket's state and the group's members", None, CONSOLE, "200"),
    ("get", GROUP + "/messages", "The group's history, newest last (before= a MsgSeq for older)", None, CONSOLE, "200"),
    ("post", GROUP + "/messages", "Send a text as the agent", ConsoleMessageBody, CONSOLE, "201"),
    (
        "get",
        GROUP + "/events",
        "Server-sent events: new messages (after= a MsgSeq), state changes",
        None,
        CONSOLE,
        "200",
    ),
    ("get", "/healthz", "Liveness", None, None, "200"),
    ("get", "/readyz", "Readiness: the database answers", None, None, "200"),
    ("get", "/metrics", "Prometheus metrics", None, None, "200"),
    ("get", "/openapi.json", "This document", None, None, "200"),
]

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def connector_operations(
    connectors: tuple[type[Connector], ...],
) -> tuple[list[Operation], dict[str, Any]]:
    """The operations and security schemes the connectors add."""
    operations: list[Operation] = []
    schemes: dict[str, Any] = {}
    for cls in connectors:
        for e in endpoints_of(cls):
            security: list[dict[str, list[str]]] | None = [{name: []} for name in e.security] or None
            operations.append((e.method.lower(), e.path, e.summary, e.body, security, e.status))
        schemes.update(getattr(cls, "security_schemes", {}))
    return operations, schemes


@cache
def openapi_document(connectors: tuple[type[Connector], ...] = ()) -> dict[str, Any]:
    """The document of the core's routes and of those of `connectors` (installed connector classes)."""
    extra, extra_schemes = connector_operations(connectors)
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR}
    for method, path, summary, model, security, status in [*OPERATIONS, *extra]:
        operation: dict[str, Any] = {
            "summary": summary,
            "responses": {
                status: {"description": "success"},
                "400": {
                    "description": "bad input",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
                "401": {"description": "not authenticated"},
            },
            "security": security or [],
        }
        if model is not None:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
            }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Helpdesk Bridge", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "signedCall": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Bridge-Signature",
                    "description": "v1=hex HMAC-SHA256(secret, '<ts>.<METHOD>.<target>.<body>'), "
                    "with X-Bridge-Timestamp. BRIDGE_CALLOUT_SECRET signs every call; BRIDGE_APP_SECRET only "
                    "createticket and customers' UserSigs (else 403). The same signature again within 300 s is a "
                    "retry: the first answer again",
                },
                "userSig": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "UserSig <usersig of the body's userId>",
                },
                "imCallback": {"type": "apiKey", "in": "query", "name": "Sign"},
                "consoleSession": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a console session (POST /console/sessions, or a helpdesk app); 403 outside "
                    "its agent's group",
                },
                **extra_schemes,
            },
        },
    }
