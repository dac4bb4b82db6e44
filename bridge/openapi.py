"""The OpenAPI document of the HTTP API, built from the app's routes (their Endpoints: the core's in bridge/routes and
bridge/console, and the installed connectors') and request models, so the two cannot drift apart."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from bridge import __version__
from connectors.base import Connector, Endpoint

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


def openapi_path(path: str) -> str:
    """A route's path as OpenAPI writes it: `{group_id:path}` is `{groupId}`."""
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: "{" + _camel(m[1]) + "}", path)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


@cache
def openapi_document(endpoints: tuple[Endpoint, ...], connectors: tuple[type[Connector], ...] = ()) -> dict[str, Any]:
    """The document of the app's routes (`endpoints`, the core's and the connectors'), with the security schemes of
    the bridge and of `connectors` (installed connector classes)."""
    extra_schemes: dict[str, Any] = {}
    for cls in connectors:
        extra_schemes.update(getattr(cls, "security_schemes", {}))
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR}
    for endpoint in endpoints:
        model, status = endpoint.body, endpoint.status
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "responses": {
                status: {"description": "success"},
                "400": {
                    "description": "bad input",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
                "401": {"description": "not authenticated"},
            },
            "security": [{name: []} for name in endpoint.security],
        }
        if model is not None:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
            }
        paths.setdefault(openapi_path(endpoint.path), {})[endpoint.method.lower()] = operation
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
