"""How simple-salesforce reaches any login host, over https or plain http.

simple-salesforce 1.12 builds every URL itself: it logs in at `https://<domain>.salesforce.com` and calls the
REST API at `https://<instance>`, dropping the scheme the server gave. `SALESFORCE_LOGIN_URL` may name another
host (a My Domain, a proxy, a loopback emulator) and plain `http://`. Instead of patching its internals, the
bridge passes its public `session=` option a `requests.Session` subclass that rewrites the URL of each request
before sending it:

- `https://<domain>.salesforce.com/...` (the login host simple-salesforce made up from `domain`) goes to the
  scheme, host and port of `SALESFORCE_LOGIN_URL`;
- when `SALESFORCE_LOGIN_URL` is plain http (loopback emulators and tests), the instance host returned by the
  login is reached over plain http too; real Salesforce always answers with https instances, which are left
  alone.

It also gives every request a default timeout (requests has none) and remembers, per thread, the headers of
the last response, so the error table can read `Retry-After`, which simple-salesforce's exceptions do not
keep.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.structures import CaseInsensitiveDict

SALESFORCE_SUFFIX = ".salesforce.com"
# A My Domain-shaped placeholder: simple-salesforce refuses client credentials against `login` and `test`.
PLACEHOLDER_MY_DOMAIN = "bridge.my"
DEFAULT_TIMEOUT = (10.0, 60.0)  # connect, read (seconds)


def login_domain(login_url: str, *, my_domain_required: bool = False) -> str:
    """The `domain` argument simple-salesforce wants for a login URL: `login`, `test`, `acme.my`, ...

    Hosts outside salesforce.com get a placeholder (`login`, or a My Domain-shaped one when the flow needs a
    My Domain) that `RoutingSession` sends to the real host.
    """
    host = (urlsplit(login_url).hostname or "").lower()
    if host.endswith(SALESFORCE_SUFFIX):
        return host[: -len(SALESFORCE_SUFFIX)]
    return PLACEHOLDER_MY_DOMAIN if my_domain_required else "login"


class RoutingSession(requests.Session):
    """A requests.Session that sends simple-salesforce's made-up URLs where `login_url` says."""

    def __init__(self, login_url: str, domain: str, timeout: Any = DEFAULT_TIMEOUT):
        super().__init__()
        parts = urlsplit(login_url)
        self.login_scheme = parts.scheme
        self.login_netloc = parts.netloc
        self.placeholder_netloc = f"{domain}{SALESFORCE_SUFFIX}".lower()
        self.timeout = timeout
        self.plain_http_netlocs: set[str] = {parts.netloc.lower()} if parts.scheme == "http" else set()
        self._local = threading.local()

    def trust_instance(self, instance: str) -> None:
        """Record the instance host a login returned; behind an http login URL it is plain http as well."""
        if self.login_scheme == "http":
            self.plain_http_netlocs.add(instance.lower())

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        netloc = parts.netloc.lower()
        if netloc == self.placeholder_netloc:
            return urlunsplit((self.login_scheme, self.login_netloc, parts.path, parts.query, parts.fragment))
        if parts.scheme == "https" and netloc in self.plain_http_netlocs:
            return urlunsplit(("http", parts.netloc, parts.path, parts.query, parts.fragment))
        return url

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if isinstance(method, bytes):
            method = method.decode()
        if isinstance(url, bytes):
            url = url.decode()
        kwargs.setdefault("timeout", self.timeout)
        self._local.last_headers = CaseInsensitiveDict()
        response = super().request(method, self.rewrite(url), *args, **kwargs)
        self._local.last_headers = response.headers
        return response

    def last_headers(self) -> CaseInsensitiveDict[str]:
        """Headers of the last response this thread received (empty when none)."""
        return getattr(self._local, "last_headers", None) or CaseInsensitiveDict()
