"""Zendesk webhooks (a newer service, with JSON:API style error lists) and their signing secrets, and how a
trigger's webhook call or a subscribed event (events.py) is delivered: the body posted to the endpoint from a
background task with a 10 s timeout, signed the way Zendesk signs (base64 HMAC-SHA256 over timestamp + body), each
delivery recorded in the state.

| route | what |
| --- | --- |
| `POST/GET /api/v2/webhooks` | create (an optional `signing_secret.secret`), list (`filter[name_contains]`, ...) |
| `GET/PUT/PATCH/DELETE /api/v2/webhooks/{id}` | show, replace, patch, delete (refused while a trigger uses it) |
| `GET/POST /api/v2/webhooks/{id}/signing_secret` | show the secret; POST makes a new one |
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.zendesk.core import ApiError, Endpoint, api_routes, now_iso, read_json

WEBHOOK_TIMEOUT = 10.0  # Zendesk gives a webhook endpoint 10 s
CONDITIONAL = "conditional_ticket_events"  # the subscription of a webhook that triggers and automations use
ACCOUNT_ID = 9000001
_ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
WEBHOOK_FIELDS = (
    "name",
    "description",
    "endpoint",
    "http_method",
    "request_format",
    "status",
    "subscriptions",
    "authentication",
    "custom_headers",
)


def webhook_error(status: int, code: str, title: str, detail: str = "") -> ApiError:
    # The webhooks API (a newer service) answers JSON:API style error lists.
    error = {"code": code, "title": title}
    if detail:
        error["detail"] = detail
    return ApiError(status, {"errors": [error]})


def ulid() -> str:
    """A ULID-like id such as Zendesk gives webhooks (`01FMJQSY40HZBCBVPZB9212S8V`)."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_ULID_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


