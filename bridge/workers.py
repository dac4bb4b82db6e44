"""`serve --workers N`: N processes serving one listening socket, so a machine's cores are used.

The parent binds the socket, then forks the workers before any event loop or database connection exists; each runs
its own uvicorn server (with the bounded protocol), app, database pool and job worker. The queue is built for several
processes (leases, SKIP LOCKED claims), so any worker may take any job. The parent only supervises: SIGTERM or
SIGINT stops every worker (each finishes its requests as uvicorn does), and a worker that dies otherwise is
replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # prctl(2)
RESTART_PAUSE = 1.0  # seconds between replacing a worker that died, so a crash at start cannot spin


def default_workers(is_sqlite: bool) -> int:
    """One process on SQLite (one writer: more processes only take turns), the cores on PostgreSQL."""
    return 1 if is_sqlite else max(1, os.cpu_count() or 1)


def _end_with_parent() -> None:
    """Linux: this worker gets SIGKILL when the parent dies, however it dies, rather than serve on unsupervised."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_forked(workers: int, sock: socket.socket, run_worker: Any) -> int:
    """Run `run_worker(sock)` in `workers` child processes until SIGTERM/SIGINT; returns the exit status."""
    children: set[int] = set()
    stopping = False

    def start() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            _end_with_parent()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                run_worker(sock)
                code = 0
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.add(pid)

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(workers):
        start()
    log.info("serving from %d worker processes", workers)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        children.discard(pid)
        if not stopping:
            log.error("worker %d ended (status %d): starting another", pid, os.waitstatus_to_exitcode(status))
            time.sleep(RESTART_PAUSE)
            if not stopping:
                start()
    sock.close()
    return 0
