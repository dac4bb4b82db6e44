"""The bridge as a separate process (`helpdesk-bridge serve`), for crash tests and benchmarks that kill it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bridge.sandbox.server import free_port


@dataclass
class BridgeProcess:
    """`env` is the bridge's configuration, `args` what follows `serve` (`--workers 2`); `start()` waits for /readyz.
    The log goes to `log_path`. The process leads its own process group: a kill reaches its workers too."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, extra_env: dict[str, str] | None = None, timeout: float = 30.0) -> BridgeProcess:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("IM_", "BRIDGE_", "ZENDESK_", "SALESFORCE_")) and k != "PORT"
        }
        env = {**base, **self.env, **(extra_env or {}), "BRIDGE_HOST": "127.0.0.1", "BRIDGE_PORT": str(self.port)}
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child process holds it; closed here once handed over)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "serve", *self.args],
            env=env,
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.log_path.parent,
        )
        log.close()
        deadline = time.time() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the bridge exited with {self.process.returncode}: see {self.log_path}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"the bridge did not become ready: see {self.log_path}")
            time.sleep(0.1)

    def wait_exit(self, timeout: float = 15.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