class Webhooks:
    def __init__(self, state: dict[str, Any]):
        self.state = state
        self.tasks: set[asyncio.Task[None]] = set()

    def routes(self, endpoint: Endpoint) -> list[Route]:
        return [
            *api_routes(endpoint, "/webhooks", self.create_webhook, ["POST"]),
            *api_routes(endpoint, "/webhooks", self.list_webhooks, ["GET"]),
            *api_routes(endpoint, "/webhooks/{id}/signing_secret", self.signing_secret, ["GET", "POST"]),
            *api_routes(endpoint, "/webhooks/{id}", self.show_webhook, ["GET"]),
            *api_routes(endpoint, "/webhooks/{id}", self.change_webhook, ["PUT", "PATCH"]),
            *api_routes(endpoint, "/webhooks/{id}", self.delete_webhook, ["DELETE"]),
        ]

    def _webhook_json(self, webhook: dict[str, Any]) -> dict[str, Any]:
        return dict(webhook)  # the secret is only shown by /signing_secret

    def _get_webhook(self, raw_id: str) -> dict[str, Any]:
        webhook = self.state["webhooks"].get(raw_id)
        if webhook is None:
            raise webhook_error(404, "RecordNotFound", "Not Found", f"Webhook {raw_id} not found")
        return webhook

    def _validate_webhook(self, data: dict[str, Any]) -> None:
        for field in ("name", "endpoint", "http_method", "request_format", "status"):
            if not data.get(field):
                raise webhook_error(400, "InvalidValue", f"{field} is required")
        if data["http_method"] not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise webhook_error(400, "InvalidValue", "Invalid http_method")
        if data["request_format"] not in ("json", "xml", "form_encoded"):
            raise webhook_error(400, "InvalidValue", "Invalid request_format")
        if data["status"] not in ("active", "inactive"):
            raise webhook_error(400, "InvalidValue", "Invalid status")
        if not re.match(r"https?://", str(data["endpoint"])):
            raise webhook_error(400, "InvalidValue", "Invalid endpoint URL")
        subscriptions = data.get("subscriptions") or []
        if not isinstance(subscriptions, list) or not all(isinstance(x, str) for x in subscriptions):
            raise webhook_error(400, "InvalidValue", "subscriptions must be a list of strings")
        # Triggers and automations post through "conditional_ticket_events"; event types are subscribed directly.
        # One webhook serves one or the other.
        if CONDITIONAL in subscriptions and len(subscriptions) > 1:
            raise webhook_error(
                400, "InvalidValue", "A webhook subscribed to event types cannot also serve triggers or automations"
            )
        unknown = [x for x in subscriptions if x != CONDITIONAL and not x.startswith("zen:event-type:")]
        if unknown:
            raise webhook_error(400, "InvalidValue", f"Invalid subscriptions: {', '.join(unknown)}")

    async def create_webhook(self, request: Request, actor: dict[str, Any]) -> Response:
        data = (await read_json(request)).get("webhook")
        if not isinstance(data, dict):
            raise webhook_error(400, "InvalidValue", "webhook is required")
        self._validate_webhook(data)
        wid = ulid()
        stamp = now_iso()
        webhook = {k: data.get(k) for k in WEBHOOK_FIELDS if k in data}
        webhook.update(
            {
                "id": wid,
                "created_at": stamp,
                "created_by": str(actor["id"]),
                "updated_at": stamp,
                "updated_by": str(actor["id"]),
            }
        )
        webhook.setdefault("subscriptions", [])
        secret = (
            (data.get("signing_secret") or {}).get("secret") if isinstance(data.get("signing_secret"), dict) else None
        )
        self.state["webhooks"][wid] = webhook
        self.state["webhook_secrets"][wid] = secret or base64.b64encode(secrets.token_bytes(32)).decode()
        return JSONResponse({"webhook": self._webhook_json(webhook)}, status_code=201)

    async def list_webhooks(self, request: Request, actor: dict[str, Any]) -> Response:
        contains = request.query_params.get("filter[name_contains]")
        status = request.query_params.get("filter[status]")
        found = [
            w
            for w in self.state["webhooks"].values()
            if (not contains or contains.lower() in w["name"].lower()) and (not status or w["status"] == status)
        ]
        if request.query_params.get("sort") in ("name", "status"):
            found.sort(key=lambda w: w[request.query_params["sort"]])
        return JSONResponse(
            {
                "webhooks": [self._webhook_json(w) for w in found],
                "meta": {"has_more": False, "after_cursor": None, "before_cursor": None},
                "links": {"prev": None, "next": None},
            }
        )

    async def show_webhook(self, request: Request, actor: dict[str, Any]) -> Response:
        return JSONResponse({"webhook": self._webhook_json(self._get_webhook(request.path_params["id"]))})

    async def change_webhook(self, request: Request, actor: dict[str, Any]) -> Response:
        webhook = self._get_webhook(request.path_params["id"])
        data = (await read_json(request)).get("webhook")
        if not isinstance(data, dict):
            raise webhook_error(400, "InvalidValue", "webhook is required")
        if request.method == "PUT":
            merged = {k: data.get(k) for k in WEBHOOK_FIELDS if k in data}
        else:
            merged = {k: v for k, v in webhook.items() if k in WEBHOOK_FIELDS}
            merged.update({k: v for k, v in data.items() if k in WEBHOOK_FIELDS})
        self._validate_webhook(merged)
        for key in WEBHOOK_FIELDS:
            webhook.pop(key, None)
        webhook.update(merged)
        webhook.setdefault("subscriptions", [])
        webhook.update({"updated_at": now_iso(), "updated_by": str(actor["id"])})
        if isinstance(data.get("signing_secret"), dict) and data["signing_secret"].get("secret"):
            self.state["webhook_secrets"][webhook["id"]] = data["signing_secret"]["secret"]
        return Response(status_code=204)

    async def delete_webhook(self, request: Request, actor: dict[str, Any]) -> Response:
        webhook = self._get_webhook(request.path_params["id"])
        users = [
            t["id"]
            for t in self.state["triggers"].values()
            if any(
                a.get("field") == "notification_webhook" and (a.get("value") or [None])[0] == webhook["id"]
                for a in t["actions"]
            )
        ]
        if users:
            raise webhook_error(
                400,
                "WebhookInUse",
                "Webhook is used by triggers or automations",
                f"Remove it from triggers {users} first",
            )
        del self.state["webhooks"][webhook["id"]]
        self.state["webhook_secrets"].pop(webhook["id"], None)
        return Response(status_code=204)

    async def signing_secret(self, request: Request, actor: dict[str, Any]) -> Response:
        webhook = self._get_webhook(request.path_params["id"])
        if request.method == "POST":
            self.state["webhook_secrets"][webhook["id"]] = base64.b64encode(secrets.token_bytes(32)).decode()
        body = {"signing_secret": {"algorithm": "SHA256", "secret": self.state["webhook_secrets"][webhook["id"]]}}
        return JSONResponse(body, status_code=201 if request.method == "POST" else 200)

    def schedule(
        self, webhook: dict[str, Any], ticket: dict[str, Any], body: str, trigger_id: int | None = None
    ) -> None:
        """Deliver `body` to the webhook from a background task: a trigger's action (`trigger_id`) or an event the
        webhook subscribes to (events.py)."""
        delivery: dict[str, Any] = {
            "id": len(self.state["deliveries"]) + 1,
            "webhook_id": webhook["id"],
            "trigger_id": trigger_id,
            "ticket_id": ticket["id"],
            "endpoint": webhook["endpoint"],
            "method": webhook["http_method"],
            "body": body,
            "headers": {},
            "status": None,
            "error": None,
            "state": "pending",
            "at": now_iso(),
        }
        self.state["deliveries"].append(delivery)
        task = asyncio.get_running_loop().create_task(self._deliver(delivery, webhook))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, delivery: dict[str, Any], webhook: dict[str, Any]) -> None:
        secret = self.state["webhook_secrets"].get(webhook["id"], "")
        timestamp = now_iso()
        signature = base64.b64encode(
            hmac.new(secret.encode(), (timestamp + delivery["body"]).encode(), hashlib.sha256).digest()
        ).decode()
        content_type = {
            "json": "application/json; charset=utf-8",
            "xml": "application/xml; charset=utf-8",
            "form_encoded": "application/x-www-form-urlencoded",
        }.get(webhook["request_format"], "application/json")
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Zendesk Webhook",
            "X-Zendesk-Account-Id": str(ACCOUNT_ID),
            "X-Zendesk-Webhook-Id": webhook["id"],
            "X-Zendesk-Webhook-Invocation-Id": str(secrets.randbelow(10**10)),
            "X-Zendesk-Webhook-Signature": signature,
            "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
        }
        headers.update({str(k): str(v) for k, v in (webhook.get("custom_headers") or {}).items()})
        delivery["headers"] = headers
        try:
            async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT) as client:
                response = await client.request(
                    webhook["http_method"],
                    webhook["endpoint"],
                    content=delivery["body"].encode(),
                    headers=headers,
                )
            delivery["status"] = response.status_code
            delivery["state"] = "success" if response.status_code < 400 else "failed"
        except httpx.TimeoutException:
            delivery.update(state="timeout", error="timed out after 10 s")
        except httpx.HTTPError as exc:
            delivery.update(state="failed", error=f"{type(exc).__name__}: {exc}")
