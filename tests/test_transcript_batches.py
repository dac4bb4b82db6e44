"""The transcript in batches, end to end through the emulators and the real clients: a lively chat stays under
Zendesk's 30 updates per 10 minutes per user per ticket (windows scaled down together in the emulator and the
bridge), every message reaches the ticket once and in order, with its sender, and a 429 is waited out without loss
or duplication. The pace's rule itself is a property test."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.sandbox.process import BridgeProcess
from bridge.sandbox.server import BackgroundServer
from bridge.states import JobKind, JobStatus
from bridge.store import Job
from bridge.transcript import next_batch, next_write_at
from connectors.base import Author, Comment, UpdateBudget
from tests.conftest import CALLBACK_TOKEN, ZD_EMAIL, BridgeClient, BridgeFactory, helpdesk_settings
from tests.test_convergence import wait_for
from tests.test_crash import bridge_env, create
from tests.test_im_callbacks import comments, open_ticket, send
from tests.test_webhooks import jobs

SCALE = 0.04  # Zendesk's 10 minutes become 24 s, its minute 2.4 s
WINDOW = 600 * SCALE
LABEL = re.compile(r"^(Customer|Agent) \((.+)\):$")


def chat_bridge(
    bridge_factory: BridgeFactory, im_server: BackgroundServer, zd_server: BackgroundServer, **overrides: Any
) -> BridgeClient:
    """Zendesk with its update limits' windows scaled by SCALE, a bridge whose budget is scaled alike, and IM calling
    the bridge back."""
    httpx.post(zd_server.url + "/_emulator/update_limits", json={"scale": SCALE}).raise_for_status()
    values: dict[str, Any] = {
        **helpdesk_settings(zd_url=zd_server.url),
        "zendesk_ticket_update_window": WINDOW,
        "bridge_transcript_linger_seconds": 0.3,
        **overrides,
    }
    bridge = bridge_factory(**values)
    config = {"callback_url": bridge.server.url + "/callbacks/im", "callback_token": CALLBACK_TOKEN}
    httpx.post(im_server.url + "/_emulator/config", json=config).raise_for_status()
    return bridge


def written(zd_admin: Any, group_id: str) -> list[tuple[int, str]]:
    """(the author's Zendesk user id, line) for each line the bridge wrote, in order: a one-sender comment is its
    author's; in a comment of several senders (the API user's) each sender's lines follow their label."""
    ticket = zd_admin.ticket(group_id.removeprefix("ZENDESK#"))
    admin = next(u["id"] for u in zd_admin.http.get("/users.json").json()["users"] if u["email"] == ZD_EMAIL)
    lines: list[tuple[int, str]] = []
    for comment in comments(zd_admin, group_id)[1:]:
        author = comment["author_id"]
        for line in comment["body"].splitlines():
            label = LABEL.match(line) if comment["author_id"] == admin else None
            if label:
                author = int(label.group(2)) if label.group(1) == "Agent" else ticket["requester_id"]
            else:
                lines.append((author, line))
    return lines


def counted(bridge: BridgeClient, name: str) -> float:
    """A counter of the bridge's /metrics."""
    for line in bridge.http.get("/metrics").text.splitlines():
        if line.startswith(f"{name}_total "):
            return float(line.split()[-1])
    raise AssertionError(f"no {name} in /metrics")


def rate_limited(zd_server: BackgroundServer) -> list[dict[str, Any]]:
    state = httpx.get(zd_server.url + "/_emulator/state").json()
    return [r for r in state["requests"] if r.get("status") == 429]


