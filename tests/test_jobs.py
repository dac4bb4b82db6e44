"""The durable job queue on every database: ordering, retries, dead letters, leases, and a state machine over
deliver / redeliver / fail / crash / restart whose invariants are "no job lost" and "at most one create"."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bridge import migrations
from bridge.errors import PermanentError, RetriableError
from bridge.jobs import RETRY_SCHEDULE, JobQueue
from bridge.states import JobStatus
from bridge.store import Database, Job, Link
from tests.conftest import DATABASES, PG_URL, reset_postgres


@pytest.fixture
async def db(database_url: str):  # type: ignore[no-untyped-def]
    migrations.upgrade(database_url)
    database = Database(database_url)
    yield database
    await database.close()


async def drain(queue: JobQueue, rounds: int = 50) -> None:
    for _ in range(rounds):
        jobs = await queue.claim(20)
        if not jobs:
            return
        await asyncio.gather(*(queue.run(job) for job in jobs))


async def test_same_key_is_one_job(db: Database) -> None:
    queue = JobQueue(db)
    first, created = await queue.enqueue("k", {"a": 1}, key="same")
    again, created_again = await queue.enqueue("k", {"a": 2}, key="same")
    assert created and not created_again and first.id == again.id and again.payload == {"a": 1}


async def test_order_per_group(db: Database) -> None:
    queue = JobQueue(db)
    seen: list[int] = []

    async def handler(job: Job) -> dict[str, Any]:
        await asyncio.sleep(0.01 * (5 - job.payload["n"]))  # later jobs would finish first if run together
        seen.append(job.payload["n"])
        return {}

    queue.handler("step")(handler)
    for n in range(5):
        await queue.enqueue("step", {"n": n}, key=f"step-{n}", ordering_key="G1")
    claimed = await queue.claim(10)
    assert [job.payload["n"] for job in claimed] == [0], "only the first of a group is claimable"
    await queue.run(claimed[0])
    await drain(queue)
    assert seen == [0, 1, 2, 3, 4]


async def test_other_groups_are_not_blocked(db: Database) -> None:
    queue = JobQueue(db)
    await queue.enqueue("x", {}, key="a1", ordering_key="A")
    await queue.enqueue("x", {}, key="a2", ordering_key="A")
    await queue.enqueue("x", {}, key="b1", ordering_key="B")
    await queue.enqueue("x", {}, key="n1")
    assert sorted(job.key for job in await queue.claim(10)) == ["a1", "b1", "n1"]


async def test_retriable_then_done_and_permanent_is_dead(db: Database) -> None:
    queue = JobQueue(db, retry_scale=0.0001)
    attempts = Counter[str]()

    async def flaky(job: Job) -> dict[str, Any]:
        attempts[job.key] += 1
        if job.key == "bad":
            raise PermanentError("refused", upstream="im", upstream_code=10004)
        if attempts[job.key] < 3:
            raise RetriableError("timeout", upstream="im")
        return {"ok": True}

    queue.handler("f")(flaky)
    await queue.enqueue("f", {}, key="good")
    await queue.enqueue("f", {}, key="bad")
    for _ in range(20):
        await drain(queue)
        await asyncio.sleep(0.01)
    good, bad = await queue.by_key("good"), await queue.by_key("bad")
    assert (
        good
        and good.status == JobStatus.DONE
        and good.attempts == 3
        and json.loads(good.result_json or "") == {"ok": True}
    )
    assert bad and bad.status == JobStatus.DEAD and bad.attempts == 1 and "refused" in (bad.last_error or "")
    assert (await queue.stats())["counts"] == {"done": 1, "dead": 1}
    assert await queue.retry(all_dead=True) == 1
    assert (await queue.by_key("bad")).status == JobStatus.PENDING  # type: ignore[union-attr]


async def test_a_value_the_database_refuses_is_a_permanent_failure(db: Database) -> None:
    """PostgreSQL refuses NUL in text (DataError): retrying for days cannot store it, and each retry of a createticket
    past the helpdesk's idempotency window would open another ticket. Dead at once, with the reason."""
    if db.is_sqlite:
        pytest.skip("SQLite stores NUL in text; the refusal is PostgreSQL's")
    queue = JobQueue(db, retry_scale=0.0001)

    async def store_link(job: Job) -> dict[str, Any]:
        link = Link(provider="zendesk", ticket_id="7", group_id="ZENDESK#7", requester_id="u1", subject="a\x00b")
        await queue.checkpoint(job, db.insert_link(link), ticketId="7")  # as opening a ticket records its link
        return {}

    queue.handler("store")(store_link)
    await queue.enqueue("store", {}, key="nul")
    for _ in range(5):
        await drain(queue)
    job = await queue.by_key("nul")
    assert job and (job.status, job.attempts) == (JobStatus.DEAD, 1), job
    assert "NUL" in (job.last_error or "")
    assert json.loads(job.result_json or "{}")["error"]["code"] == "bad_request"
    assert await db.link_by_group("ZENDESK#7") is None


