"""Run an ASGI app on a loopback port in a background thread: how the sandbox and the tests serve emulators."""

from __future__ import annotations

import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; other systems start higher


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, below the ephemeral range: the kernel gives ephemeral ports to outgoing connections, so one
    of those can take a server's port while it restarts ("address already in use" for a killed-and-restarted bridge).
    """
    low = _ephemeral_low()
    for _ in range(50):
        port = random.randrange(10000, low) if low > 11000 else 0
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError(f"no free port on {host} below {low}")


@dataclass
class BackgroundServer:
    """A uvicorn server on its own thread and event loop. `url` has no trailing slash."""

    app: Any
    host: str = "127.0.0.1"
    port: int = 0
    server: uvicorn.Server | None = field(default=None, init=False)
    thread: threading.Thread | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        if not self.port:
            self.port = free_port(self.host)
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning", lifespan="on", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"server:{self.port}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
