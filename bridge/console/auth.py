"""Who may use the console: short-lived session tokens, and the Zendesk app's signed-URL JWT that opens them.

A console session is a stateless HS256 JWT (PyJWT) under a key derived from IM_SECRET_KEY: it names one agent's IM
account and one group, lives BRIDGE_CONSOLE_SESSION_SECONDS, and is renewed by the open page. The page keeps it in
memory and sends it as `Authorization: Bearer`; it never goes into a URL or a cookie.

A Zendesk *grant* is the same kind of token for the step between Zendesk's first load (which proves the agent but
names no ticket) and the page asking for the ticket it is shown beside.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

import jwt

from bridge.errors import SignatureError

SESSION_AUDIENCE = "helpdesk-bridge-console"
GRANT_AUDIENCE = "helpdesk-bridge-console-grant"
GRANT_SECONDS = 300
ZAF_LEEWAY = 30  # seconds of clock difference allowed with Zendesk
# Zendesk's `sub` names the user: its id, or its API URL (".../api/v2/users/<id>.json").
_ZENDESK_USER = re.compile(r"^(?:[0-9]+|.*/users/([0-9]+)(?:\.json)?)$")


class SessionExpired(SignatureError):
    code = "session_expired"


def session_key(im_secret_key: str) -> bytes:
    """The console's signing key, derived so that a console token can never pass for anything IM signs."""
    return hmac.new(im_secret_key.encode(), b"helpdesk-bridge console sessions v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class Session:
    """One agent on one ticket's group. `user_id` is the helpdesk user id, `agent` its IM account."""

    provider: str
    user_id: str
    agent: str
    group_id: str
    nick: str
    expires_at: int

    def claims(self) -> dict[str, Any]:
        return {
            "sub": self.agent,
            "prv": self.provider,
            "uid": self.user_id,
            "grp": self.group_id,
            "nck": self.nick,
        }


def issue(key: bytes, session: Session, lifetime: int, now: float | None = None) -> tuple[str, int]:
    """A token for `session` and the unix time it expires."""
    issued = int(time.time() if now is None else now)
    claims = {**session.claims(), "aud": SESSION_AUDIENCE, "iat": issued, "exp": issued + lifetime}
    return jwt.encode(claims, key, algorithm="HS256"), issued + lifetime


def verify(key: bytes, token: str | None) -> Session:
    claims = _decode(key, token, SESSION_AUDIENCE, "console session", ["sub", "prv", "uid", "grp", "exp"])
    return Session(
        provider=str(claims["prv"]),
        user_id=str(claims["uid"]),
        agent=str(claims["sub"]),
        group_id=str(claims["grp"]),
        nick=str(claims.get("nck") or ""),
        expires_at=int(claims["exp"]),
    )


def issue_grant(key: bytes, provider: str, user_id: str) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "prv": provider, "aud": GRANT_AUDIENCE, "iat": now, "exp": now + GRANT_SECONDS}
    return jwt.encode(claims, key, algorithm="HS256")


def verify_grant(key: bytes, token: str | None) -> tuple[str, str]:
    """(provider, helpdesk user id) of a grant."""
    claims = _decode(key, token, GRANT_AUDIENCE, "console grant", ["sub", "prv", "exp"])
    return str(claims["prv"]), str(claims["sub"])


def _decode(key: bytes, token: str | None, audience: str, what: str, required: list[str]) -> dict[str, Any]:
    if not token:
        raise SignatureError(f"this call needs a {what}: send Authorization: Bearer <token>")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["HS256"], audience=audience, options={"require": required}
        )
    except jwt.ExpiredSignatureError:
        raise SessionExpired(f"the {what} has expired; open the console again from the ticket") from None
    except jwt.InvalidTokenError:
        raise SignatureError(f"the {what} is not valid; open the console again from the ticket") from None
    return claims


def bearer(header: str | None) -> str | None:
    scheme, _, value = (header or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


# --- Zendesk's signed URLs --------------------------------------------------------------------------------------


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
