"""The bridge beside the reference server (the seed design's Node server), under the same load, in one run.

Every upstream is an emulator in its own process (IM and Salesforce, `--latency` added to each call, 20 ms by
default); each server runs in its own process and the load comes from another (an asyncio httpx client on the
aiohttp transport, `--concurrency` requests at once). The systems take turns on the same emulators, reset between
them. Per system and workload it prints:

- throughput (200 and 201 answers per second; a 202, finished later by the job queue, is counted apart), p50 and p99
  latency, and p50 / physical limit: the limit is the upstream
  round trips a request cannot avoid (`/joingroup`: one IM call; createticket: the Case, then the group: two);
- the same p50 ratio for requests sent one at a time (`--alone` of them);
- upstream calls per request (what the emulators received, follow-up work included: counts are read once they stop
  moving), split into IM and Salesforce;
- database transactions per request (the bridge's `bridge_db_transactions_total` on /metrics, read before and after;
  the worker's idle polls during the run count too; a bridge serving from several processes would need the counter
  summed across them);
- CPU time over wall time of the server and of the load generator (100% = one core: the load must not be the limit),
  and the server's RSS: the peak sampled during the workload and the value at its end (of the largest process,
  should a server run several).

The last line gives the ratios bridge / reference. Workloads, in the order run: `/createticket` on the Salesforce
connector (`/salesforce/createticket` on the bridge, signed; `/createticket` on the reference, which has no auth),
then `/joingroup` (signed on the bridge, each call signed afresh), the joins spread round-robin over the groups the
createticket workload opened (so concurrent joins meet different groups) with agents the IM emulator already knows.
Customers and agents are imported into the IM emulator beforehand: the reference never imports accounts. Warm-up
requests (logins, connection pools) come first and are not counted.

The bridge runs as `helpdesk-bridge serve` with the defaults but for IM_RATE_LIMIT=1000000: its default of 200 calls a
second per IM command (IM's own limit, which the emulator does not enforce here) would cap `/joingroup` below the
reference, which spaces nothing. The emulators enforce no rate limit either. BRIDGE_CALLOUT_SECRET is set to sign the
calls. `--database` is SQLite in a temporary folder by default; a PostgreSQL URL must name a database of the
benchmark's own: its `public` schema is dropped and created anew first (as the tests do), so every run starts empty.

The reference server is `--reference PATH/server.js` (the seed design's Node server, kept outside this repository;
run `npm install` in its folder first). Without it (or without node, or its node_modules) the bridge's figures are
printed alone. Prints figures, asserts nothing.

    .venv/bin/python bench/compare.py
    .venv/bin/python bench/compare.py --joins 600 --tickets 200 --database postgresql+psycopg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

import httpx
from createticket import IM_KEY, SDKAPPID, SF_PASSWORD, SF_TOKEN, SF_USER, Emulator, cpu_seconds
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bridge import auth
from bridge.im import IMClient
from bridge.sandbox.process import BridgeProcess
from bridge.sandbox.server import free_port
from bridge.store import sync_url

CALLOUT_SECRET = "bench-callout-secret-0123456789"
WARMUP = 10
OK = ("200", "201")  # answered and done; a 202 (accepted, finished later by the job queue) is counted apart
# Settings that differ from the bridge's defaults, and why: see the module docstring.
BRIDGE_SETTINGS = {"IM_RATE_LIMIT": "1000000"}


# --- the servers ----------------------------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc), for servers that fork workers."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            pass
    return pids


def rss_mb(pid: int) -> float:
    """Resident memory of the largest process in `pid`'s tree, in MB (VmRSS)."""
    largest = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    largest = max(largest, int(line.split()[1]))
        except OSError:
            pass
    return largest / 1024


class RssSampler:
    """Samples a server's RSS on a thread; `peak` is the highest since the last `restart()`."""

    def __init__(self, pid: int, every: float = 0.05):
        self.pid, self.every, self.peak = pid, every, 0.0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(self.every):
            self.peak = max(self.peak, rss_mb(self.pid))

    def restart(self) -> None:
        self.peak = rss_mb(self.pid)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


