"""The Zendesk emulator's apps: one installed private app with signed URLs, as the agent's browser meets it.

- `GET /api/v2/apps/{app_id}/public_key.pem` (API auth): the app's public key, what the bridge verifies with
  (Zendesk's "Get App Public Key").
- `GET /api/v2/apps/installations.json` (API auth): the installation, its `id` and `settings`.
- `POST /_emulator/apps/install` `{"location_url", "settings"}`: installs the app: its ticket-sidebar location URL as
  the manifest writes it (`{{setting.name}}` placeholders) and the installation settings.
- `GET /_emulator/apps/ticket_sidebar?user_id=&ticket_id=`: the agent opens a ticket. A host page shows the ticket
  and its comments and loads the app in a sidebar iframe the way Zendesk does with signedUrls: a POST to the
  location URL with a form field `token`, an RS256 JWT signed with the app's private key (claims as in Zendesk's
  "Building a server-side app, part 5": `iss` the account host, `aud` the installation's API URL, `sub` the user's
  API URL, `iat`, `exp` five minutes later, `context`). Without `ticket_id`, the newest ticket assigned to the user.
- `GET /_emulator/apps/zaf_sdk.js`: a stand-in for Zendesk's app framework SDK, enough for `ZAFClient.init()`,
  `client.get("ticket.id")` and `client.invoke()`: it asks the host page over postMessage, as the real SDK does.
"""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.faults import CONTROL_PREFIX
from bridge.sandbox.zendesk.core import API, Endpoint, not_found

APP_ID, INSTALLATION_ID = 71001, 81001
TOKEN_SECONDS = 300

SDK = """(function () {
  var pending = {}, next = 1;
  window.addEventListener("message", function (event) {
    var data = event.data || {};
    if (data.zafAnswer && pending[data.id]) { pending[data.id](data.value); delete pending[data.id]; }
  });
  function ask(kind, path, args) {
    return new Promise(function (resolve) {
      var id = next++;
      pending[id] = resolve;
      window.parent.postMessage({ zafAsk: kind, id: id, path: path, args: args }, "*");
    });
  }
  window.ZAFClient = { init: function () {
    return {
      get: function (path) { return ask("get", path); },
      invoke: function (name, args) { return ask("invoke", name, args); }
    };
  } };
})();
"""

