"""One logged-in simple-salesforce client per process, refreshed once when its session expires.

simple-salesforce re-logs-in by itself when built with credentials, and for `sf.Case.create` it does so
without limit while the server keeps answering 401 (it ends in RecursionError). So the bridge logs in itself
through the public `SalesforceLogin` function and builds `Salesforce(session_id=..., instance=...)`, which
never re-logs-in: a 401 `INVALID_SESSION_ID` comes back as an exception, and `call` answers it with exactly
one new login and one retry. Concurrent calls that meet the same expired session share one new login (the
generation check).

Everything here is blocking; the connector runs it in worker threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import jwt
import requests
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import SalesforceExpiredSession

from bridge.api import BridgeError, PermanentError
from connectors.pooling import size_pool
from connectors.salesforce.errors import UPSTREAM, first_error, translate
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.transport import RoutingSession, login_domain

log = logging.getLogger(__name__)
T = TypeVar("T")

SOAP, OAUTH_PASSWORD, CLIENT_CREDENTIALS, JWT = "soap", "oauth_password", "client_credentials", "jwt"


@dataclass(frozen=True)
class LoginPlan:
    """Which login flow the settings ask for, and simple-salesforce's `domain` for the login URL."""

    flow: str
    domain: str


def plan_login(settings: SalesforceSettings) -> LoginPlan:
    """JWT bearer when a private key is set; OAuth client credentials when there is a consumer secret and
    no username; the OAuth username-password flow with a username, password and consumer secret; else SOAP.
    """
    s = settings
    if s.consumer_key and s.private_key_file:
        if not s.username:
            raise PermanentError(
                "SALESFORCE_USERNAME is required with SALESFORCE_PRIVATE_KEY_FILE (JWT bearer login)",
                upstream=UPSTREAM,
            )
        flow = JWT
    elif s.consumer_key and s.consumer_secret and not s.username:
        flow = CLIENT_CREDENTIALS
    elif s.username and s.password:
        flow = OAUTH_PASSWORD if (s.consumer_key and s.consumer_secret) else SOAP
    else:
        raise PermanentError(
            "Salesforce credentials are incomplete: set SALESFORCE_USERNAME and SALESFORCE_PASSWORD, "
            "or SALESFORCE_CONSUMER_KEY with SALESFORCE_CONSUMER_SECRET or "
            "SALESFORCE_PRIVATE_KEY_FILE",
            upstream=UPSTREAM,
        )
    domain = login_domain(s.login_url, my_domain_required=flow == CLIENT_CREDENTIALS)
    if flow == CLIENT_CREDENTIALS and domain in ("login", "test"):
        raise PermanentError(
            "OAuth client credentials login needs the org's My Domain URL in SALESFORCE_LOGIN_URL "
            "(https://<name>.my.salesforce.com), not login or test.salesforce.com",
            upstream=UPSTREAM,
        )
    return LoginPlan(flow=flow, domain=domain)


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter else None


