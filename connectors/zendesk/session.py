"""The requests.Session zenpy talks through: it sends every call to the configured Zendesk base URL.

zenpy always builds `https://<subdomain>.<domain>/api/v2/...`. Its ZENPY_FORCE_* environment variables
would redirect every zenpy client in the process, so instead this session, passed with zenpy's public
`session=` option, rewrites scheme, host, port (and any path prefix) of each request to `ZENDESK_URL`. The
response keeps the URL zenpy asked for: zenpy picks its response handler by finding its host name in it.

It also adds what zenpy cannot: an `Idempotency-Key` header set per thread around one call, and a 429 that
raises `RateLimited` at once instead of letting zenpy sleep out `Retry-After` in a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from bridge.api import parse_retry_after
from connectors.zendesk.replies import USER_AGENT


class RateLimited(Exception):
    """Zendesk answered 429; `retry_after` is in seconds when it said so."""

    def __init__(self, retry_after: float | None):
        super().__init__(f"rate limited (retry after {retry_after} s)")
        self.retry_after = retry_after


class BaseUrlSession(requests.Session):
    """Sends every request to `base_url` (scheme://host[:port][/prefix]), whatever host zenpy wrote."""

    def __init__(self, base_url: str):
        super().__init__()
        parts = urlsplit(base_url.rstrip("/"))
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.prefix = parts.path.rstrip("/")
        self._local = threading.local()
        # Zendesk records it with each comment (`metadata.system.client`): how the bridge knows its own comments.
        # zenpy keeps a session's own User-Agent.
        self.headers["User-Agent"] = USER_AGENT

    @contextmanager
    def idempotency_key(self, key: str | None) -> Iterator[None]:
        """Send `Idempotency-Key: key` on the requests this thread makes inside the block."""
        previous = getattr(self._local, "key", None)
        self._local.key = key
        try:
            yield
        finally:
            self._local.key = previous

    def target(self, url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit((self.scheme, self.netloc, self.prefix + parts.path, parts.query, parts.fragment))

    def request(  # type: ignore[override]
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        asked = url.decode() if isinstance(url, bytes) else url
        key = getattr(self._local, "key", None)
        if key:
            headers = dict(kwargs.get("headers") or {})
            headers["Idempotency-Key"] = key
            kwargs["headers"] = headers
        kwargs.setdefault("allow_redirects", False)
        response = super().request(method, self.target(asked), *args, **kwargs)
        if response.status_code == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            response.close()
            raise RateLimited(retry_after)
        # zenpy matches its own host name in the request URL to choose how to read the answer.
        response.url = asked
        if response.request is not None:
            response.request.url = asked
        return response
