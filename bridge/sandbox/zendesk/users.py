"""Zendesk users: show (`me` too), search by email, external ID or text, create, create-or-update, update.

Users carry `external_id`, unique per account and matched without regard to case; an email another user has is a
422 `DuplicateValue`; `create_or_update` matches an existing user by external_id or email.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.zendesk.core import (
    API,
    Endpoint,
    add_user,
    api_routes,
    by_int_id,
    find_user_by_email,
    find_user_by_external_id,
    invalid,
    is_email,
    now_iso,
    read_json,
)


class Users:
    def __init__(self, state: dict[str, Any]):
        self.state = state

    def routes(self, endpoint: Endpoint) -> list[Route]:
        return [
            *api_routes(endpoint, "/users/search", self.search_users, ["GET"]),
            *api_routes(endpoint, "/users/create_or_update", self.create_or_update_user, ["POST"]),
            *api_routes(endpoint, "/users", self.search_users, ["GET"]),
            *api_routes(endpoint, "/users", self.create_user, ["POST"]),
            *api_routes(endpoint, "/users/{id}", self.show_user, ["GET"]),
            *api_routes(endpoint, "/users/{id}", self.update_user, ["PUT"]),
        ]

    async def show_user(self, request: Request, actor: dict[str, Any]) -> Response:
        raw = request.path_params["id"]
        if raw == "me":
            return JSONResponse({"user": actor})
        return JSONResponse({"user": by_int_id(self.state["users"], raw)})

    async def search_users(self, request: Request, actor: dict[str, Any]) -> Response:
        query = request.query_params.get("query", "")
        email = request.query_params.get("email") or ""
        external_id = request.query_params.get("external_id")
        if query.startswith("email:"):
            email = query[len("email:") :]
        if external_id is not None:  # "does not support the search syntax. It only accepts ids."
            found = find_user_by_external_id(self.state, external_id) if external_id else None
            users = [found] if found else []
        elif email:
            found = find_user_by_email(self.state, email)
            users = [found] if found else []
        elif query:
            users = [
                u
                for u in self.state["users"].values()
                if query.lower() in (u["name"] or "").lower() or query.lower() in (u["email"] or "").lower()
            ]
        else:
            users = list(self.state["users"].values())
        return JSONResponse({"users": users, "next_page": None, "previous_page": None, "count": len(users)})

    def _user_fields(self, data: Any, user: dict[str, Any] | None) -> dict[str, Any]:
        """Validate the writable fields of a user body against the account: Zendesk's 422 bodies when wrong."""
        if not isinstance(data, dict):
            raise invalid("base", "User is missing", "BlankValue")
        fields: dict[str, Any] = {}
        if "name" in data or user is None:
            name = str(data.get("name") or "").strip()
            if not name:
                raise invalid("name", "Name: is too short (minimum is 1 character)", "BlankValue")
            fields["name"] = name
        email = data.get("email")
        if email:
            email = str(email).strip()
            if not is_email(email):
                raise invalid("email", f"Email: {email} is not properly formatted")
            owner = find_user_by_email(self.state, email)
            if owner is not None and owner is not user:
                raise invalid("email", f"Email: {email} is already being used by another user", "DuplicateValue")
            # "Writeable on create only. On update, a secondary email is added": the primary stays (secondary
            # identities are not modelled), a user without one gets this one.
            if user is None or not user.get("email"):
                fields["email"] = email
        if data.get("external_id") is not None:
            external_id = str(data["external_id"])
            owner = find_user_by_external_id(self.state, external_id)
            if owner is not None and owner is not user:
                raise invalid("external_id", "External has already been taken", "DuplicateValue")
            fields["external_id"] = external_id
        if "role" in data:
            if data["role"] not in ("end-user", "agent", "admin"):
                raise invalid("role", f"Role: {data['role']} is not valid")
            fields["role"] = data["role"]
        return fields

    def _store_user(self, fields: dict[str, Any], user: dict[str, Any] | None) -> dict[str, Any]:
        if user is None:
            user = add_user(
                self.state,
                name=fields["name"],
                email=fields.get("email"),
                role=fields.get("role", "end-user"),
                external_id=fields.get("external_id"),
            )
        else:
            user.update(fields)
            user["updated_at"] = now_iso()
        return user

    async def create_user(self, request: Request, actor: dict[str, Any]) -> Response:
        user = self._store_user(self._user_fields((await read_json(request)).get("user"), None), None)
        return JSONResponse({"user": user}, status_code=201, headers={"Location": f"{API}/users/{user['id']}.json"})

    async def create_or_update_user(self, request: Request, actor: dict[str, Any]) -> Response:
        """Creates a user, or updates the one "identified by e-mail address or external ID" (Zendesk's words; which
        one wins when both name different users is not documented: external_id first here). 201 new, 200 existing."""
        data = (await read_json(request)).get("user")
        existing = None
        if isinstance(data, dict):
            if data.get("external_id") is not None:
                existing = find_user_by_external_id(self.state, str(data["external_id"]))
            if existing is None and data.get("email"):
                existing = find_user_by_email(self.state, str(data["email"]))
        user = self._store_user(self._user_fields(data, existing), existing)
        return JSONResponse(
            {"user": user},
            status_code=200 if existing else 201,
            headers={"Location": f"{API}/users/{user['id']}.json"},
        )

    async def update_user(self, request: Request, actor: dict[str, Any]) -> Response:
        user = by_int_id(self.state["users"], request.path_params["id"])
        user = self._store_user(self._user_fields((await read_json(request)).get("user"), user), user)
        return JSONResponse({"user": user})