async def test_retry_after_is_honoured(db: Database) -> None:
    queue = JobQueue(db, retry_scale=1.0)

    async def limited(job: Job) -> dict[str, Any]:
        raise RetriableError("rate limited", upstream="zendesk", retry_after=30)

    queue.handler("r")(limited)
    await queue.enqueue("r", {}, key="r1")
    (job,) = await queue.claim(1)
    stored = await queue.run(job)
    assert stored.status == JobStatus.PENDING and stored.next_attempt_at - stored.updated_at >= 29


def test_schedule_spans_about_three_days() -> None:
    queue = JobQueue(None)  # type: ignore[arg-type]
    total = sum(queue.delay_for(n, None) or 0 for n in range(len(RETRY_SCHEDULE)))
    assert 2.5 * 86400 < total < 3.5 * 86400
    assert queue.delay_for(len(RETRY_SCHEDULE), None) is None
    assert queue.delay_for(0, None) == 0


async def test_expired_lease_is_taken_again(db: Database) -> None:
    queue = JobQueue(db, lease_seconds=0.05)
    await queue.enqueue("x", {}, key="lease")
    (first,) = await queue.claim(1)
    assert await queue.claim(1) == []
    await asyncio.sleep(0.1)  # the worker that claimed it died
    (second,) = await queue.claim(1)
    assert second.id == first.id and second.attempts == 2 and second.lease_token != first.lease_token
    await queue._finish(first, JobStatus.DONE)  # the dead worker's late write is ignored: its lease is gone
    assert (await queue.get(first.id or 0)).status == JobStatus.RUNNING  # type: ignore[union-attr]


async def test_a_slow_job_keeps_its_lease_while_it_runs(db: Database) -> None:
    """A job running longer than its lease is renewed, not taken by a second worker (which would repeat it)."""
    queue, other = JobQueue(db, lease_seconds=0.3), JobQueue(db, lease_seconds=0.3)
    runs = Counter[str]()

    async def slow(job: Job) -> dict[str, Any]:
        runs[job.key] += 1
        await asyncio.sleep(1.2)  # four leases
        return {}

    queue.handler("slow")(slow)
    other.handler("slow")(slow)
    await queue.enqueue("slow", {}, key="slow")
    (job,) = await queue.claim(1)
    running = asyncio.create_task(queue.run(job))
    stolen: list[Job] = []
    while not running.done():
        stolen += await other.claim(1)
        await asyncio.sleep(0.05)
    assert stolen == [] and runs["slow"] == 1
    assert running.result().status == JobStatus.DONE and running.result().attempts == 1


async def test_a_runner_that_lost_its_lease_stops_at_its_next_checkpoint(db: Database) -> None:
    """A stalled runner whose job was taken meanwhile writes nothing and does not go on to the next step."""
    queue = JobQueue(db, lease_seconds=0.05)
    sent = Counter[str]()

    async def steps(job: Job) -> dict[str, Any]:
        if "first" not in job.payload.get("done", []):
            await queue.checkpoint(job, done=["first"])
        sent["notification"] += 1  # the step that must happen once
        await queue.checkpoint(job, done=["first", "notification"])
        return {}

    queue.handler("steps")(steps)
    await queue.enqueue("steps", {}, key="steps")
    (stalled,) = await queue.claim(1)
    await asyncio.sleep(0.1)  # the lease runs out while its runner is stalled
    (taken,) = await queue.claim(1)
    assert (await queue.run(taken)).status == JobStatus.DONE
    after_stall = await queue.run(stalled)  # the stalled runner wakes up
    assert sent["notification"] == 1
    assert after_stall.status == JobStatus.DONE and after_stall.payload["done"] == ["first", "notification"]


