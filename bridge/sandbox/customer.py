"""The sandbox's customer side: a small web app that plays a company's app and its backend.

The page (static/customer.html) asks its backend to start a chat; the backend, holding the bridge's secret as a
customer backend would, opens a Zendesk ticket (signed `POST /zendesk/createticket`) and gets the customer's UserSig
(signed `POST /usersig`). From then on the page talks to IM itself, as an app does with the IM SDK: it sends and
reads the group's messages through the IM emulator's client API, authenticated by the customer's UserSig.
"""

from __future__ import annotations

import json
import secrets
from importlib.resources import files
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bridge import auth

STATIC = files("bridge.sandbox") / "static"


def create_app(bridge_url: str, callout_secret: str, im_url: str, provider: str = "zendesk") -> Starlette:
    def signed(client: httpx.Client, target: str, body: dict[str, Any]) -> dict[str, Any]:
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **auth.signed_call_headers(callout_secret, "POST", target, raw)}
        answer = client.post(bridge_url + target, content=raw, headers=headers)
        if answer.status_code >= 300:
            error = answer.json().get("error", {})
            raise ValueError(error.get("message") or f"the bridge answered {answer.status_code}")
        return dict(answer.json())

    async def page(request: Request) -> Response:
        return HTMLResponse((STATIC / "customer.html").read_text(encoding="utf-8"))

    async def start(request: Request) -> Response:
        data = await request.json()
        name = str(data.get("name") or "").strip()[:80] or "Jane Customer"
        subject = str(data.get("subject") or "").strip()[:200] or "I need help"
        user_id = f"customer-{secrets.token_hex(3)}"
        body = {"userId": user_id, "caseInfo": {"subject": subject, "desc": subject, "name": name}}
        try:
            with httpx.Client(timeout=30) as client:
                ticket = signed(client, f"/{provider}/createticket", body)
                sig = signed(client, "/usersig", {"userId": user_id, "expireSeconds": 86400})
        except (ValueError, httpx.HTTPError) as exc:
            return JSONResponse({"error": {"code": "bridge_error", "message": str(exc)}}, status_code=502)
        return JSONResponse(
            {
                "userId": user_id,
                "userSig": sig["userSig"],
                "groupId": ticket["groupId"],
                "ticketId": ticket["ticketId"],
                "im": im_url,
            }
        )

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/api/start", start, methods=["POST"]),
            Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        ]
    )
