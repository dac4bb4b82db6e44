"""`helpdesk-bridge sandbox`: the bridge with emulators of Tencent IM, Salesforce and Zendesk on loopback, SQLite in
a temporary folder, and a printed walkthrough. Nothing here reads the real configuration: no account is needed and
no real upstream is ever called."""

from __future__ import annotations

import errno
import os
import secrets
import shlex
import socket
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from bridge import auth
from bridge.app import create_app
from bridge.config import Settings, load_settings
from bridge.logs import configure_logging
from bridge.sandbox.customer import create_app as create_customer
from bridge.sandbox.im import create_app as create_im
from bridge.sandbox.salesforce import create_app as create_sf
from bridge.sandbox.server import BackgroundServer, free_port
from bridge.sandbox.zendesk import create_app as create_zd
from connectors.zendesk import sidebar_app
from connectors.zendesk.setup import setup as zendesk_setup

SDKAPPID = 1400000000
SF_USER, SF_APP = "agent@example.com", ("sandbox-console", "sandbox-console-secret")
ZD_EMAIL = "admin@example.com"


@dataclass
class Sandbox:
    """The running emulators and the settings of a bridge wired to them."""

    im: BackgroundServer
    salesforce: BackgroundServer
    zendesk: BackgroundServer
    settings: Settings
    secrets: dict[str, str]
    folder: tempfile.TemporaryDirectory[str]
    customer: BackgroundServer

    def stop(self) -> None:
        for server in (self.im, self.salesforce, self.zendesk, self.customer):
            server.stop()
        self.folder.cleanup()


def start_sandbox(port: int, host: str = "127.0.0.1") -> Sandbox:
    values = {
        name: secrets.token_hex(16)
        for name in ("im_key", "callout", "app", "sf_password", "sf_token", "zd_token", "webhook", "callback")
    }
    bridge_url = f"http://{host}:{port}"
    im = BackgroundServer(
        create_im(
            SDKAPPID, values["im_key"], callback_url=f"{bridge_url}/callbacks/im", callback_token=values["callback"]
        )
    ).start()
    salesforce = BackgroundServer(
        create_sf(
            username=SF_USER,
            password=values["sf_password"],
            security_token=values["sf_token"],
            consumer_key=SF_APP[0],
            consumer_secret=SF_APP[1],
        )
    ).start()
    zendesk = BackgroundServer(create_zd(email=ZD_EMAIL, api_token=values["zd_token"])).start()
    app_key, installation = install_zendesk_app(zendesk.url, values["zd_token"], bridge_url)
    customer = BackgroundServer(create_customer(bridge_url, values["callout"], im.url)).start()
    folder = tempfile.TemporaryDirectory(prefix="helpdesk-bridge-sandbox-")
    # Made only from what the sandbox passes: the environment and `.env` are ignored on purpose.
    settings = load_settings(
        environment=False,
        im_sdkappid=SDKAPPID,
        im_secret_key=values["im_key"],
        im_api_base=im.url,
        im_callback_token=values["callback"],
        salesforce_login_url=salesforce.url,
        salesforce_username=SF_USER,
        salesforce_password=values["sf_password"],
        salesforce_security_token=values["sf_token"],
        zendesk_url=zendesk.url,
        zendesk_email=ZD_EMAIL,
        zendesk_api_token=values["zd_token"],
        zendesk_webhook_secret=values["webhook"],
        zendesk_app_public_key=app_key,
        zendesk_app_installation_id=installation,
        zendesk_app_sdk_url=zendesk.url + "/_emulator/apps/zaf_sdk.js",
        bridge_database_url=f"sqlite:///{folder.name}/bridge.db",
        bridge_callout_secret=values["callout"],
        bridge_app_secret=values["app"],
        bridge_default_connector="zendesk",
        bridge_host=host,
        bridge_port=port,
        bridge_sandbox=True,
    )
    # Zendesk's side of the loop, as an admin would set it up: the signed webhook, subscribed to ticket events.
    zendesk_setup(settings.connectors["zendesk"], bridge_url)  # type: ignore[arg-type]
    return Sandbox(im, salesforce, zendesk, settings, values, folder, customer)


def install_zendesk_app(zendesk_url: str, api_token: str, bridge_url: str) -> tuple[str, str]:
    """Install the ticket-sidebar app in the Zendesk emulator, as an admin would upload it (its manifest's location,
    the bridge URL setting); the app's public key and installation id, read back through Zendesk's Apps API."""
    location = sidebar_app.manifest()["location"]["support"]["ticket_sidebar"]["url"]
    httpx.post(
        zendesk_url + "/_emulator/apps/install", json={"location_url": location, "settings": {"bridge_url": bridge_url}}
    ).raise_for_status()
    with httpx.Client(base_url=zendesk_url + "/api/v2", auth=(f"{ZD_EMAIL}/token", api_token)) as api:
        installation = api.get("/apps/installations.json").json()["installations"][0]
        key = api.get(f"/apps/{installation['app_id']}/public_key.pem")
        key.raise_for_status()
    return key.text, str(installation["id"])


