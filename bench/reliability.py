"""Reliability under faults: N createticket requests against the IM and Zendesk emulators with a share of their
calls failing, the bridge killed (SIGKILL) and restarted once in the middle. Customers retry with the same
Idempotency-Key, as a well-behaved app does. Prints accepted, completed, lost and duplicated counts.

Target: 0 lost and 0 duplicated at 30% injected failures with one kill.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bridge import auth
from bridge.jobs import JobQueue
from bridge.sandbox.im import create_app as create_im
from bridge.sandbox.process import BridgeProcess
from bridge.sandbox.server import BackgroundServer
from bridge.sandbox.zendesk import create_app as create_zd
from bridge.store import Database

SDKAPPID, IM_KEY = 1400000000, "bench-im-key"
ZD_EMAIL, ZD_TOKEN = "admin@example.com", "bench-zendesk-token"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--fault-rate", type=float, default=0.3, help="share of IM and Zendesk calls that fail")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database", default=None, help="database URL (default: SQLite in a temporary folder)")
    parser.add_argument("--no-kill", action="store_true", help="do not kill the bridge in the middle")
    parser.add_argument("--deadline", type=float, default=240.0, help="seconds to wait for every request to finish")
    parser.add_argument("--retry-scale", default="0.001", help="BRIDGE_JOB_RETRY_SCALE: compresses the 3-day schedule")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-reliability-"))
    im = BackgroundServer(create_im(SDKAPPID, IM_KEY, rate_limit=100000)).start()
    zd = BackgroundServer(create_zd(email=ZD_EMAIL, api_token=ZD_TOKEN)).start()
    faults = {"error_rate": args.fault_rate, "seed": 7}
    httpx.post(im.url + "/_emulator/faults", json=faults).raise_for_status()
    httpx.post(zd.url + "/_emulator/faults", json={**faults, "status": 503}).raise_for_status()
    env = {
        "IM_SDKAPPID": str(SDKAPPID),
        "IM_SECRET_KEY": IM_KEY,
        "IM_API_BASE": im.url,
        "ZENDESK_URL": zd.url,
        "ZENDESK_EMAIL": ZD_EMAIL,
        "ZENDESK_API_TOKEN": ZD_TOKEN,
        "BRIDGE_DATABASE_URL": args.database or f"sqlite:///{folder}/bridge.db",
        "BRIDGE_JOB_LEASE_SECONDS": "3",
        "BRIDGE_JOB_RETRY_SCALE": args.retry_scale,
    }
    bridge = BridgeProcess(env, folder / "bridge.log").start()
    outcome: dict[int, int] = {}
    attempts = Counter[int]()
    killed = threading.Event()

    def customer(n: int) -> None:
        user = f"bench-{n}"
        sig = auth.gen_usersig(SDKAPPID, IM_KEY, user, 3600)
        body = {"userId": user, "caseInfo": {"subject": f"Request {n}"}}
        deadline = time.time() + args.deadline
        while time.time() < deadline:
            attempts[n] += 1
            try:
                r = httpx.post(
                    bridge.url + "/createticket",
                    json=body,
                    timeout=60,
                    headers={"Authorization": f"UserSig {sig}", "Idempotency-Key": f"bench-{n}"},
                )
                if r.status_code in (201, 202):
                    outcome[n] = r.status_code
                    return
            except httpx.HTTPError:
                pass  # the bridge is down (killed): retry with the same key
            time.sleep(0.5)

    def killer() -> None:
        while len(outcome) < args.requests // 2:
            time.sleep(0.05)
        bridge.kill()
        killed.set()
        bridge.start()

    started = time.time()
    if not args.no_kill:
        threading.Thread(target=killer, daemon=True).start()
    with ThreadPoolExecutor(args.concurrency) as pool:
        list(pool.map(customer, range(args.requests)))
    accepted = time.time() - started

    # Completed: the ticket has its group, the customer in it, and one greeting. Wait for the queue to finish.
    def census() -> tuple[Counter[str], dict[str, Any]]:
        tickets = httpx.get(zd.url + "/_emulator/state").json()["tickets"]
        state = httpx.get(im.url + "/_emulator/state").json()
        return Counter(t["subject"] for t in tickets.values()), state

    deadline = time.time() + args.deadline
    while True:
        by_subject, state = census()
        done = sum(1 for n in outcome if _complete(n, by_subject, state))
        if done == len(outcome) or time.time() > deadline:
            break
        time.sleep(1)
    bridge.stop()
    (folder / "im-state.json").write_text(json.dumps(state, indent=1))
    im.stop()
    zd.stop()
    retrying = asyncio.run(_open_requests(env["BRIDGE_DATABASE_URL"]))
    incomplete = {n for n in outcome if not _complete(n, by_subject, state)}
    still_retrying = {n for n in incomplete if f"createticket:bench-{n}" in retrying}

    duplicated_tickets = sum(c - 1 for c in by_subject.values() if c > 1)
    groups = {gid: g for gid, g in state["groups"].items() if gid.startswith("ZENDESK#")}
    greetings = [_greetings(state, gid) for gid in groups]
    duplicated = duplicated_tickets + sum(1 for count in greetings if count > 1) + max(0, len(groups) - len(by_subject))
    print(
        f"requests {args.requests}, injected failures {args.fault_rate:.0%} of IM and Zendesk calls, "
        f"kill and restart: {'yes' if killed.is_set() else 'no'}"
    )
    print(
        f"accepted    {len(outcome)}   (201: {sum(1 for s in outcome.values() if s == 201)}, "
        f"202: {sum(1 for s in outcome.values() if s == 202)}; client attempts {sum(attempts.values())}; "
        f"{accepted:.1f} s)"
    )
    print(f"completed   {done}   (ticket, group with the customer, one greeting)")
    print(f"retrying    {len(still_retrying)}   (not finished by the deadline, still on the retry schedule)")
    print(f"lost        {len(incomplete - still_retrying) + (args.requests - len(outcome))}")
    print(
        f"duplicated  {duplicated}   (extra tickets {duplicated_tickets}, groups {len(groups)} for "
        f"{len(by_subject)} tickets, groups with more than one greeting {sum(1 for c in greetings if c > 1)})"
    )
    print(f"bridge log: {folder / 'bridge.log'}")


async def _open_requests(database_url: str) -> set[str]:
    """Keys of the createticket jobs still pending or running: work the queue has not given up on."""
    db = Database(database_url)
    try:
        queue = JobQueue(db)
        jobs = await queue.list(status="pending", limit=100000) + await queue.list(status="running", limit=100000)
        return {job.key for job in jobs if job.kind == "createticket"}
    finally:
        await db.close()


def _complete(n: int, by_subject: Counter[str], state: dict[str, Any]) -> bool:
    if by_subject.get(f"Request {n}", 0) < 1:
        return False
    return any(f"bench-{n}" in group["Members"] and _greetings(state, gid) for gid, group in state["groups"].items())


def _greetings(state: dict[str, Any], group_id: str) -> int:
    """Greetings the group received: the IM admin's messages (IM keeps one of repeats with the same Random)."""
    return sum(1 for m in state["messages"].get(group_id, []) if m["From_Account"] == "administrator")


if __name__ == "__main__":
    main()
