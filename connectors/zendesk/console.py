"""The agent console in Zendesk's ticket sidebar: the app's signed first load, and the session for its ticket.

The app (connectors/zendesk/app/, `signedUrls`) makes Zendesk load `POST /console/zendesk` with an RS256 JWT signed
with the app's key: it proves which agent this is, and the bridge answers with the app's page and a grant for that
agent. The page asks the Zendesk app framework which ticket it sits beside and trades the grant for that ticket's
session (`POST /console/api/sessions/zendesk`), which the bridge gives only to the ticket's assignee, read from
Zendesk then.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

import jwt
from pydantic import StringConstraints
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.api import (
    Body,
    NotFound,
    SignatureError,
    console_grant,
    console_page,
    issue_console_grant,
    ok,
    open_console_session,
    parse_json,
    raw_body,
    settings_of,
    validate,
)
from connectors.zendesk.settings import ZendeskSettings

# The app's sidebar page: shipped in the app, served by the bridge because Zendesk posts its signed token here; and
# its script, which gets the session for the ticket beside the app.
PAGE = files("connectors.zendesk") / "app" / "assets" / "iframe.html"
SCRIPT = files("connectors.zendesk") / "console.js"
ZAF_LEEWAY = 30  # seconds of clock difference allowed with Zendesk
# Zendesk's `sub` names the user: its id, or its API URL (".../api/v2/users/<id>.json").
_ZENDESK_USER = re.compile(r"^(?:[0-9]+|.*/users/([0-9]+)(?:\.json)?)$")


class ConsoleTicketBody(Body):
    """The Zendesk ticket the app sits beside (checked against Zendesk: the agent must have it)."""

    ticketId: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]


def zendesk_audience(zendesk_url: str, installation_id: str) -> str:
    """The `aud` of the app's JWTs: the installation's API URL (Zendesk's "Building a server-side app, part 5")."""
    return f"{zendesk_url.rstrip('/')}/api/v2/apps/installations/{installation_id}.json"


def verify_zendesk_app(public_key: str, audience: str, token: str | None) -> str:
    """The Zendesk user id in a signed-URL JWT (RS256, the app's key pair); SignatureError otherwise.

    Only the signature, the audience and the lifetime are trusted here; which ticket is shown comes later and is
    checked against Zendesk itself."""
    if not token:
        raise SignatureError("Zendesk did not send the app's token: turn on signedUrls in the app's manifest")
    try:
        claims = jwt.decode(
            token,
            public_key,
            algorithms=["RS256"],
            audience=audience,
            leeway=ZAF_LEEWAY,
            options={"require": ["exp", "iat", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise SignatureError("the Zendesk app's token has expired; reload the ticket") from None
    except jwt.InvalidAudienceError:
        raise SignatureError(
            "the Zendesk app's token is for another installation: check ZENDESK_URL and ZENDESK_APP_INSTALLATION_ID"
        ) from None
    except jwt.InvalidTokenError:
        raise SignatureError("the Zendesk app's token is not valid for ZENDESK_APP_PUBLIC_KEY") from None
    match = _ZENDESK_USER.match(str(claims["sub"]))
    user_id = match and (match.group(1) or str(claims["sub"]))
    if not user_id:
        raise SignatureError("the Zendesk app's token does not name a Zendesk user")
    return user_id


async def zendesk_entry(request: Request) -> Response:
    """Zendesk loads the app's URL with a POST carrying the signed JWT (signedUrls): it proves which agent this is."""
    settings = settings_of(request, ZendeskSettings)
    key, installation = settings.app_key, settings.app_installation_id
    if not (key and installation and settings.url):
        raise NotFound(
            "the Zendesk app is not set up: set ZENDESK_APP_PUBLIC_KEY and ZENDESK_APP_INSTALLATION_ID",
            code="zendesk_app_disabled",
        )
    # An urlencoded form, as browsers post it (parsed here: no multipart parser needed for one field).
    token = parse_qs((await raw_body(request)).decode("latin-1")).get("token", [None])[0]
    user_id = verify_zendesk_app(key, zendesk_audience(settings.url, installation), token)
    sdk = settings.app_sdk_url
    grant = issue_console_grant(request, "zendesk", user_id)
    parts = urlsplit(sdk)
    bootstrap = {"helpdesk": "zendesk", "zendesk": {"grant": grant, "sdk": sdk}}
    return console_page(PAGE, bootstrap, (f"{parts.scheme}://{parts.netloc}",))


async def zendesk_script(request: Request) -> Response:
    return Response(SCRIPT.read_text(encoding="utf-8"), media_type="text/javascript")


async def zendesk_session(request: Request) -> JSONResponse:
    provider, user_id = console_grant(request)
    data = validate(ConsoleTicketBody, parse_json(await raw_body(request)))
    return ok(await open_console_session(request, provider, user_id, data.ticketId), 201)
