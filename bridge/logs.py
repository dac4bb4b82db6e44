"""How the bridge's processes log: one format, and the libraries that would log secrets kept quiet.

Its own module so that the command line and the sandbox, which both start servers, share it without importing each
other."""

from __future__ import annotations

import logging


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # httpx logs every request URL at INFO, and IM REST URLs carry the admin UserSig: keep them out of the log.
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