def test_a_lively_chat_stays_under_the_per_ticket_limit(
    bridge_factory: BridgeFactory, im_server: BackgroundServer, zd_server: BackgroundServer, zd_admin: Any
) -> None:
    """200 messages of a customer and an agent over the (scaled) 10 minutes: no 429, each message once, in order."""
    bridge = chat_bridge(bridge_factory, im_server, zd_server)
    group = open_ticket(bridge, "zendesk")
    agent_id = zd_admin.agents[0]
    assert bridge.post("/joingroup", {"groupId": group, "userId": f"zd_{agent_id}"}).status_code == 200
    requester = zd_admin.ticket(group.removeprefix("ZENDESK#"))["requester_id"]
    # Runs of one sender, then the other, as a conversation goes.
    senders = [("cust1", requester) if (n // 3) % 2 == 0 else (f"zd_{agent_id}", agent_id) for n in range(200)]
    expected = [(user, f"message {n:03d}") for n, (_, user) in enumerate(senders)]
    started = time.monotonic()
    for n, (account, _) in enumerate(senders):
        time.sleep(max(0.0, started + n * WINDOW / 200 - time.monotonic()))
        send(im_server, group, account, f"message {n:03d}")
    assert time.monotonic() - started < WINDOW * 1.5  # the chat really was this lively
    wait_for(lambda: len(written(zd_admin, group)) >= 200, timeout=WINDOW * 2)
    assert written(zd_admin, group) == expected
    assert rate_limited(zd_server) == []
    updates = len(comments(zd_admin, group)) - 1
    assert updates <= 30 * (time.monotonic() - started) / WINDOW + 1, updates  # never more than the budget
    assert (counted(bridge, "bridge_transcript_comments"), counted(bridge, "bridge_transcript_messages")) == (
        updates,
        200,
    )
    assert counted(bridge, "bridge_transcript_rate_limited") == 0
    assert all(j["status"] == JobStatus.DONE for j in jobs(bridge, JobKind.SYNC_MESSAGE))


def test_a_quiet_chat_reaches_the_ticket_at_once(
    bridge_factory: BridgeFactory, im_server: BackgroundServer, zd_server: BackgroundServer, zd_admin: Any
) -> None:
    """One message a while: each is its own comment, about the linger after it was sent."""
    bridge = chat_bridge(bridge_factory, im_server, zd_server)
    group = open_ticket(bridge, "zendesk")
    for n in range(3):
        sent = time.monotonic()
        send(im_server, group, "cust1", f"quiet {n}")
        wait_for(lambda n=n: len(comments(zd_admin, group)) == n + 2)  # type: ignore[misc]
        assert time.monotonic() - sent < 5.0
    assert [c["body"] for c in comments(zd_admin, group)[1:]] == ["quiet 0", "quiet 1", "quiet 2"]


def test_an_injected_429_is_waited_out(
    bridge_factory: BridgeFactory, im_server: BackgroundServer, zd_server: BackgroundServer, zd_admin: Any
) -> None:
    """Zendesk answers the next calls 429 with Retry-After: the batch waits that long and is written once."""
    bridge = chat_bridge(bridge_factory, im_server, zd_server)
    group = open_ticket(bridge, "zendesk")
    httpx.post(zd_server.url + "/_emulator/rate_limit", json={"count": 3, "retry_after": 1}).raise_for_status()
    limited_at = time.monotonic()
    for n in range(10):
        send(im_server, group, "cust1", f"line {n}")
    wait_for(lambda: len(rate_limited(zd_server)) == 3, timeout=20)  # the bridge met all three (nobody else calls)
    wait_for(lambda: len(written(zd_admin, group)) >= 10, timeout=20)
    assert [line for _, line in written(zd_admin, group)] == [f"line {n}" for n in range(10)]
    assert len(rate_limited(zd_server)) == 3 == counted(bridge, "bridge_transcript_rate_limited")
    assert time.monotonic() - limited_at >= 1.0  # the Retry-After was honoured, not hammered
    sync = jobs(bridge, JobKind.SYNC_MESSAGE)
    assert [j["status"] for j in sync] == [JobStatus.DONE] * 10 and all(j["last_error"] is None for j in sync)


def test_a_ticket_tighter_than_the_budget_is_waited_out(
    bridge_factory: BridgeFactory, im_server: BackgroundServer, zd_server: BackgroundServer, zd_admin: Any
) -> None:
    """Zendesk allows fewer updates than the bridge was told (2 per 3 s): its 429s are waited out, nothing is lost
    or written twice, and no attempt is spent on them."""
    bridge = chat_bridge(bridge_factory, im_server, zd_server)
    httpx.post(
        zd_server.url + "/_emulator/update_limits", json={"per_ticket": 2, "ticket_window": 3.0}
    ).raise_for_status()
    group = open_ticket(bridge, "zendesk")
    for n in range(8):
        send(im_server, group, "cust1", f"line {n}")
        time.sleep(0.5)
    wait_for(lambda: len(written(zd_admin, group)) >= 8, timeout=30)
    assert [line for _, line in written(zd_admin, group)] == [f"line {n}" for n in range(8)]
    assert rate_limited(zd_server), "the emulator never refused an update: the test proves nothing"
    sync = jobs(bridge, JobKind.SYNC_MESSAGE)
    assert all(j["status"] == JobStatus.DONE and j["attempts"] <= 1 for j in sync), sync  # batched ones never ran alone


@pytest.mark.parametrize("point", ["claimed", "ran"])
def test_killed_mid_batch_loses_nothing(
    point: str,
    database_url: str,
    im_server: BackgroundServer,
    zd_server: BackgroundServer,
    zd_admin: Any,
    tmp_path: Path,
) -> None:
    """The bridge dies as it takes a batch (claimed) or once it wrote and recorded it (ran, before the job's end):
    after a restart every message is in the ticket once, in order."""
    env = {**bridge_env(database_url, im_server, zd_server), "IM_CALLBACK_TOKEN": CALLBACK_TOKEN}
    bridge = BridgeProcess({**env, "BRIDGE_TRANSCRIPT_LINGER_SECONDS": "1"}, tmp_path / "bridge.log")
    try:
        bridge.start()
        config = {"callback_url": bridge.url + "/callbacks/im", "callback_token": CALLBACK_TOKEN}
        httpx.post(im_server.url + "/_emulator/config", json=config).raise_for_status()
        created = create(bridge.url, "cust1", "crash-batch")
        assert created.status_code == 201, created.text
        group = created.json()["groupId"]
        bridge.stop()
        bridge.start({"BRIDGE_TEST_CRASH_AT": f"{point}:sync_message"})
        for n in range(5):  # stored before each callback is answered; the batch is taken a second later
            send(im_server, group, "cust1", f"line {n}")
        assert bridge.wait_exit() == 75, "the bridge should have died at the crash point"
        bridge.start()
        wait_for(lambda: len(written(zd_admin, group)) >= 5, timeout=30)
        time.sleep(1.5)  # a second write would come within the lease (1 s) and the linger
        assert [line for _, line in written(zd_admin, group)] == [f"line {n}" for n in range(5)]
    finally:
        bridge.stop()


@pytest.mark.parametrize("updates, seconds", [(30, 600.0), (3, 1.0), (1, 5.0)])
def test_no_budget_means_no_wait(updates: int, seconds: float) -> None:
    assert next_write_at([], UpdateBudget(updates, seconds), 100.0) == 100.0
    assert next_write_at([99.9, 99.95], None, 100.0) == 100.0


@settings(max_examples=300, deadline=None)
@given(
    updates=st.integers(1, 40),
    seconds=st.floats(1, 1000),
    lateness=st.lists(st.floats(0, 1), min_size=1, max_size=120),
)
def test_the_pace_never_exceeds_the_budget(updates: int, seconds: float, lateness: list[float]) -> None:
    """However late each write comes after the pace allows it, no window of `seconds` holds more than `updates`
    writes; and a write is never held back when nothing was written within the window."""
    budget = UpdateBudget(updates, seconds)
    writes: list[float] = []
    moment = 0.0
    for late in lateness:
        due = next_write_at(writes, budget, moment)
        if not writes or writes[-1] <= moment - seconds:
            assert due == moment
        moment = due + late * seconds / updates
        writes.append(moment)
    for start in writes:
        assert sum(1 for at in writes if start <= at < start + seconds) <= updates


@settings(max_examples=300, deadline=None)
@given(data=st.data(), count=st.integers(1, 12))
def test_a_comment_takes_messages_in_ims_order(data: st.DataObject, count: int) -> None:
    """Whatever order IM's callbacks queued them in: the comment's messages are in MsgSeq order, a prefix of those
    queued; it ends early only at a gap before a message queued within the linger (the missing one may come)."""
    seqs = data.draw(st.lists(st.integers(1, 40), min_size=count, max_size=count, unique=True), "queue order")
    fresh = data.draw(st.sets(st.sampled_from(seqs)), "queued within the linger")
    queued = [
        Job(
            id=n + 1,
            kind=JobKind.SYNC_MESSAGE,
            key=f"im-msg:G:{seq}",
            payload_json=json.dumps({"groupId": "G", "from": "cust1", "msgSeq": seq}),
            created_at=10.0 if seq in fresh else 0.0,
        )
        for n, seq in enumerate(seqs)
    ]
    found = [
        (Comment("1", f"m{job.payload['msgSeq']}", Author.CUSTOMER, "cust1", job.key), {"author": "customer"})
        for job in queued
    ]
    taken, comments = next_batch(queued[0], queued, found, settled=5.0, one_sender=False)
    order = sorted(seqs)
    got = [member.payload["msgSeq"] for member, _, _ in taken]
    assert got == order[: len(got)] and len(got) >= 1
    assert [c.body for c in comments] == [f"m{seq}" for seq in got]
    if len(got) < len(order):
        following = order[len(got)]
        assert following in fresh and following != got[-1] + 1
