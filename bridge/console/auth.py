"""Who may use the console: short-lived session tokens, and the grants that lead to them.

A console session is a stateless HS256 JWT (PyJWT) under a key derived from IM_SECRET_KEY: it names one agent's IM
account and one group, lives BRIDGE_CONSOLE_SESSION_SECONDS, and is renewed by the open page. The page keeps it in
memory and sends it as `Authorization: Bearer`; it never goes into a URL or a cookie.

A *grant* is the same kind of token for the step between a helpdesk's first load of the page (which proves the agent
but names no ticket: the Zendesk app's signed URL) and the page asking for the ticket it is shown beside.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import jwt

from bridge.errors import SignatureError

SESSION_AUDIENCE = "helpdesk-bridge-console"
GRANT_AUDIENCE = "helpdesk-bridge-console-grant"
GRANT_SECONDS = 300


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