class SalesforceClient:
    """Thread-safe holder of the logged-in `Salesforce` object; `call(action, fn)` runs `fn(sf)`."""

    def __init__(self, settings: SalesforceSettings, pool_size: int):
        self.settings = settings
        self.plan = plan_login(settings)
        self.session = RoutingSession(settings.login_url, self.plan.domain)
        size_pool(self.session, pool_size)
        self.version = settings.api_version.lstrip("v")
        self.instance: str | None = None
        self.logins = 0
        self._sf: Salesforce | None = None
        self._generation = 0
        self._lock = threading.Lock()

    # --- secrets never leave through messages or logs ---
    def redact(self, text: str) -> str:
        s = self.settings
        secrets = [
            _secret(s.password),
            _secret(s.security_token),
            _secret(s.consumer_secret),
        ]
        if s.password and s.security_token:
            secrets.append((_secret(s.password) or "") + (_secret(s.security_token) or ""))
        if self._sf is not None:
            secrets.append(self._sf.session_id)
        for secret in sorted((x for x in secrets if x and len(x) >= 4), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def _login(self) -> Salesforce:
        s, plan = self.settings, self.plan
        kwargs: dict[str, object] = {"session": self.session, "domain": plan.domain}
        if plan.flow == SOAP:
            kwargs.update(
                username=s.username,
                password=_secret(s.password),
                security_token=_secret(s.security_token) or "",
                sf_version=self.version,
            )
        elif plan.flow == OAUTH_PASSWORD:
            token = _secret(s.security_token) or ""
            kwargs.update(
                username=s.username,
                password=(_secret(s.password) or "") + token,
                consumer_key=s.consumer_key,
                consumer_secret=_secret(s.consumer_secret),
            )
        elif plan.flow == CLIENT_CREDENTIALS:
            kwargs.update(consumer_key=s.consumer_key, consumer_secret=_secret(s.consumer_secret))
        else:
            kwargs.update(
                username=s.username,
                consumer_key=s.consumer_key,
                privatekey_file=s.private_key_file,
            )
        try:
            session_id, instance = SalesforceLogin(**kwargs)  # type: ignore[arg-type]
        except requests.RequestException as exc:
            raise self._translate(exc, "log in") from None
        except OSError as exc:  # the private key file cannot be read
            raise PermanentError(
                f"SALESFORCE_PRIVATE_KEY_FILE cannot be read: {exc.strerror or type(exc).__name__}",
                upstream=UPSTREAM,
            ) from None
        except (ValueError, jwt.PyJWTError) as exc:  # a malformed private key
            raise PermanentError(
                f"Salesforce {plan.flow} login could not be prepared (is SALESFORCE_PRIVATE_KEY_FILE "
                f"an RSA private key in PEM form?): {type(exc).__name__}",
                upstream=UPSTREAM,
            ) from None
        except Exception as exc:  # noqa: BLE001 - every failure leaves as a typed bridge error, via the table
            raise self._translate(exc, "log in") from None
        self.session.trust_instance(instance)
        self.instance = instance
        self.logins += 1
        log.info("salesforce: logged in (%s flow) to %s", plan.flow, instance)
        return Salesforce(session_id=session_id, instance=instance, session=self.session, version=self.version)

    def _translate(self, exc: BaseException, action: str) -> BridgeError:
        return translate(
            exc, action=action, redact=self.redact, headers=self.session.last_headers(), flow=self.plan.flow
        )

    def current(self) -> tuple[Salesforce, int]:
        with self._lock:
            if self._sf is None:
                self._sf = self._login()
                self._generation += 1
            return self._sf, self._generation

    def _relogin(self, stale_generation: int) -> tuple[Salesforce, int]:
        with self._lock:
            if self._sf is None or self._generation == stale_generation:
                self._sf = None
                self._sf = self._login()
                self._generation += 1
            return self._sf, self._generation

    def call(self, action: str, fn: Callable[[Salesforce], T]) -> T:
        """`fn(sf)`; a 401 INVALID_SESSION_ID gets one new login and one retry, then a PermanentError."""
        sf, generation = self.current()
        try:
            return fn(sf)
        except SalesforceExpiredSession as exc:
            if first_error(exc.content)[0] not in (None, "INVALID_SESSION_ID"):
                raise self._translate(exc, action) from None
            log.info("salesforce: session expired or invalid; logging in again once")
        except Exception as exc:  # noqa: BLE001 - every failure leaves as a typed bridge error, via the table
            raise self._translate(exc, action) from None
        sf, _ = self._relogin(generation)
        try:
            return fn(sf)
        except SalesforceExpiredSession:
            raise PermanentError(
                f"Salesforce rejected a fresh session while trying to {action} (INVALID_SESSION_ID): "
                "check the integration user's API access and session security settings",
                upstream=UPSTREAM,
                upstream_code="INVALID_SESSION_ID",
            ) from None
        except Exception as exc:  # noqa: BLE001 - every failure leaves as a typed bridge error, via the table
            raise self._translate(exc, action) from None

    def close(self) -> None:
        with self._lock:
            self._sf = None
        self.session.close()
