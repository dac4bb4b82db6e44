"""`helpdesk-bridge zendesk setup|teardown|app`: what an operator runs to connect a Zendesk account to the bridge."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge.api import BridgeError, ConfigError, load_connector_settings
from connectors.zendesk import setup as zendesk_setup
from connectors.zendesk import sidebar_app
from connectors.zendesk.settings import ZendeskSettings


def add_commands(subparsers: Any) -> None:
    zendesk = subparsers.add_parser("zendesk", help="install or remove the bridge's Zendesk webhook")
    zendesk_sub = zendesk.add_subparsers(dest="zendesk_command", required=True)
    setup = zendesk_sub.add_parser("setup", help="create or update the signed webhook; remove old triggers")
    setup.add_argument("--url", required=True, help="the bridge's public base URL, e.g. https://bridge.example.com")
    setup.set_defaults(func=cmd_zendesk)
    zendesk_sub.add_parser("teardown", help="remove the webhook (and any old triggers)").set_defaults(func=cmd_zendesk)
    app = zendesk_sub.add_parser("app", help="build the ticket-sidebar app's zip (the agent console)")
    app.add_argument("--out", default="helpdesk-bridge-zendesk-app.zip", help="the zip to write")
    app.set_defaults(func=cmd_zendesk_app)


def _settings() -> ZendeskSettings:
    """`setup` and `teardown` need only the Zendesk variables, not the whole service configuration."""
    settings = load_connector_settings(ZendeskSettings)
    if not settings.complete:
        raise ConfigError("invalid configuration: ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_API_TOKEN are required")
    return settings


def cmd_zendesk(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.zendesk_command == "setup":
        parts = urlsplit(args.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            print(f"helpdesk-bridge: --url must be the bridge's public http(s) URL, got {args.url!r}", file=sys.stderr)
            return 2
    try:
        if args.zendesk_command == "setup":
            lines = zendesk_setup.setup(settings, args.url)
        else:
            lines = zendesk_setup.teardown(settings)
    except BridgeError as exc:
        print(f"helpdesk-bridge: zendesk {args.zendesk_command} failed: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - an operator command: a sentence, never a traceback
        print(f"helpdesk-bridge: zendesk {args.zendesk_command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


def cmd_zendesk_app(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        names = sidebar_app.build(out)
    except OSError as exc:
        print(f"helpdesk-bridge: cannot write {out}: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return 1
    print(f"{out}: {', '.join(names)}")
    print(
        "Upload it in Zendesk (Admin Center > Apps and integrations > Zendesk Support apps > Upload private app), "
        "set Bridge URL, then set ZENDESK_APP_PUBLIC_KEY (GET /api/v2/apps/<app id>/public_key.pem) and "
        "ZENDESK_APP_INSTALLATION_ID (GET /api/v2/apps/installations.json) on the bridge."
    )
    return 0
