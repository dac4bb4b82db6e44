"""Build the zenpy client for the configured Zendesk: API-token auth, no cache, every call to ZENDESK_URL."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from zenpy import Zenpy

from bridge.api import PermanentError
from connectors.pooling import size_pool
from connectors.zendesk.session import BaseUrlSession
from connectors.zendesk.settings import ZendeskSettings

TIMEOUT = 30.0


def zenpy_host(base_url: str) -> tuple[str, str]:
    """The (subdomain, domain) zenpy wants. Only cosmetic (the session rewrites the host), but
    `acme.zendesk.com` reads as itself in zenpy's logs; an IP or a one-label host gets a placeholder."""
    host = urlsplit(base_url).hostname or ""
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = False
    if "." in host and not is_ip:
        subdomain, domain = host.split(".", 1)
        return subdomain, domain
    return "zendesk", "bridge.invalid"


def build_client(settings: ZendeskSettings, pool_size: int, timeout: float = TIMEOUT) -> tuple[Zenpy, BaseUrlSession]:
    """A zenpy client and its session, keeping up to `pool_size` connections (as many as the threads calling it)."""
    if not (settings.url and settings.email and settings.api_token):
        raise PermanentError(
            "Zendesk is not configured: set ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_API_TOKEN",
            upstream="zendesk",
        )
    session = BaseUrlSession(settings.url)
    size_pool(session, pool_size)
    subdomain, domain = zenpy_host(settings.url)
    client = Zenpy(
        subdomain=subdomain,
        domain=domain,
        email=settings.email,
        token=settings.api_token.get_secret_value(),
        session=session,
        timeout=timeout,
        disable_cache=True,
    )
    return client, session
