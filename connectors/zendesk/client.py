"""Build the zenpy client for the configured Zendesk: API-token auth, no cache, every call to ZENDESK_URL."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from zenpy import Zenpy

from bridge.config import Settings
from bridge.errors import PermanentError
from connectors.pooling import size_pool
from connectors.zendesk.session import BaseUrlSession

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


def build_client(settings: Settings, timeout: float = TIMEOUT) -> tuple[Zenpy, BaseUrlSession]:
    if not (settings.zendesk_url and settings.zendesk_email and settings.zendesk_api_token):
        raise PermanentError(
            "Zendesk is not configured: set ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_API_TOKEN",
            upstream="zendesk",
        )
    session = BaseUrlSession(settings.zendesk_url)
    size_pool(session, settings.bridge_helpdesk_threads)
    subdomain, domain = zenpy_host(settings.zendesk_url)
    client = Zenpy(
        subdomain=subdomain,
        domain=domain,
        email=settings.zendesk_email,
        token=settings.zendesk_api_token.get_secret_value(),
        session=session,
        timeout=timeout,
        disable_cache=True,
    )
    return client, session