async def test_concurrent_claimers_never_share_a_job(db: Database) -> None:
    queues = [JobQueue(Database(db.url)) for _ in range(4)]
    for n in range(60):
        await queues[0].enqueue("x", {}, key=f"c{n}")
    results = await asyncio.gather(*(q.claim(60) for q in queues))
    ids = [job.id for jobs in results for job in jobs]
    assert len(ids) == len(set(ids)) == 60
    for q in queues:
        await q.db.close()


# --- the state machine -------------------------------------------------------------------------------------------


class Upstream:
    """A helpdesk that creates one ticket per idempotency key, as Zendesk's Idempotency-Key and Salesforce upserts
    do. It records which keys each request was sent with: one key per request means at most one ticket."""

    def __init__(self) -> None:
        self.keys_by_request: dict[str, set[str]] = {}
        self.tickets: set[str] = set()
        self.notifications = Counter[str]()  # a step the upstream cannot deduplicate (IM's greeting)
        self.failing = False

    def create(self, request: str, idempotency_key: str) -> None:
        if self.failing:
            raise RetriableError("upstream down", upstream="helpdesk")
        self.keys_by_request.setdefault(request, set()).add(idempotency_key)
        self.tickets.add(idempotency_key)

    def notify(self, request: str) -> None:
        if self.failing:
            raise RetriableError("upstream down", upstream="im")
        self.notifications[request] += 1


class QueueMachine(RuleBasedStateMachine):
    """Requests are delivered and redelivered; workers claim, run, stall, crash; the bridge restarts."""

    url: str = ""

    @initialize()
    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.upstream = Upstream()
        self.accepted: set[str] = set()
        self.finished: set[str] = set()
        self.reruns: list[str] = []
        self.in_flight: list[Job] = []
        self.db = Database(self.url)
        self.time = 1_000_000.0  # the machine's own clock: leases run out when it says so, not when the OS does
        self.queue = self._new_queue()

    def _new_queue(self) -> JobQueue:
        queue = JobQueue(self.db, retry_scale=0.0, lease_seconds=60, clock=lambda: self.time)

        async def create(job: Job) -> dict[str, Any]:
            if job.key in self.finished:
                self.reruns.append(job.key)  # recorded, not raised: the queue would treat a raise as a retry
            self.upstream.create(job.payload["request"], job.key)
            if "notified" not in job.payload.get("done", []):
                await queue.checkpoint(job, done=["created"])  # a runner that lost the job stops here
                self.upstream.notify(job.payload["request"])
                await queue.checkpoint(job, done=["created", "notified"])
            return {}

        queue.handler("create")(create)
        return queue

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @rule(request=st.integers(0, 5))
    def deliver(self, request: int) -> None:
        key = f"req-{request}"  # a redelivery carries the same request key
        self.run(self.queue.enqueue("create", {"request": key}, key=key, ordering_key=f"g{request % 2}"))
        self.accepted.add(key)

    @rule()
    def claim(self) -> None:
        self.in_flight += self.run(self.queue.claim(3))

    @precondition(lambda self: self.in_flight)
    @rule()
    def run_one(self) -> None:
        job = self.run(self.queue.run(self.in_flight.pop(0)))
        if job.status == JobStatus.DONE:
            self.finished.add(job.key)

    @precondition(lambda self: self.in_flight)
    @rule()
    def crash_after_upstream(self) -> None:
        """The upstream answered, the process died before recording it."""
        job = self.in_flight.pop()
        try:
            self.upstream.create(job.payload["request"], job.key)
        except RetriableError:
            pass

    @precondition(lambda self: self.in_flight)
    @rule()
    def stall(self) -> None:
        """The process stops renewing leases for longer than a lease (a long pause) but lives on: its claimed jobs
        can be taken by another runner, and it resumes them later."""
        self.time += 61

    @rule()
    def restart(self) -> None:
        """Everything claimed by the old process is lost with it; a new process takes over after the leases."""
        self.in_flight.clear()
        self.time += 61
        self.queue = self._new_queue()

    @rule(failing=st.booleans())
    def upstream_fails(self, failing: bool) -> None:
        self.upstream.failing = failing

    @invariant()
    def finished_jobs_never_run_again(self) -> None:
        assert self.reruns == []

    @invariant()
    def never_notified_twice(self) -> None:
        assert all(count == 1 for count in self.upstream.notifications.values()), self.upstream.notifications

    @invariant()
    def at_most_one_create_per_request(self) -> None:
        assert all(len(keys) == 1 for keys in self.upstream.keys_by_request.values())
        assert len(self.upstream.tickets) == len(self.upstream.keys_by_request)

    def teardown(self) -> None:
        # No job lost: with the upstream back, a final restart and drain finishes every accepted request.
        self.upstream.failing = False
        self.in_flight.clear()
        self.time += 61
        self.queue = self._new_queue()
        for _ in range(30):
            self.run(drain(self.queue))
            self.time += 1
        jobs = {job.key: job for job in self.run(self.queue.list(limit=1000))}
        assert set(jobs) == self.accepted
        assert all(job.status == JobStatus.DONE for job in jobs.values()), [j.public() for j in jobs.values()]
        assert set(self.upstream.keys_by_request) == self.accepted
        assert set(self.upstream.notifications) == self.accepted
        self.run(self.db.close())
        self.loop.close()


