"""How `serve` runs uvicorn: its httptools protocol, with the bounds on connections that uvicorn's options leave out.

Read in uvicorn's httptools_impl.py (0.29 to 0.54 alike):
- Header size: httptools keeps a request head in memory however long it grows (`h11_max_incomplete_event_size`
  applies to h11 only), so one endless header holds as much memory as its sender cares to send. Here a head past
  BRIDGE_MAX_HEADER_BYTES is answered 431 and the connection closed.
- Header time: `timeout_keep_alive` starts only after a response and stops at the next byte, so a connection that
  never sends a request, or sends its head a byte at a time, is kept forever. Here a new connection is idle like a
  kept-alive one (closed after BRIDGE_IDLE_TIMEOUT_SECONDS without a byte), and a head must be complete within
  BRIDGE_HEADER_TIMEOUT_SECONDS of its first byte (408 otherwise).
- Connections: `limit_concurrency` answers 503 to every request once reached, /healthz included, and closes
  nothing. Here, past BRIDGE_MAX_CONNECTIONS, the connection idle the longest is closed to make room (the newcomer
  when every connection has a request in progress), so idle connections never crowd out requests.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bridge.config import Settings

log = logging.getLogger(__name__)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection. The bounds are class attributes: `bounded_protocol()` makes a configured class."""

    max_header_bytes = 32 * 1024
    header_timeout = 10.0
    idle_timeout = 65.0
    max_connections = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.idle_timeout  # type: ignore[assignment]  # uvicorn's idle timer, in seconds
        self.reading_head = True  # until the head of the current request is complete
        self.head_bytes = 0
        self.head_timer: Any = None
        self.idle_since = self.loop.time()

    # --- idle connections and the connection limit ------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        # A new connection is idle until its first byte, as a kept-alive one is between requests.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        if len(self.connections) > self.max_connections:
            idle = [c for c in self.connections if isinstance(c, BoundedHttpToolsProtocol) and c.idle and c is not self]
            oldest = min(idle, key=lambda c: c.idle_since, default=self)
            oldest.transport.close()

    @property
    def idle(self) -> bool:
        """No request in progress: between requests, or still receiving a head."""
        return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.idle_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._unset_keepalive_if_required()  # uvicorn leaves it armed when the connection was reset
        super().connection_lost(exc)

    # --- the request head: its size and how long it takes ------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # While a head is being read, the parser is fed no more than the room left, so a head can never hold more.
        while data and self.reading_head and not self.transport.is_closing():
            room = self.max_header_bytes - self.head_bytes
            if room <= 0:
                message = f"the request line and headers exceed {self.max_header_bytes} bytes"
                self._refuse(431, "headers_too_large", message)
                return
            if self.head_timer is None:
                self.head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)
            chunk, data = data[:room], data[room:]
            self.head_bytes += len(chunk)
            super().data_received(chunk)
        if data and not self.transport.is_closing():
            super().data_received(data)

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_head, self.head_bytes = True, 0  # what comes next is the next request's head

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_too_slow(self) -> None:
        self.head_timer = None
        if self.reading_head and not self.transport.is_closing():
            self._refuse(408, "request_timeout", f"the request headers took longer than {self.header_timeout:g} s")

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer (unless a response is in progress on this connection) and close."""
        log.info("closing a connection from %s: %s", self.client[0] if self.client else "?", message)
        if self.cycle is None or self.cycle.response_complete:
            body = json.dumps({"error": {"code": code, "message": message}}).encode()
            head = (
                f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            self.transport.write(head.encode() + body)
        self.transport.close()


def bounded_protocol(settings: Settings) -> type[BoundedHttpToolsProtocol]:
    """The protocol class `serve` gives uvicorn, with the bounds from the settings."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {
            "max_header_bytes": settings.bridge_max_header_bytes,
            "header_timeout": settings.bridge_header_timeout_seconds,
            "idle_timeout": settings.bridge_idle_timeout_seconds,
            "max_connections": settings.bridge_max_connections,
        },
    )
