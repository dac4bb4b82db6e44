"""Throughput of `POST /createticket` under concurrency, per helpdesk thread-pool size (BRIDGE_HELPDESK_THREADS).

The blocking helpdesk clients (zenpy, simple-salesforce) run in an anyio CapacityLimiter of BRIDGE_HELPDESK_THREADS
threads; each createticket makes two helpdesk calls (create, then a read of the owner). With a helpdesk latency of
L seconds and T threads, helpdesk calls are capped near T / L per second. This script shows where that cap bites and
what limits throughput once it does not.

Starts the IM emulator and the helpdesk emulator (child processes by default, so that they do not share a GIL with
anything; `--emulators thread` runs them in this process), injects latency into every emulated call, starts the
bridge as its own process (`helpdesk-bridge serve`, SQLite in a temporary folder, ZENDESK_RATE_LIMIT=0 so that the
bridge's own per-minute limiter is out of the way), then sends N UserSig-authenticated createticket requests at
concurrency C from an async httpx client. Prints figures, asserts nothing.

    .venv/bin/python bench/createticket.py
    .venv/bin/python bench/createticket.py --helpdesk zendesk --threads 10,40,200 --helpdesk-latency 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

import httpx

from bridge import auth
from bridge.sandbox.im import create_app as create_im
from bridge.sandbox.process import BridgeProcess
from bridge.sandbox.salesforce import create_app as create_sf
from bridge.sandbox.server import BackgroundServer, free_port
from bridge.sandbox.zendesk import create_app as create_zd

SDKAPPID, IM_KEY = 1400000003, "bench-im-key-0123456789abcdef"
ZD_EMAIL, ZD_TOKEN = "admin@example.com", "bench-zendesk-token-0123456789"
SF_USER, SF_PASSWORD, SF_TOKEN = "agent@example.com", "bench-sf-password-0123", "bench-sf-token-0123"
IM_LIMIT_CODES = (60007, 60011, 60018, 60019)
WARMUP = 10  # requests before each measured run: logins, connection pools, first queries


def make_app(kind: str, im_limit: int = 0) -> Any:
    if kind == "im":
        # IM's per-API limit (60007 beyond it) only with --im-limit; otherwise never in the way.
        return create_im(SDKAPPID, IM_KEY, rate_limit=im_limit or 1_000_000)
    if kind == "zendesk":
        return create_zd(email=ZD_EMAIL, api_token=ZD_TOKEN)
    return create_sf(username=SF_USER, password=SF_PASSWORD, security_token=SF_TOKEN)


def post_json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc); this process's own when pid is ours."""
    if pid == os.getpid():
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


@dataclass
class Emulator:
    kind: str  # im, zendesk, salesforce
    mode: str  # process, thread
    im_limit: int = 0
    port: int = field(default_factory=free_port)
    child: subprocess.Popen[bytes] | None = None
    server: BackgroundServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.child.pid if self.child is not None else os.getpid()

    def start(self) -> Emulator:
        if self.mode == "thread":
            self.server = BackgroundServer(make_app(self.kind, self.im_limit), port=self.port).start()
            return self
        args = [
            sys.executable,
            __file__,
            "--serve-emulator",
            self.kind,
            str(self.port),
            "--im-limit",
            str(self.im_limit),
        ]
        self.child = subprocess.Popen(args)
        deadline = time.monotonic() + 20
        while True:
            try:
                get_json(self.url + "/_emulator/faults")
                return self
            except OSError:
                if self.child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the {self.kind} emulator did not start") from None
                time.sleep(0.05)

    def reset(self, latency: float, per_minute: int = 0) -> None:
        post_json(self.url + "/_emulator/reset")
        post_json(self.url + "/_emulator/faults", {"latency": latency})
        if per_minute and self.kind == "zendesk":
            post_json(self.url + "/_emulator/rate_limit", {"per_minute": per_minute})

    def calls(self) -> tuple[int, int]:
        """Calls served so far, and how many of them were refused for a rate limit (IM 60007, helpdesk 429)."""
        requests = get_json(self.url + "/_emulator/state")["requests"]
        limited = sum(1 for r in requests if r.get("ErrorCode") in IM_LIMIT_CODES or r.get("status") == 429)
        return len(requests), limited

    def tickets(self) -> int:
        state = get_json(self.url + "/_emulator/state")
        return len(state["tickets"] if self.kind == "zendesk" else state["cases"])

    def settled_tickets(self, timeout: float = 30.0) -> int:
        """Tickets once the count stops moving (queued jobs, 202 and 409 answers included, finish meanwhile)."""
        deadline, last = time.monotonic() + timeout, -1
        while (count := self.tickets()) != last and time.monotonic() < deadline:
            last = count
            time.sleep(2)
        return count

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.child is not None:
            self.child.terminate()
            self.child.wait(timeout=10)