@pytest.mark.parametrize("backend", DATABASES)
def test_queue_state_machine(backend: str, tmp_path: Any) -> None:
    if backend == "postgresql":
        assert PG_URL
        reset_postgres(PG_URL)
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path / 'machine.db'}"
    migrations.upgrade(url)

    class Machine(QueueMachine):
        pass

    Machine.url = url

    async def wipe() -> None:
        db = Database(url)
        async with db.session() as s:
            from sqlmodel import delete

            await s.exec(delete(Job))  # type: ignore[call-overload]
        await db.close()

    original_start = Machine.start

    def start(self: Machine) -> None:
        asyncio.run(wipe())
        original_start(self)

    Machine.start = initialize()(start)  # type: ignore[method-assign]
    Machine.TestCase.settings = settings(
        max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    Machine.TestCase().runTest()


async def test_purge_keeps_recent_keys_and_forgets_old_ones(db: Database) -> None:
    from sqlalchemy import update
    from sqlmodel import col

    queue = JobQueue(db)
    for key in ("old-done", "old-pending", "new-done"):
        await queue.enqueue("x", {}, key=key)
    async with db.session() as s:
        await s.exec(update(Job).where(col(Job.key).in_(["old-done", "new-done"])).values(status="done"))  # type: ignore[call-overload]
        await s.exec(
            update(Job)
            .where(col(Job.key).in_(["old-done", "old-pending"]))  # type: ignore[call-overload]
            .values(updated_at=0.0)
        )
    assert await db.remember_signature("sig-old", expires_at=1.0)
    assert await db.remember_signature("sig-new", expires_at=10**12)
    await db.purge(event_days=8)
    assert {job.key for job in await queue.list()} == {"old-pending", "new-done"}, "unfinished work is never purged"
    assert await db.remember_signature("sig-old", expires_at=10**12), "an expired signature is forgotten"
    assert not await db.remember_signature("sig-new", expires_at=10**12)


def test_upgrade_keeps_links_and_records_their_agents_as_seen(database_url: str) -> None:
    """0001 -> head on a database in use: today's agents are the agents the link has seen."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from bridge.store import sync_url

    command.upgrade(migrations.config(database_url), "0001")
    engine = create_engine(sync_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO link (provider, ticket_id, group_id, requester_id, agents_json, state, subject, "
                    "created_at, updated_at) VALUES ('zendesk', '7', 'ZENDESK#7', 'cust', '[\"10001\"]', 'open', "
                    "'s', 0, 0)"
                )
            )
            conn.execute(text("INSERT INTO seensignature (signature, expires_at) VALUES ('v1=old', 1)"))
        migrations.upgrade(database_url)
        with engine.connect() as conn:
            seen = conn.execute(text("SELECT agents_seen_json FROM link WHERE group_id = 'ZENDESK#7'")).scalar()
            kept = conn.execute(text("SELECT status, response_json FROM seensignature")).one()
    finally:
        engine.dispose()
    assert json.loads(str(seen)) == ["10001"]
    assert tuple(kept) == (None, None)
    assert migrations.current_revision(database_url) == migrations.head_revision(database_url)
