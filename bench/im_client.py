"""Throughput of the bridge's IMClient against the IM emulator: the aiohttp transport it uses vs httpx's own.

Starts the IM emulator (bridge.sandbox.im) on loopback, by default in a child process so that it does not
share this process's GIL, creates a group and some accounts, then times `IMClient.add_members(group, [one account])`
(one add_group_member call each) per transport, concurrency and injected emulator latency. Prints figures, asserts
nothing.

    .venv/bin/python bench/im_client.py                       # the full table, 3000 calls a row
    .venv/bin/python bench/im_client.py --calls 1000 --concurrency 10 --latency 0
    .venv/bin/python bench/im_client.py --emulator thread     # emulator in a thread of this process (shares the GIL)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

import httpx

from bridge.errors import UpstreamError
from bridge.im import IMClient
from bridge.sandbox.im import create_app
from bridge.sandbox.server import BackgroundServer, free_port

SDKAPPID, SECRET_KEY = 1400000001, "bench-secret-key-0123456789abcdef"
EMULATOR_RATE_LIMIT = 100_000  # calls/s per API: high enough never to answer 60007 here
UNLIMITED = 1_000_000  # IMClient's per-command limiter, out of the way
ACCOUNTS = 100
LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100)  # what IMClient gives its aiohttp transport

# name -> transport factory (None: IMClient's own default, httpx_aiohttp.AiohttpTransport)
TRANSPORTS: dict[str, Callable[[], httpx.AsyncBaseTransport | None]] = {
    "aiohttp": lambda: None,
    "httpx-default": lambda: httpx.AsyncHTTPTransport(),  # httpx's defaults: 100 connections, 20 kept alive
    "httpx-limits": lambda: httpx.AsyncHTTPTransport(limits=LIMITS),  # same pool sizes as the aiohttp one
}


@dataclass
class Row:
    transport: str
    concurrency: int
    latency: float
    rate_limit: int
    calls: int
    errors: int
    seconds: float
    durations: list[float]

    def cells(self) -> list[str]:
        qs = statistics.quantiles(self.durations, n=100) if len(self.durations) > 1 else [0.0] * 99
        limit = "none" if self.rate_limit >= UNLIMITED else f"{self.rate_limit}/s"
        return [
            self.transport,
            limit,
            str(self.concurrency),
            f"{self.latency * 1000:g}",
            str(self.calls),
            str(self.errors),
            f"{self.seconds:.2f}",
            f"{self.calls / self.seconds:,.0f}",
            f"{qs[49] * 1000:.1f}",
            f"{qs[98] * 1000:.1f}",
        ]


HEADER = ["transport", "IM limiter", "conc", "latency ms", "calls", "errors", "seconds", "calls/s", "p50 ms", "p99 ms"]


def post_json(url: str, body: bytes = b"{}") -> None:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=10).read()


@contextmanager
def emulator(mode: str) -> Iterator[str]:
    """Yield the base URL of a running IM emulator: a child process (own GIL) or a thread of this one."""
    if mode == "thread":
        with BackgroundServer(create_app(SDKAPPID, SECRET_KEY, rate_limit=EMULATOR_RATE_LIMIT)) as server:
            yield server.url
        return
    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve-emulator", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url + "/_emulator/faults", timeout=1).read()
                break
            except OSError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the IM emulator did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        child.terminate()
        child.wait(timeout=10)


def serve_emulator(port: int) -> None:
    import uvicorn

    uvicorn.run(
        create_app(SDKAPPID, SECRET_KEY, rate_limit=EMULATOR_RATE_LIMIT),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


async def setup(url: str) -> None:
    """Fresh emulator state: ACCOUNTS accounts and the group `bench`; no injected faults."""
    post_json(url + "/_emulator/reset")
    im = IMClient(url, SDKAPPID, SECRET_KEY, rate_limit=UNLIMITED)
    try:
        for i in range(ACCOUNTS):
            await im.import_account(f"agent{i}")
        await im.create_group("bench", "bench", members=["agent0"])
    finally:
        await im.close()


async def measure(
    url: str, transport: str, concurrency: int, latency: float, calls: int, seconds: float, rate_limit: int = UNLIMITED
) -> Row:
    await setup(url)
    post_json(url + "/_emulator/faults", f'{{"latency": {latency}}}'.encode())
    im = IMClient(url, SDKAPPID, SECRET_KEY, rate_limit=rate_limit, transport=TRANSPORTS[transport]())
    accounts = itertools.cycle([f"agent{i}" for i in range(ACCOUNTS)])
    durations: list[float] = []
    errors = 0
    remaining = 0

    async def worker(deadline: float) -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            start = time.perf_counter()
            try:
                await im.add_members("bench", [next(accounts)])
            except UpstreamError:  # IMError and IMRetriableError
                errors += 1
            durations.append(time.perf_counter() - start)

    async def run(count: int, limit: float) -> float:
        nonlocal remaining
        remaining = count
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + limit) for _ in range(concurrency)))
        return time.perf_counter() - start

    try:
        # Warm-up: open the connections and, when limited, use up the limiter's initial burst allowance.
        await run(2 * concurrency + (rate_limit if rate_limit < UNLIMITED else 0), 30.0)
        durations.clear()
        errors = 0
        elapsed = await run(calls, seconds)
    finally:
        await im.close()
    return Row(transport, concurrency, latency, rate_limit, len(durations), errors, elapsed, durations)


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


async def bench(args: argparse.Namespace, url: str) -> None:
    rows = [HEADER]
    for latency in args.latency:
        for concurrency in args.concurrency:
            for transport in args.transports:
                row = await measure(url, transport, concurrency, latency, args.calls, args.seconds)
                rows.append(row.cells())
                print("  " + " ".join(rows[-1]), file=sys.stderr, flush=True)
    if args.limiter_calls:
        row = await measure(
            url, "aiohttp", max(args.concurrency), 0.0, args.limiter_calls, args.seconds, rate_limit=200
        )
        rows.append(row.cells())
    print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per row (default 3000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="or stop a row after this long (default 20)")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 50],
        help="comma-separated (default 10,50)",
    )
    parser.add_argument(
        "--latency",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[0.0, 0.02],
        help="emulator latency in seconds, comma-separated (default 0,0.02)",
    )
    parser.add_argument(
        "--transports",
        type=lambda s: s.split(","),
        default=list(TRANSPORTS),
        help=f"comma-separated, of {', '.join(TRANSPORTS)}",
    )
    parser.add_argument(
        "--limiter-calls",
        type=int,
        default=1000,
        help="calls of the extra row with IMClient's default 200/s limiter (0: skip)",
    )
    parser.add_argument("--emulator", choices=["process", "thread"], default="process")
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="client event loop; uvloop is what `helpdesk-bridge serve` runs on",
    )
    parser.add_argument("--serve-emulator", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        serve_emulator(args.serve_emulator)
        return
    unknown = set(args.transports) - set(TRANSPORTS)
    if unknown:
        parser.error(f"unknown transport(s): {', '.join(sorted(unknown))}")
    where = (
        "in a child process (its own GIL and event loop)"
        if args.emulator == "process"
        else "in a thread of this process: it shares the GIL with the client, so figures are lower"
    )
    print(
        f"IMClient add_group_member against the IM emulator {where}; client loop {args.loop}; "
        f"{os.cpu_count()} CPUs; python {sys.version.split()[0]}"
    )
    print("emulator rate limit 100000/s; IMClient limiter off except on the `200/s` row (its default)")
    with emulator(args.emulator) as url:
        if args.loop == "uvloop":
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(bench(args, url))
        else:
            asyncio.run(bench(args, url))


if __name__ == "__main__":
    main()