def salesforce_token(sandbox: Sandbox) -> str:
    """A session for the walkthrough's "Salesforce admin" (the OAuth password flow of a connected app)."""
    answer = httpx.post(
        sandbox.salesforce.url + "/services/oauth2/token",
        data={
            "grant_type": "password",
            "username": SF_USER,
            "password": sandbox.secrets["sf_password"] + sandbox.secrets["sf_token"],
            "client_id": SF_APP[0],
            "client_secret": SF_APP[1],
        },
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def walkthrough(sandbox: Sandbox) -> str:
    s = sandbox.settings
    bridge = f"http://{s.bridge_host}:{s.bridge_port}"
    sf_state = httpx.get(sandbox.salesforce.url + "/_emulator/state").json()
    zd_users = httpx.get(sandbox.zendesk.url + "/_emulator/state").json()["users"]
    zd_agent = next(u["id"] for u in zd_users.values() if u["role"] == "agent")
    sf_agent, sf_agent2 = sf_state["agent_ids"][:2]
    zd_prefix, sf_prefix = (sandbox.settings.connectors[name].agent_prefix for name in ("zendesk", "salesforce"))
    usersig = auth.gen_usersig(SDKAPPID, sandbox.secrets["im_key"], "customer1", 86400)
    # Values are quoted for bash: a Salesforce session id holds a "!", which an interactive bash would expand.
    q, python = shlex.quote, shlex.quote(sys.executable)
    return f"""
Helpdesk Bridge sandbox: the bridge and emulators of Tencent IM, Salesforce and Zendesk, all on loopback.

  bridge      {bridge}
  IM          {sandbox.im.url}          (state: {sandbox.im.url}/_emulator/state)
  Salesforce  {sandbox.salesforce.url}  (state: {sandbox.salesforce.url}/_emulator/state)
  Zendesk     {sandbox.zendesk.url}     (state: {sandbox.zendesk.url}/_emulator/state)

Paste these into a bash shell (they define the variables, `signed` for signed calls and `pp` to read JSON: `pp`
alone pretty-prints, `pp ticket.id` prints one value):

export BRIDGE={bridge} IM={sandbox.im.url} SF={sandbox.salesforce.url} ZD={sandbox.zendesk.url}
export PY={python} HB="{python} -m bridge.cli"  # helpdesk-bridge, wherever it is installed
export BRIDGE_CALLOUT_SECRET={q(s.bridge_callout_secret.get_secret_value() if s.bridge_callout_secret else "")}
export BRIDGE_APP_SECRET={q(s.bridge_app_secret.get_secret_value() if s.bridge_app_secret else "")}
export USERSIG={q(usersig)}
export SF_TOKEN={q(salesforce_token(sandbox))} ZD_AUTH={q(f"{ZD_EMAIL}/token:{sandbox.secrets['zd_token']}")}
signed() {{ curl -s -X "${{3:-POST}}" "$BRIDGE$1" -H 'Content-Type: application/json' \\
  -H @<(printf %s "$2" | $HB sign --method "${{3:-POST}}" --target "$1") ${{2:+-d "$2"}}; echo; }}
pp() {{ "$PY" -m bridge.sandbox.pretty "$@"; }}

Watch a conversation, in two browser windows:
  a. The customer: {sandbox.customer.url}/ -> Start chat. A Zendesk ticket opens with its chat group and greeting.
  b. An agent takes it (the newest ticket, the one the customer page opened):
       TICKET=$(curl -s "$ZD/api/v2/tickets.json?sort_order=desc" -u "$ZD_AUTH" | pp tickets.0.id)
       echo "TICKET=$TICKET"
       curl -s -X PUT $ZD/api/v2/tickets/$TICKET.json -u "$ZD_AUTH" -H 'Content-Type: application/json' \\
         -d '{{"ticket":{{"assignee_id":{zd_agent}}}}}' | pp ticket.assignee_id
     The agent joins the chat under their Zendesk name; the customer's window says so.
  c. The agent's console, in the ticket's sidebar as Zendesk shows it (the app's signed first load):
       {sandbox.zendesk.url}/_emulator/apps/ticket_sidebar?user_id={zd_agent}
  Write in both windows: each message reaches the other side at once and lands in the ticket's comments.

1. A customer opens a Zendesk ticket from the app (authenticated by their UserSig); TICKET keeps its number:
     TICKET=$(curl -s -X POST $BRIDGE/zendesk/createticket -H "Authorization: UserSig $USERSIG" \\
       -H 'Content-Type: application/json' \\
       -d '{{"userId":"customer1","caseInfo":{{"subject":"Printer on fire","name":"Jane Doe"}}}}' \\
       | pp ticketId); echo "TICKET=$TICKET"
   Its group, ZENDESK#<ticket>, holds the customer, and the greeting went out:
     curl -s $IM/_emulator/state | pp "groups.ZENDESK#$TICKET.Members"
     curl -s $IM/_emulator/state | pp "notifications.ZENDESK#$TICKET"

2. An agent takes the ticket in Zendesk. Zendesk's ticket event reaches the bridge's webhook and the agent joins the
   group as the IM account {zd_prefix}{zd_agent} (agents' accounts are prefixed, so no customer's userId is ever an
   agent's), named as Zendesk names the agent:
     curl -s -X PUT $ZD/api/v2/tickets/$TICKET.json -u "$ZD_AUTH" -H 'Content-Type: application/json' \\
       -d '{{"ticket":{{"assignee_id":{zd_agent}}}}}' | pp ticket.assignee_id
     sleep 1
     signed "/links?provider=zendesk&ticketId=$TICKET" "" GET | pp
     curl -s $IM/_emulator/state | pp accounts.{zd_prefix}{zd_agent}.Nick

3. The customer writes in the chat; the message lands in the ticket as a comment (one line each):
     curl -s -X POST $IM/_emulator/send -H 'Content-Type: application/json' \\
       -d '{{"GroupId":"ZENDESK#'$TICKET'","From_Account":"customer1","Text":"It is still smoking"}}' | pp
     sleep 2
     curl -s $ZD/api/v2/tickets/$TICKET/comments.json -u "$ZD_AUTH" | pp comments

4. The agent answers in Zendesk with a public comment, and writes an internal note. The customer's chat shows the
   answer, sent as the agent, whose name the app shows (Nicks); the note never reaches the chat:
     curl -s -X PUT $ZD/api/v2/tickets/$TICKET.json -u "$ZD_AUTH" -H 'Content-Type: application/json' \\
       -d '{{"ticket":{{"comment":{{"body":"Unplug it, I am sending one","public":true,"author_id":{zd_agent}}}}}}}' \\
       | pp ticket.status
     curl -s -X PUT $ZD/api/v2/tickets/$TICKET.json -u "$ZD_AUTH" -H 'Content-Type: application/json' \\
       -d '{{"ticket":{{"comment":{{"body":"Note: check the warranty","public":false,"author_id":{zd_agent}}}}}}}' \\
       | pp ticket.status
     sleep 1
     curl -s -X POST $IM/_emulator/client/messages -H 'Content-Type: application/json' \\
       -d '{{"UserID":"customer1","UserSig":"'"$USERSIG"'","GroupId":"ZENDESK#'"$TICKET"'"}}' | pp

5. Salesforce: open a Case (CASE keeps its Id), give it to an agent, and send the event the Apex trigger would send
   (the agent joins as {sf_prefix}{sf_agent}):
     CASE=$(signed /salesforce/createticket '{{"userId":"customer2","caseInfo":{{"subject":"Refund please"}}}}' \\
       | pp ticketId); echo "CASE=$CASE"
     curl -s -X PATCH $SF/services/data/v62.0/sobjects/Case/$CASE -H "Authorization: Bearer $SF_TOKEN" \\
       -H 'Content-Type: application/json' -d '{{"OwnerId":"{sf_agent}"}}'
     signed /salesforce/events '{{"events":[{{"type":"owner_changed","caseId":"'$CASE'","ownerId":"{sf_agent}"}}]}}'
     sleep 1
     signed "/links/$CASE" "" GET | pp

6. The seed's primitives take IM accounts as given (here a second agent's), signed; and the job queue:
     signed /joingroup '{{"groupId":"'$CASE'","userId":"{sf_prefix}{sf_agent2}"}}' | pp
     BRIDGE_DATABASE_URL={s.bridge_database_url} $HB jobs list

Press Ctrl-C to stop; everything lives in memory and in {sandbox.folder.name}, which is removed at exit.
"""


def port_problem(host: str, port: int) -> str | None:
    """Why the bridge could not listen on `port`, in words that say what to do; None when it can."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            reason = (
                "is in use (another sandbox or bridge?)"
                if exc.errno == errno.EADDRINUSE
                else f"cannot be used ({exc.strerror})"
            )
            return (
                f"port {port} on {host} {reason}: run `helpdesk-bridge sandbox --port {free_port(host)}` "
                "(any free port), or stop what listens there"
            )
    return None


def run_sandbox(port: int | None = None) -> int:
    port = port or int(os.environ.get("BRIDGE_PORT") or os.environ.get("PORT") or 8000)
    configure_logging()
    problem = port_problem("127.0.0.1", port)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    sandbox = start_sandbox(port)
    try:
        config = uvicorn.Config(
            create_app(sandbox.settings), host=sandbox.settings.bridge_host, port=port, log_level="warning"
        )
        server = uvicorn.Server(config)
        original_startup = server.startup

        async def startup(sockets: Any = None) -> None:
            await original_startup(sockets)
            if server.started:
                print(walkthrough(sandbox), flush=True)

        server.startup = startup  # type: ignore[method-assign]
        server.run()
        return 0 if server.started else 1
    finally:
        sandbox.stop()