@dataclass
class Result:
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the first few non-201 answers, verbatim


async def fire(url: str, users: list[str], concurrency: int) -> Result:
    result = Result()
    sigs = {user: auth.gen_usersig(SDKAPPID, IM_KEY, user, 3600) for user in users}
    pending = iter(users)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker() -> None:
            for user in pending:
                body = {"userId": user, "caseInfo": {"subject": f"Bench {user}", "desc": "load test"}}
                headers = {"Authorization": f"UserSig {sigs[user]}"}
                started = time.perf_counter()
                try:
                    r = await client.post("/createticket", json=body, headers=headers)
                    status, text = str(r.status_code), r.text
                except httpx.HTTPError as exc:
                    status, text = type(exc).__name__, repr(exc)
                result.durations.append(time.perf_counter() - started)
                result.statuses[status] += 1
                if status != "201" and len(result.errors) < 5:
                    result.errors.append(f"{status} {text[:500]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def run_one(args: argparse.Namespace, helpdesk: str, threads: int, im: Emulator, hd: Emulator) -> list[str]:
    im.reset(args.im_latency)
    hd.reset(args.helpdesk_latency, args.zendesk_limit)
    folder = Path(tempfile.mkdtemp(prefix="bench-createticket-"))
    env = {
        "IM_SDKAPPID": str(SDKAPPID),
        "IM_SECRET_KEY": IM_KEY,
        "IM_API_BASE": im.url,
        "BRIDGE_DATABASE_URL": f"sqlite:///{folder}/bridge.db",
        "BRIDGE_HELPDESK_THREADS": str(threads),
        "ZENDESK_RATE_LIMIT": str(args.zendesk_limit),
        "SALESFORCE_RATE_LIMIT": "0",
    }
    if helpdesk == "zendesk":
        env |= {"ZENDESK_URL": hd.url, "ZENDESK_EMAIL": ZD_EMAIL, "ZENDESK_API_TOKEN": ZD_TOKEN}
    else:
        env |= {
            "SALESFORCE_LOGIN_URL": hd.url,
            "SALESFORCE_USERNAME": SF_USER,
            "SALESFORCE_PASSWORD": SF_PASSWORD,
            "SALESFORCE_SECURITY_TOKEN": SF_TOKEN,
        }
    bridge = BridgeProcess(env, folder / "bridge.log").start()
    assert bridge.process is not None
    try:
        asyncio.run(fire(bridge.url, [f"warm-{i}" for i in range(WARMUP)], WARMUP))
        (hd_before, hd_limited_before), (im_before, im_limited_before) = hd.calls(), im.calls()
        # In thread mode the emulators' CPU is counted in the client's (this process).
        pids = {"bridge": [bridge.process.pid], "emulators": [im.pid, hd.pid], "client": [os.getpid()]}
        pids["emulators"] = [p for p in pids["emulators"] if p != os.getpid()]
        cpu_before = {k: sum(map(cpu_seconds, v)) for k, v in pids.items()}
        result = asyncio.run(fire(bridge.url, [f"user-{i}" for i in range(args.requests)], args.concurrency))
        cpu = {k: sum(map(cpu_seconds, v)) - cpu_before[k] for k, v in pids.items()}
        (hd_calls, hd_limited), (im_calls, im_limited) = hd.calls(), im.calls()
        hd_calls, im_calls = hd_calls - hd_before, im_calls - im_before
        limited = hd_limited - hd_limited_before + im_limited - im_limited_before
        tickets = hd.settled_tickets() - WARMUP
    finally:
        bridge.stop()
    qs = statistics.quantiles(result.durations, n=100) if len(result.durations) > 1 else [0.0] * 99
    other = ", ".join(f"{s}:{n}" for s, n in sorted(result.statuses.items()) if s != "201") or "-"
    row = [
        helpdesk,
        str(threads),
        str(args.concurrency),
        str(args.requests),
        str(result.statuses["201"]),
        other,
        f"{result.seconds:.2f}",
        f"{args.requests / result.seconds:.1f}",
        f"{qs[49] * 1000:.0f}",
        f"{qs[94] * 1000:.0f}",
        f"{qs[98] * 1000:.0f}",
        f"{hd_calls / args.requests:.2f}",
        f"{hd_calls / result.seconds:.0f}",
        f"{im_calls / args.requests:.2f}",
        str(limited),
        str(tickets),
        " ".join(f"{cpu[k] / result.seconds:.0%}" for k in ("bridge", "emulators", "client")),
    ]
    if result.errors:
        print(f"\n{helpdesk}, {threads} threads: first non-201 answers:", file=sys.stderr)
        for error in result.errors:
            print("  " + error, file=sys.stderr)
        lines = (folder / "bridge.log").read_text(errors="replace").splitlines()
        tail = [line for line in lines if not line.startswith("INFO:     127.0.0.1:")][-40:]  # no access lines
        print(f"bridge log ({folder / 'bridge.log'}), last {len(tail)} lines but access lines:", file=sys.stderr)
        print("\n".join("  " + line for line in tail), file=sys.stderr)
    return row


HEADER = [
    "helpdesk",
    "threads",
    "conc",
    "requests",
    "ok 201",
    "other",
    "seconds",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "hd calls/req",
    "hd calls/s",
    "IM calls/req",
    "limited",
    "tickets",
    "CPU bridge/emul/client",
]


def print_row(cells: list[str]) -> None:
    widths = [max(len(h), 8) for h in HEADER]
    print("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--threads", default="40,200", help="BRIDGE_HELPDESK_THREADS values, comma separated")
    parser.add_argument("--helpdesk-latency", type=float, default=0.2, help="seconds added to every helpdesk call")
    parser.add_argument("--im-latency", type=float, default=0.02, help="seconds added to every IM call")
    parser.add_argument("--helpdesk", default="zendesk,salesforce")
    parser.add_argument("--emulators", choices=["process", "thread"], default="process")
    parser.add_argument(
        "--im-limit", type=int, default=0, help="calls/s per API the IM emulator allows (200 is IM's own; 0: no limit)"
    )
    parser.add_argument(
        "--zendesk-limit",
        type=int,
        default=0,
        help="Zendesk's per-minute budget, enforced by the emulator and given to the bridge as ZENDESK_RATE_LIMIT",
    )
    parser.add_argument("--serve-emulator", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        import uvicorn

        kind, port = args.serve_emulator
        uvicorn.run(
            make_app(kind, args.im_limit), host="127.0.0.1", port=int(port), log_level="warning", access_log=False
        )
        return

    helpdesks = [h.strip() for h in args.helpdesk.split(",") if h.strip()]
    print(
        f"emulators: {'child processes' if args.emulators == 'process' else 'threads of this process'}; "
        f"injected latency: helpdesk {args.helpdesk_latency * 1000:g} ms, IM {args.im_latency * 1000:g} ms per call; "
        f"ZENDESK_RATE_LIMIT={args.zendesk_limit} and SALESFORCE_RATE_LIMIT=0 (0: no per-minute limiter of our own), "
        f"IM_RATE_LIMIT default (200/s per command); upstream limits enforced by the emulators: IM "
        f"{args.im_limit or 'none'}/s per API, Zendesk {args.zendesk_limit or 'none'}/min; bridge on SQLite; "
        f"{WARMUP} warm-up requests per row; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    print(
        "hd/IM calls: calls the emulators served during the run; tickets: tickets the helpdesk holds for the run's "
        "requests once the job queue settles (more than 201 + 202 answers: tickets opened for callers told otherwise); "
        "limited: calls the emulators refused for a rate limit (IM 60007, helpdesk 429)"
    )
    print("CPU: process CPU time / wall time during the run (100% = one core)\n")
    print_row(HEADER)
    im = Emulator("im", args.emulators, args.im_limit).start()
    try:
        for helpdesk in helpdesks:
            hd = Emulator(helpdesk, args.emulators).start()
            try:
                for threads in (int(t) for t in args.threads.split(",")):
                    print_row(run_one(args, helpdesk, threads, im, hd))
            finally:
                hd.stop()
    finally:
        im.stop()


if __name__ == "__main__":
    main()