@dataclass
class ReferenceProcess:
    """The reference Node server, configured by its README's environment variables."""

    script: Path
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ReferenceProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["node", str(self.script)],
                env={**os.environ, **self.env, "PORT": str(self.port)},
                cwd=self.script.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the reference server exited with {self.process.returncode}: see {self.log_path}")
            try:
                httpx.get(self.url, timeout=1)  # any answer (express: 404) means it listens
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the reference server did not start: see {self.log_path}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def reference_problem(script: Path) -> str | None:
    """Why the reference server cannot run here, or None."""
    if not script.is_file():
        return f"no reference server at {script}"
    if shutil.which("node") is None:
        return "node is not on the PATH"
    if not (script.parent / "node_modules").is_dir():
        return f"its dependencies are missing: run `npm install` in {script.parent}"
    return None


def fresh_database(url: str | None, folder: Path) -> str:
    """SQLite in `folder`, or the given PostgreSQL database with its schema dropped and created anew."""
    if not url:
        return f"sqlite:///{folder}/bridge.db"
    engine = create_engine(sync_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def db_transactions(url: str) -> float | None:
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith("bridge_db_transactions_total "):
            return float(line.split()[1])
    return None  # a bridge without the counter


# --- the load generator (its own process) ---------------------------------------------------------------------------


async def send_all(spec: dict[str, Any]) -> dict[str, Any]:
    """POST every body of `spec` to `spec["url"] + spec["path"]`, `spec["concurrency"]` at a time."""
    from httpx_aiohttp import AiohttpTransport

    path, secret, concurrency = spec["path"], spec["secret"], spec["concurrency"]
    bodies = iter(spec["bodies"])
    durations: list[float] = []
    statuses: Counter[str] = Counter()
    errors: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = AiohttpTransport(limits=limits)
    async with httpx.AsyncClient(base_url=spec["url"], transport=transport, limits=limits, timeout=120) as client:

        async def worker() -> None:
            for body in bodies:
                raw = json.dumps(body).encode()
                headers = {"Content-Type": "application/json"}
                if secret:  # signed afresh for each call: a signature seen twice is a replay
                    headers |= auth.signed_call_headers(secret, "POST", path, raw)
                started = time.perf_counter()
                try:
                    r = await client.post(path, content=raw, headers=headers)
                    status, answer = str(r.status_code), r.text
                except httpx.HTTPError as exc:
                    status, answer = type(exc).__name__, repr(exc)
                durations.append(time.perf_counter() - started)
                statuses[status] += 1
                if status not in OK and len(errors) < 3:
                    errors.append(f"{status} {answer[:300]}")

        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {"seconds": seconds, "cpu": cpu, "durations": durations, "statuses": statuses, "errors": errors}


def load_generator() -> None:
    import uvloop

    spec = json.load(sys.stdin)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        json.dump(runner.run(send_all(spec)), sys.stdout)


def run_load(url: str, path: str, bodies: list[dict[str, Any]], concurrency: int, secret: str | None) -> dict[str, Any]:
    spec = {"url": url, "path": path, "bodies": bodies, "concurrency": concurrency, "secret": secret}
    done = subprocess.run(
        [sys.executable, __file__, "--load-generator"],
        input=json.dumps(spec).encode(),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError("the load generator failed:\n" + done.stderr.decode(errors="replace"))
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- one system, both workloads -------------------------------------------------------------------------------------


@dataclass
class Workload:
    name: str
    round_trips: int  # the upstream calls a request cannot avoid, one after the other
    requests: int


@dataclass
class Figures:
    """One system's figures for one workload."""

    requests: int = 0
    ok: int = 0
    other: str = "-"
    seconds: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    alone_p50: float = 0.0
    im_calls: int = 0
    sf_calls: int = 0
    db_tx: float | None = None
    cpu: float = 0.0
    load_cpu: float = 0.0
    rss_peak: float = 0.0
    rss_end: float = 0.0

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def quantile(durations: list[float], q: int) -> float:
    return statistics.quantiles(durations, n=100)[q - 1] if len(durations) > 1 else sum(durations)


class Upstreams:
    """The IM and Salesforce emulators, shared by the systems in turn."""

    def __init__(self, latency: float):
        self.latency = latency
        self.im = Emulator("im", "process").start()
        self.sf = Emulator("salesforce", "process").start()

    def reset(self, users: list[str]) -> None:
        """Empty emulators, `users` imported into IM (with no latency yet), then the latency on."""
        self.im.reset(0)
        self.sf.reset(0)
        self.import_accounts(users)
        for emulator in (self.im, self.sf):
            httpx.post(emulator.url + "/_emulator/faults", json={"latency": self.latency}).raise_for_status()

    def import_accounts(self, users: list[str]) -> None:
        async def run() -> None:
            im = IMClient(self.im.url, SDKAPPID, IM_KEY, rate_limit=1_000_000)
            try:
                for start in range(0, len(users), 100):  # IM imports at most 100 accounts a call
                    await im.call("im_open_login_svc", "multiaccount_import", {"Accounts": users[start : start + 100]})
            finally:
                await im.close()

        asyncio.run(run())

    def calls(self) -> tuple[int, int]:
        return self.im.calls()[0], self.sf.calls()[0]

    def settled_calls(self, timeout: float = 30.0) -> tuple[int, int]:
        """Calls received so far, once the counts stop moving (work that follows an answer included)."""
        deadline, last = time.monotonic() + timeout, (-1, -1)
        while (counts := self.calls()) != last and time.monotonic() < deadline:
            last = counts
            time.sleep(1.0)
        return counts

    def groups(self) -> list[str]:
        state = httpx.get(self.im.url + "/_emulator/state", timeout=60).json()
        return sorted(g for g, info in state["groups"].items() if not info["Dismissed"])

    def stop(self) -> None:
        self.im.stop()
        self.sf.stop()


@dataclass
class System:
    name: str
    url: str
    pid: int
    ticket_path: str
    secret: str | None  # signs the calls when set
    metrics: bool  # serves bridge_db_transactions_total


Starter = tuple[Callable[[], System], Callable[[], None]]  # start the server, stop it


def measure(
    system: System,
    upstreams: Upstreams,
    sampler: RssSampler,
    path: str,
    alone: list[dict[str, Any]],
    loaded: list[dict[str, Any]],
    concurrency: int,
) -> Figures:
    figures = Figures(requests=len(loaded))
    if alone:
        figures.alone_p50 = quantile(run_load(system.url, path, alone, 1, system.secret)["durations"], 50)
    im_before, sf_before = upstreams.settled_calls()
    tx_before = db_transactions(system.url) if system.metrics else None
    cpu_before = sum(map(cpu_seconds, process_tree(system.pid)))
    sampler.restart()
    result = run_load(system.url, path, loaded, concurrency, system.secret)
    figures.load_cpu = result["cpu"] / result["seconds"]
    figures.cpu = (sum(map(cpu_seconds, process_tree(system.pid))) - cpu_before) / result["seconds"]
    im_after, sf_after = upstreams.settled_calls()
    if tx_before is not None:
        tx_after = db_transactions(system.url)
        figures.db_tx = None if tx_after is None else tx_after - tx_before
    figures.rss_peak, figures.rss_end = max(sampler.peak, rss_mb(system.pid)), rss_mb(system.pid)
    figures.im_calls, figures.sf_calls = im_after - im_before, sf_after - sf_before
    statuses = Counter(result["statuses"])
    figures.ok = sum(n for status, n in statuses.items() if status in OK)
    figures.other = ", ".join(f"{s}:{n}" for s, n in sorted(statuses.items()) if s not in OK) or "-"
    figures.seconds = result["seconds"]
    figures.p50, figures.p99 = quantile(result["durations"], 50), quantile(result["durations"], 99)
    for error in result["errors"]:
        print(f"  {system.name} {path}: {error}", file=sys.stderr)
    return figures


def ticket_bodies(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {"userId": f"{prefix}-{i}", "caseInfo": {"subject": f"Bench {prefix} {i}", "desc": "load test"}}
        for i in range(n)
    ]


def run_system(args: argparse.Namespace, upstreams: Upstreams, starter: Starter) -> dict[str, Figures]:
    """Both workloads against one system, on freshly reset emulators."""
    customers = [
        f"{prefix}-{i}"
        for prefix, n in (("warm", WARMUP), ("alone", args.alone), ("user", args.tickets))
        for i in range(n)
    ]
    upstreams.reset(customers + ["warm-agent", "alone-agent"])
    start, stop = starter
    system = start()
    sampler = RssSampler(system.pid)
    try:
        run_load(system.url, system.ticket_path, ticket_bodies("warm", WARMUP), WARMUP, system.secret)
        warm_groups = upstreams.groups()
        warm_joins = [{"groupId": g, "userId": "warm-agent"} for g in warm_groups]
        run_load(system.url, "/joingroup", warm_joins, WARMUP, system.secret)

        figures = {}
        figures["createticket"] = measure(
            system,
            upstreams,
            sampler,
            system.ticket_path,
            ticket_bodies("alone", args.alone),
            ticket_bodies("user", args.tickets),
            args.concurrency,
        )
        # Joins go round-robin over the groups opened so far, each by an agent IM knows, so that the requests in
        # flight meet different groups and each adds a member.
        groups = upstreams.groups()
        agents = [f"agent-{k}" for k in range(math.ceil(args.joins / len(groups)))]
        upstreams.import_accounts(agents)
        alone = [{"groupId": groups[i % len(groups)], "userId": "alone-agent"} for i in range(args.alone)]
        loaded = [{"groupId": groups[i % len(groups)], "userId": agents[i // len(groups)]} for i in range(args.joins)]
        figures["joingroup"] = measure(system, upstreams, sampler, "/joingroup", alone, loaded, args.concurrency)
        return figures
    finally:
        sampler.stop()
        stop()


# --- the run --------------------------------------------------------------------------------------------------------


def upstream_env(upstreams: Upstreams) -> dict[str, str]:
    """Where the upstreams are: the same variables for both servers (the reference's README names them so)."""
    return {
        "IM_SDKAPPID": str(SDKAPPID),
        "IM_SECRET_KEY": IM_KEY,
        "IM_API_BASE": upstreams.im.url,
        "SALESFORCE_LOGIN_URL": upstreams.sf.url,
        "SALESFORCE_USERNAME": SF_USER,
        "SALESFORCE_PASSWORD": SF_PASSWORD,
        "SALESFORCE_SECURITY_TOKEN": SF_TOKEN,
    }


def start_bridge(upstreams: Upstreams, database_url: str, folder: Path, workers: int | None = None) -> Starter:
    env = {
        **upstream_env(upstreams),
        "BRIDGE_DATABASE_URL": database_url,
        "BRIDGE_CALLOUT_SECRET": CALLOUT_SECRET,
        **BRIDGE_SETTINGS,
    }
    bridge = BridgeProcess(env, folder / "bridge.log", args=("--workers", str(workers)) if workers else ())

    def start() -> System:
        bridge.start()
        assert bridge.process is not None
        return System("bridge", bridge.url, bridge.process.pid, "/salesforce/createticket", CALLOUT_SECRET, True)

    return start, bridge.stop


def start_reference(script: Path, upstreams: Upstreams, folder: Path) -> Starter:
    reference = ReferenceProcess(script, upstream_env(upstreams), folder / "reference.log")

    def start() -> System:
        reference.start()
        assert reference.process is not None
        return System("reference", reference.url, reference.process.pid, "/createticket", None, False)

    return start, reference.stop


COLUMNS = [
    ("system", 9),
    ("ok", 6),
    ("other", 8),
    ("req/s", 7),
    ("p50 ms", 7),
    ("p99 ms", 7),
    ("p50/limit", 9),
    ("alone p50 ms", 12),
    ("alone/limit", 11),
    ("upstream/req", 12),
    ("IM/req", 6),
    ("SF/req", 6),
    ("db tx/req", 9),
    ("CPU", 5),
    ("load CPU", 8),
    ("RSS peak MB", 11),
    ("RSS end MB", 10),
]


def print_cells(cells: list[str]) -> None:
    print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, (_, w)) in enumerate(zip(cells, COLUMNS, strict=True))))


def row(name: str, f: Figures, limit: float) -> list[str]:
    def ratio(seconds: float) -> str:
        return f"{seconds / limit:.2f}" if limit else "-"

    per = max(f.requests, 1)
    return [
        name,
        str(f.ok),
        f.other,
        f"{f.throughput:.1f}",
        f"{f.p50 * 1000:.1f}",
        f"{f.p99 * 1000:.1f}",
        ratio(f.p50),
        f"{f.alone_p50 * 1000:.1f}" if f.alone_p50 else "-",
        ratio(f.alone_p50) if f.alone_p50 else "-",
        f"{(f.im_calls + f.sf_calls) / per:.2f}",
        f"{f.im_calls / per:.2f}",
        f"{f.sf_calls / per:.2f}",
        "-" if f.db_tx is None else f"{f.db_tx / per:.2f}",
        f"{f.cpu:.0%}",
        f"{f.load_cpu:.0%}",
        f"{f.rss_peak:.0f}",
        f"{f.rss_end:.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--joins", type=int, default=3000, help="/joingroup calls under load")
    parser.add_argument("--tickets", type=int, default=1000, help="createticket requests under load")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--alone", type=int, default=20, help="requests sent one at a time, per workload")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added to every upstream call")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="serve --workers N (default: serve's own); db tx/req is one process's count: exact with 1 worker",
    )
    parser.add_argument(
        "--database", default=None, help="the bridge's database: SQLite by default, or a PostgreSQL URL (emptied first)"
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="the reference server's server.js (without it the bridge's figures are printed alone)",
    )
    parser.add_argument("--load-generator", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_generator:
        load_generator()
        return
    if args.tickets < 1 or args.joins < 1:
        parser.error("--tickets and --joins need at least one request each")

    if args.database and make_url(args.database).get_backend_name() != "postgresql":
        parser.error("--database takes a PostgreSQL URL (SQLite, the default, needs none)")
    load_at_start = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    database = args.database and make_url(args.database).render_as_string(hide_password=True)
    absent = reference_problem(args.reference.resolve()) if args.reference else "no --reference given"
    upstreams = Upstreams(args.latency)
    results: dict[str, dict[str, Figures]] = {}
    try:
        if absent is None:
            print("reference server...", file=sys.stderr, flush=True)
            results["reference"] = run_system(
                args, upstreams, start_reference(args.reference.resolve(), upstreams, folder)
            )
        print("bridge...", file=sys.stderr, flush=True)
        database_url = fresh_database(args.database, folder)
        results["bridge"] = run_system(args, upstreams, start_bridge(upstreams, database_url, folder, args.workers))
    finally:
        upstreams.stop()

    latency_ms = args.latency * 1000
    print(
        f"IM and Salesforce emulators in their own processes, {latency_ms:g} ms added to every call; load from its own "
        f"process, {args.concurrency} requests at once; logs in {folder}"
    )
    print(
        f"bridge: helpdesk-bridge serve on {database or 'SQLite (temporary file)'}, defaults but "
        + ", ".join(f"{k}={v}" for k, v in BRIDGE_SETTINGS.items())
    )
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() if not absent else ""
    print(
        f"reference: {args.reference} (node {node})"
        if not absent
        else f"reference: absent ({absent}): the bridge alone"
    )
    start_load, end_load = (" ".join(f"{x:.2f}" for x in a) for a in (load_at_start, os.getloadavg()))
    print(f"machine: {os.cpu_count()} CPUs, load average {start_load} at the start, {end_load} at the end")
    workloads = [
        Workload("/joingroup", 1, args.joins),
        Workload("/createticket (Salesforce)", 2, args.tickets),
    ]
    for workload, key in zip(workloads, ("joingroup", "createticket"), strict=True):
        limit = workload.round_trips * args.latency
        trips = "one IM round trip" if workload.round_trips == 1 else "the Case, then the group"
        print(
            f"\n{workload.name}: {workload.requests} requests, {args.concurrency} at once; physical limit "
            f"{limit * 1000:g} ms ({trips}); alone: {args.alone} one at a time"
        )
        print_cells([name for name, _ in COLUMNS])
        for system, figures in results.items():
            print_cells(row(system, figures[key], limit))
    print()
    if "reference" in results:
        ratios = []
        for workload, key in zip(workloads, ("joingroup", "createticket"), strict=True):
            bridge, reference = results["bridge"][key], results["reference"][key]
            throughput = bridge.throughput / reference.throughput if reference.throughput else math.nan
            p50 = bridge.p50 / reference.p50 if reference.p50 else math.nan
            ratios.append(f"{workload.name.split()[0]} throughput {throughput:.2f}, p50 {p50:.2f}")
        print("bridge / reference: " + "; ".join(ratios))
    else:
        print(f"bridge / reference: no reference ({absent})")


if __name__ == "__main__":
    main()