HOST = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Zendesk (emulated): ticket {ticket_id}</title>
<style>
body {{ margin: 0; font: 14px system-ui, sans-serif; display: flex; height: 100vh; }}
.ticket {{ flex: 1; padding: 12px 16px; overflow-y: auto; background: #f8f9f9; }}
.sidebar {{ width: 320px; border-left: 1px solid #d8dcde; display: flex; flex-direction: column; }}
.sidebar h2 {{ margin: 0; padding: 8px 10px; font-size: 13px; background: #03363d; color: #fff; }}
iframe {{ flex: 1; border: 0; width: 320px; }}
.comment {{ margin: 8px 0; padding: 8px; background: #fff; border: 1px solid #e9ebed; white-space: pre-wrap; }}
.comment b {{ display: block; font-size: 12px; color: #68737d; }}
</style></head>
<body>
<section class="ticket"><h1>#{ticket_id} {subject}</h1><p>Agent: {agent}</p>
<h2>Comments</h2><div id="comments"></div></section>
<aside class="sidebar"><h2>Apps: Helpdesk Bridge chat</h2><iframe name="app" id="app" title="app"></iframe></aside>
<form id="signed" method="post" target="app" action="{action}"><input type="hidden" name="token" value="{token}"></form>
<script>
var ticketId = {ticket_json};
window.addEventListener("message", function (event) {{
  var data = event.data || {{}};
  if (!data.zafAsk) return;
  var value = data.zafAsk === "get" && data.path === "ticket.id" ? {{ "ticket.id": ticketId }} : {{}};
  event.source.postMessage({{ zafAnswer: true, id: data.id, value: value }}, "*");
}});
function comments() {{
  fetch("{view_url}").then(function (r) {{ return r.json(); }}).then(function (view) {{
    var box = document.getElementById("comments");
    box.textContent = "";
    view.comments.forEach(function (c) {{
      var el = document.createElement("div");
      el.className = "comment";
      var who = document.createElement("b");
      who.textContent = c.author + (c.public ? "" : " (internal note)");
      el.appendChild(who);
      el.appendChild(document.createTextNode(c.body));
      box.appendChild(el);
    }});
  }});
}}
comments();
setInterval(comments, 1500);
document.getElementById("signed").submit();
</script>
</body></html>
"""


class ZendeskApps:
    """The installed app: its key pair, installation settings and location URL."""

    def __init__(self, state: dict[str, Any]):
        self.state = state
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.location_url: str | None = None
        self.settings: dict[str, Any] = {}

    def public_pem(self) -> str:
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        return self.key.public_key().public_bytes(serialization.Encoding.PEM, spki).decode()

    def base(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def token(self, request: Request, user_id: int) -> str:
        base, now = self.base(request), int(time.time())
        claims = {
            "iss": request.url.netloc,
            "iat": now,
            "exp": now + TOKEN_SECONDS,
            "aud": f"{base}/api/v2/apps/installations/{INSTALLATION_ID}.json",
            "sub": f"{base}/api/v2/users/{user_id}.json",
            "context": {"product": "support", "location": "ticket_sidebar"},
        }
        return jwt.encode(claims, self.key, algorithm="RS256")

    def location(self) -> str:
        if not self.location_url:
            raise LookupError("the app is not installed: POST /_emulator/apps/install first")
        return re.sub(
            r"\{\{\s*setting\.(\w+)\s*\}\}", lambda m: str(self.settings.get(m.group(1), "")), self.location_url
        )

    # --- the API ------------------------------------------------------------------------------------------------

    async def public_key(self, request: Request, actor: dict[str, Any]) -> Response:
        if request.path_params["id"] != str(APP_ID):
            raise not_found()
        return Response(self.public_pem(), media_type="application/x-pem-file")

    async def installations(self, request: Request, actor: dict[str, Any]) -> Response:
        installs = []
        if self.location_url:
            installs.append({"id": INSTALLATION_ID, "app_id": APP_ID, "enabled": True, "settings": self.settings})
        return JSONResponse({"installations": installs})

    # --- control: installing, and the agent's browser -----------------------------------------------------------

    async def install(self, request: Request) -> Response:
        data = await request.json()
        self.location_url = str(data["location_url"])
        self.settings = dict(data.get("settings") or {})
        return JSONResponse({"app_id": APP_ID, "installation_id": INSTALLATION_ID, "location": self.location()})

    async def sidebar(self, request: Request) -> Response:
        state = self.state
        try:
            user_id = int(request.query_params["user_id"])
            agent = state["users"][user_id]
            tickets = [t for t in state["tickets"].values() if t.get("assignee_id") == user_id]
            wanted = request.query_params.get("ticket_id")
            ticket = state["tickets"][int(wanted)] if wanted else max(tickets, key=lambda t: t["id"])
            action = self.location()
        except (KeyError, ValueError, LookupError) as exc:
            message = "give user_id (an agent) and ticket_id, or assign a ticket to the agent first"
            return JSONResponse({"error": "InvalidRequest", "description": f"{message} ({exc})"}, status_code=400)
        query = f"origin={self.base(request)}&app_guid={uuid.uuid4()}"
        page = HOST.format(
            ticket_id=ticket["id"],
            ticket_json=json.dumps(ticket["id"]),
            subject=html.escape(str(ticket.get("subject") or "")),
            agent=html.escape(str(agent.get("name") or user_id)),
            action=html.escape(f"{action}{'&' if '?' in action else '?'}{query}"),
            token=self.token(request, user_id),
            view_url=f"{CONTROL_PREFIX}apps/ticket_view?ticket_id={ticket['id']}",
        )
        return HTMLResponse(page)

    async def ticket_view(self, request: Request) -> Response:
        state = self.state
        ticket_id = int(request.query_params.get("ticket_id") or 0)
        comments = [
            {
                "author": state["users"].get(c["author_id"], {}).get("name") or c["author_id"],
                "body": c["body"],
                "public": c["public"],
            }
            for c in state["comments"].get(ticket_id, [])
        ]
        return JSONResponse({"comments": comments})

    async def sdk(self, request: Request) -> Response:
        return Response(SDK, media_type="text/javascript")

    def routes(self, endpoint: Endpoint) -> list[Route]:
        return [
            Route(API + "/apps/{id}/public_key.pem", endpoint(self.public_key), methods=["GET"]),
            Route(API + "/apps/installations.json", endpoint(self.installations), methods=["GET"]),
            Route(CONTROL_PREFIX + "apps/install", self.install, methods=["POST"]),
            Route(CONTROL_PREFIX + "apps/ticket_sidebar", self.sidebar, methods=["GET"]),
            Route(CONTROL_PREFIX + "apps/ticket_view", self.ticket_view, methods=["GET"]),
            Route(CONTROL_PREFIX + "apps/zaf_sdk.js", self.sdk, methods=["GET"]),
        ]
