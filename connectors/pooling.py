"""Connection pools for the connectors built on requests (simple-salesforce, zenpy)."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter


def size_pool(session: requests.Session, size: int) -> None:
    """Keep up to `size` connections per host: as many as the threads the bridge runs helpdesk calls in.

    requests keeps 10; with more threads, every call past the tenth opens (and then drops) a new connection,
    which against a real helpdesk is a new TLS handshake per call."""
    adapter = HTTPAdapter(pool_connections=size, pool_maxsize=size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
