"""`helpdesk-bridge serve` as its own process against hostile connections: huge and endless headers, idle and slow
connections by the thousand, clients that hang up mid-body, control characters in paths. What is checked is what
an operator sees: the process's memory and open files, /healthz, and the log."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge.sandbox.process import BridgeProcess
from tests.conftest import CALLOUT_SECRET, IM_KEY, SDKAPPID

MiB = 1024 * 1024


def serve(tmp_path: Path, **env: str) -> BridgeProcess:
    config = {
        "IM_SDKAPPID": str(SDKAPPID),
        "IM_SECRET_KEY": IM_KEY,
        "IM_API_BASE": "http://127.0.0.1:9",  # never called by these tests
        "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
        "BRIDGE_CALLOUT_SECRET": CALLOUT_SECRET,
        **env,
    }
    return BridgeProcess(config, tmp_path / "bridge.log").start()


@pytest.fixture
def started() -> Iterator[list[BridgeProcess]]:
    processes: list[BridgeProcess] = []
    yield processes
    for process in processes:
        process.stop()


def rss(process: BridgeProcess) -> int:
    assert process.process is not None
    for line in Path(f"/proc/{process.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_files(process: BridgeProcess) -> int:
    assert process.process is not None
    return len(os.listdir(f"/proc/{process.process.pid}/fd"))


def connect(process: BridgeProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", process.port), timeout=10)


def closed_by_server(sock: socket.socket, timeout: float = 20.0) -> bool:
    """True once the server has closed the connection (whatever it answered first); False if it is still open
    after `timeout` seconds, which is far longer than the timeouts under test."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def healthz(process: BridgeProcess) -> int:
    return httpx.get(process.url + "/healthz", timeout=10).status_code


def test_endless_headers_leave_memory_flat_and_are_closed(started: list[BridgeProcess], tmp_path: Path) -> None:
    bridge = serve(tmp_path)
    started.append(bridge)
    healthz(bridge)
    before = rss(bridge)
    chunk = b"a" * MiB
    sockets = []
    for _ in range(5):
        sock = connect(bridge)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            for _ in range(40):  # 40 MiB of one header that never ends
                sock.sendall(chunk)
        sockets.append(sock)
    grown = rss(bridge) - before
    assert grown < 30 * MiB, f"the bridge grew by {grown // MiB} MiB holding 5 endless headers"
    assert all(closed_by_server(sock) for sock in sockets)
    for sock in sockets:
        sock.close()
    assert healthz(bridge) == 200


def test_head_over_the_limit_is_431(started: list[BridgeProcess], tmp_path: Path) -> None:
    bridge = serve(tmp_path, BRIDGE_MAX_HEADER_BYTES="8192")
    started.append(bridge)
    assert httpx.get(bridge.url + "/healthz", headers={"X-Fits": "a" * 7000}).status_code == 200
    r = httpx.get(bridge.url + "/healthz", headers={"X-Too-Big": "a" * 9000})
    assert r.status_code == 431 and r.json()["error"]["code"] == "headers_too_large"


def test_idle_connections_cannot_crowd_out_requests(started: list[BridgeProcess], tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 3000
    if soft < wanted + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, wanted + 100), hard))
    limit = 100
    bridge = serve(
        tmp_path,
        BRIDGE_MAX_CONNECTIONS=str(limit),
        BRIDGE_IDLE_TIMEOUT_SECONDS="1",
        BRIDGE_HEADER_TIMEOUT_SECONDS="1",
    )
    started.append(bridge)
    idle: list[socket.socket] = []
    try:
        for _ in range(wanted):
            idle.append(connect(bridge))
        assert healthz(bridge) == 200
        assert open_files(bridge) < limit + 50, "the bridge holds every idle connection open"
        assert all(closed_by_server(sock) for sock in idle), "idle connections were never closed"
    finally:
        for sock in idle:
            sock.close()
    assert healthz(bridge) == 200


def test_idle_and_slow_connections_are_closed_after_their_timeouts(
    started: list[BridgeProcess], tmp_path: Path
) -> None:
    bridge = serve(tmp_path, BRIDGE_IDLE_TIMEOUT_SECONDS="1", BRIDGE_HEADER_TIMEOUT_SECONDS="1")
    started.append(bridge)
    never_speaks = connect(bridge)
    slow = connect(bridge)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line that ends the headers
    kept_alive = connect(bridge)
    kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert kept_alive.recv(65536).startswith(b"HTTP/1.1 200")
    for sock in (never_speaks, slow, kept_alive):
        assert closed_by_server(sock)
        sock.close()


def hang_up_mid_body(bridge: BridgeProcess, path: bytes) -> None:
    sock = connect(bridge)
    head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    sock.sendall(head + b'{"userId": ')
    time.sleep(0.2)  # the body has started to arrive when the client goes
    sock.close()


def stopped_log(bridge: BridgeProcess, tmp_path: Path) -> str:
    time.sleep(0.5)  # let the bridge notice the last hang-up before it stops
    bridge.stop()
    return (tmp_path / "bridge.log").read_text(errors="backslashreplace")


def test_client_gone_mid_body_is_one_log_line(started: list[BridgeProcess], tmp_path: Path) -> None:
    bridge = serve(tmp_path)
    started.append(bridge)
    for _ in range(3):
        hang_up_mid_body(bridge, b"/joingroup")
    log = stopped_log(bridge, tmp_path)
    assert "Traceback" not in log and "ERROR" not in log, log
    assert len([line for line in log.splitlines() if "disconnected" in line]) == 3, log


def test_control_characters_in_paths_never_reach_the_log(started: list[BridgeProcess], tmp_path: Path) -> None:
    bridge = serve(tmp_path)
    started.append(bridge)
    hang_up_mid_body(bridge, b"/%1b%5b2J%0d%0a2030-01-01%20CRITICAL%20forged%00/createticket")
    log = stopped_log(bridge, tmp_path)
    assert not any(c in log for c in "\x1b\x00\r"), log
    assert "forged" in log  # the line is there, escaped
    assert not any(line.startswith("2030-01-01") for line in log.splitlines()), log


def workers_of(process: BridgeProcess) -> list[int]:
    assert process.process is not None
    pid = process.process.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_workers_share_the_port_and_a_dead_one_is_replaced(started: list[BridgeProcess], tmp_path: Path) -> None:
    config = {
        "IM_SDKAPPID": str(SDKAPPID),
        "IM_SECRET_KEY": IM_KEY,
        "IM_API_BASE": "http://127.0.0.1:9",
        "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
    }
    process = BridgeProcess(config, tmp_path / "bridge.log", args=("--workers", "2")).start()
    started.append(process)
    first = workers_of(process)
    assert len(first) == 2
    os.kill(first[0], 9)
    deadline = time.time() + 20
    while not (len(now := workers_of(process)) == 2 and first[0] not in now):
        assert time.time() < deadline, "the dead worker was not replaced"
        time.sleep(0.1)
    assert all(healthz(process) == 200 for _ in range(20))
    process.stop()
    assert process.wait_exit() == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in now), "a worker outlived its parent"
