"""The durable job queue: work is stored before it is answered, then claimed with a lease and retried on a schedule.

- `enqueue()` inserts a job under a unique key (made once by the caller, reused on every attempt): enqueueing the
  same key twice returns the first job, so a redelivered request never queues its work twice.
- Jobs with the same `ordering_key` (a group ID) run one at a time, in the order they were enqueued.
- Claiming: on PostgreSQL `FOR UPDATE SKIP LOCKED` picks candidates so several bridge processes never take the same
  job; everywhere a compare-and-set on (status, lease) makes the claim, so a job whose worker died is taken again
  once its lease has run out. A running job renews its lease, so a slow one is never taken while it runs; every
  write of a runner (checkpoint, outcome) is fenced by its lease token, so a runner that lost its lease anyway
  (a stalled process) stops at its next checkpoint instead of repeating steps the new runner does.
- A handler may raise `Deferred(delay)`: the job waits that long and runs again, no attempt counted (the transcript
  waits for its ticket's pace this way, and later messages of its group gather behind it).
- Outcomes: done; RetriableError -> pending again at the next step of RETRY_SCHEDULE (or the upstream's
  Retry-After); PermanentError, a value the database refuses (DataError) or an exhausted schedule -> dead, listed
  by `helpdesk-bridge jobs list`.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Executable, and_, exists, or_, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import col, func, select

from bridge.errors import BadRequest, BridgeError, PermanentError, RetriableError
from bridge.states import JobStatus
from bridge.store import Database, Job, now

log = logging.getLogger(__name__)

# Seconds before attempt n+1 (about 3 days in all); then the job is dead. Scaled by Settings.bridge_job_retry_scale.
RETRY_SCHEDULE = (0, 2, 10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 24 * 3600)
JITTER = 0.2
LEASE_SECONDS = 60.0

Handler = Callable[[Job], Awaitable[dict[str, Any] | None]]


class LeaseLost(Exception):
    """The job's lease ran out and another worker took it: this runner must stop and record nothing."""


class Deferred(Exception):
    """Not now: run the job again in `delay` seconds. Not a failure, so it counts no attempt and logs no error."""

    def __init__(self, delay: float, reason: str = ""):
        super().__init__(f"deferred {delay:.2f} s{': ' + reason if reason else ''}")
        self.delay = delay


OPEN_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)

# Fault injection for the crash tests: BRIDGE_TEST_CRASH_AT="<point>:<job kind>" ends the process at that point as a
# kill would (no cleanup, no commit). Points: claimed, ran (the upstream answered, nothing recorded), finished.
CRASH_AT = os.environ.get("BRIDGE_TEST_CRASH_AT", "")


def crash_point(point: str, kind: str) -> None:
    if CRASH_AT and f"{point}:{kind}" == CRASH_AT:
        logging.getLogger(__name__).critical("BRIDGE_TEST_CRASH_AT=%s: exiting now", CRASH_AT)
        os._exit(75)


def _storable(error: str | None) -> str | None:
    """An error message PostgreSQL can store: a NUL from the failing input must not make recording it fail too."""
    return error.replace("\x00", "\\x00") if error else error


class JobQueue:
    def __init__(
        self,
        db: Database,
        retry_scale: float = 1.0,
        lease_seconds: float = LEASE_SECONDS,
        clock: Callable[[], float] = now,
    ):
        self.db = db
        self.clock = clock  # wall-clock seconds; a test's state machine drives its own
        self.retry_scale = retry_scale
        self.lease_seconds = lease_seconds
        self.handlers: dict[str, Handler] = {}
        self.wakeup = asyncio.Event()

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.handlers[kind] = fn
            return fn

        return register

    # --- enqueue and inspect ------------------------------------------------------------------------------------

    async def enqueue(
        self, kind: str, payload: dict[str, Any], key: str, ordering_key: str | None = None, delay: float = 0.0
    ) -> tuple[Job, bool]:
        """Store a job; returns (job, created). An existing key returns the stored job and created=False."""
        job = Job(
            kind=kind,
            key=key,
            ordering_key=ordering_key,
            payload_json=json.dumps(payload),
            next_attempt_at=self.clock() + delay,
        )
        try:
            async with self.db.session() as s:
                s.add(job)
            self.wakeup.set()
            return job, True
        except IntegrityError:
            existing = await self.by_key(key)
            if existing is None:
                raise
            return existing, False

    async def by_key(self, key: str) -> Job | None:
        async with self.db.session() as s:
            return (await s.exec(select(Job).where(Job.key == key))).first()

    async def get(self, job_id: int) -> Job | None:
        async with self.db.session() as s:
            return await s.get(Job, job_id)

    async def list(self, status: str | None = None, limit: int = 100) -> list[Job]:
        async with self.db.session() as s:
            query = select(Job).order_by(col(Job.id)).limit(limit)
            if status:
                query = query.where(Job.status == status)
            return list((await s.exec(query)).all())

    async def retry(self, job_id: int | None = None, all_dead: bool = False) -> int:
        """Put dead (or failed) jobs back to pending, attempts reset; returns how many."""
        async with self.db.session() as s:
            moment = self.clock()
            stmt = update(Job).values(
                status=JobStatus.PENDING, attempts=0, next_attempt_at=moment, lease_until=None, updated_at=moment
            )
            if all_dead:
                stmt = stmt.where(col(Job.status) == JobStatus.DEAD)
            else:
                stmt = stmt.where(col(Job.id) == job_id, col(Job.status).in_((JobStatus.DEAD, JobStatus.FAILED)))
            result = await s.exec(stmt)  # type: ignore[call-overload]
        self.wakeup.set()
        return int(result.rowcount or 0)

    async def hand_over(self, job: Job) -> None:
        """The request that stored `job` stops waiting for it: the worker may take it as soon as it is due."""
        async with self.db.session() as s:
            await s.exec(  # type: ignore[call-overload]
                update(Job)
                .where(col(Job.id) == job.id, col(Job.status) == JobStatus.PENDING, col(Job.attempts) == 0)
                .values(next_attempt_at=self.clock())
            )
        self.wakeup.set()

    async def behind_a_retry(self, job: Job) -> bool:
        """True when an earlier job of the same group already failed and waits for its retry: `job` will wait too."""
        if job.ordering_key is None:
            return False
        async with self.db.session() as s:
            query = (
                select(Job.id)
                .where(
                    Job.ordering_key == job.ordering_key,
                    col(Job.id) < (job.id or 0),
                    Job.status == JobStatus.PENDING,
                    col(Job.attempts) > 0,
                )
                .limit(1)
            )
            return (await s.exec(query)).first() is not None

    async def behind(self, job: Job, limit: int) -> builtins.list[Job]:
        """Up to `limit` pending jobs of `job`'s kind queued after it under its ordering key, in order: work a runner
        of `job` may do at once (they cannot start before it ends), recording each with `done_statement`."""
        async with self.db.session() as s:
            query = (
                select(Job)
                .where(
                    Job.ordering_key == job.ordering_key,
                    Job.kind == job.kind,
                    col(Job.id) > (job.id or 0),
                    Job.status == JobStatus.PENDING,
                )
                .order_by(col(Job.id))
                .limit(limit)
            )
            return builtins.list((await s.exec(query)).all())

    def done_statement(self, job: Job, result: dict[str, Any]) -> Executable:
        """The statement recording a job from `behind` as done with `result` (if it is still pending), for a
        checkpoint of the runner that did its work."""
        return (
            update(Job)
            .where(col(Job.id) == job.id, col(Job.status) == JobStatus.PENDING)
            .values(status=JobStatus.DONE, result_json=json.dumps(result), updated_at=self.clock())
        )

    async def stats(self) -> dict[str, Any]:
        async with self.db.session() as s:
            counts = dict((await s.exec(select(Job.status, func.count()).group_by(Job.status))).all())
            oldest = (await s.exec(select(func.min(Job.created_at)).where(Job.status == JobStatus.PENDING))).first()
        return {"counts": counts, "oldest_pending_age": (self.clock() - oldest) if oldest else 0.0}

    # --- claim and run ------------------------------------------------------------------------------------------

    def _claimable(self, moment: float, own: bool = False) -> Any:
        """Due and not behind an open job of its group. `own`: the request that enqueued a job may run it at
        once, before the grace that keeps the worker away from it has passed (never a retry before its time)."""
        earlier = aliased(Job)
        blocked = exists().where(
            col(earlier.ordering_key) == col(Job.ordering_key),
            col(earlier.id) < col(Job.id),
            col(earlier.status).in_(OPEN_STATUSES),
        )
        on_time = col(Job.next_attempt_at) <= moment
        if own:
            on_time = or_(on_time, col(Job.attempts) == 0)
        due = or_(
            and_(col(Job.status) == JobStatus.PENDING, on_time),
            and_(col(Job.status) == JobStatus.RUNNING, col(Job.lease_until) < moment),
        )
        return and_(due, or_(col(Job.ordering_key).is_(None), ~blocked))

    async def claim(self, limit: int = 10, job_id: int | None = None) -> builtins.list[Job]:
        """Take up to `limit` due jobs, or just `job_id` (the caller's own) if it is not behind another of its group."""
        moment = self.clock()
        own = job_id is not None
        async with self.db.session() as s:
            if job_id is not None:
                candidates = [job_id]  # the compare-and-set below is the whole check
            else:
                query = select(Job.id).where(self._claimable(moment)).order_by(col(Job.id)).limit(limit)
                if not self.db.is_sqlite:
                    query = query.with_for_update(skip_locked=True, of=Job)  # type: ignore[arg-type]
                candidates = [found for found in (await s.exec(query)).all() if found is not None]
            claimed: builtins.list[Job] = []
            for candidate in candidates:
                result = await s.exec(  # type: ignore[call-overload]
                    update(Job)
                    .where(col(Job.id) == candidate, self._claimable(moment, own))
                    .values(
                        status=JobStatus.RUNNING,
                        lease_until=moment + self.lease_seconds,
                        lease_token=uuid.uuid4().hex,
                        attempts=Job.attempts + 1,
                        updated_at=moment,
                    )
                    .returning(Job)
                )
                claimed += result.scalars().all()
            return claimed

    async def checkpoint(self, job: Job, *also: Executable, **progress: Any) -> None:
        """Merge `progress` into the job's payload, so a later attempt skips the steps already done; `also` are
        statements recording the same step elsewhere (a link), committed with it or not at all.

        Raises LeaseLost when another runner holds the job now: its progress must not be overwritten."""
        payload_json = json.dumps({**job.payload, **progress})
        async with self.db.session() as s:
            for statement in also:
                await s.exec(statement)  # type: ignore[call-overload]
            result = await s.exec(  # type: ignore[call-overload]
                update(Job)
                .where(col(Job.id) == job.id, col(Job.lease_token) == job.lease_token)
                .values(payload_json=payload_json, updated_at=self.clock())
            )
            if result.rowcount != 1:
                raise LeaseLost(f"job {job.id} was taken by another runner")  # rolls back `also` too
        job.payload_json = payload_json

    async def _write_leased(self, job: Job, **values: Any) -> bool:
        """Update the job (and `job` with it) while its lease token is still the stored one; False when it is not."""
        async with self.db.session() as s:
            result = await s.exec(  # type: ignore[call-overload]
                update(Job).where(col(Job.id) == job.id, col(Job.lease_token) == job.lease_token).values(**values)
            )
        if result.rowcount != 1:
            return False
        for name, value in values.items():
            setattr(job, name, value)
        return True

    async def _run_leased(self, job: Job, handler: Handler) -> dict[str, Any] | None:
        """Run the handler, renewing the job's lease every third of it; stop it if the lease is lost."""
        task = asyncio.ensure_future(handler(job))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.lease_seconds / 3)
                if done:
                    return task.result()
                try:
                    renewed = await self._write_leased(job, lease_until=self.clock() + self.lease_seconds)
                except Exception:  # the database is unreachable: the lease may run out, fencing keeps writes safe
                    log.warning("renewing the lease of job %s failed", job.id, exc_info=True)
                    continue
                if not renewed:
                    raise LeaseLost(f"job {job.id} was taken by another runner")
        finally:
            task.cancel()  # a no-op once it is done; stops it when this runner lost the job or is cancelled

    async def run(self, job: Job, permanent_status: JobStatus = JobStatus.DEAD) -> Job:
        """Run one claimed job and record its outcome; returns the job as stored afterwards.

        `permanent_status` is FAILED when the job runs inline and its caller is told of a permanent failure."""
        handler = self.handlers.get(job.kind)
        crash_point("claimed", job.kind)
        recorded = False
        try:
            if handler is None:
                raise PermanentError(f"no handler for job kind {job.kind!r}", upstream="bridge")
            result = await self._run_leased(job, handler)
        except LeaseLost as exc:
            log.warning("%s; this runner stops", exc)
        except Deferred as exc:
            moment = self.clock()
            recorded = await self._write_leased(
                job,
                status=JobStatus.PENDING,
                attempts=max(job.attempts - 1, 0),
                next_attempt_at=moment + exc.delay,
                lease_until=None,
                updated_at=moment,
            )
        except RetriableError as exc:
            recorded = await self._retry_later(job, str(exc), exc.retry_after)
        except BridgeError as exc:  # PermanentError and bad input: retrying cannot help
            recorded = await self._finish(job, permanent_status, error=str(exc), result=exc.body())
        except DataError as exc:  # the database refused a value (NUL in text, out of range): it will every time
            refused = BadRequest(f"the database refused a value of this job: {str(exc.orig or exc).splitlines()[0]}")
            log.warning("job %s (%s) failed for good: %s", job.id, job.kind, refused)
            recorded = await self._finish(job, permanent_status, error=str(refused), result=refused.body())
        except Exception as exc:  # an unexpected bug: keep the job, retry it on the schedule, log once
            log.exception("job %s (%s) raised", job.id, job.kind)
            recorded = await self._retry_later(job, f"{type(exc).__name__}: {exc}", None)
        else:
            crash_point("ran", job.kind)
            recorded = await self._finish(job, JobStatus.DONE, result=result or {})
            crash_point("finished", job.kind)
        if recorded:
            return job  # as just written
        return await self.get(job.id or 0) or job  # another runner has it: as it stands

    def delay_for(self, attempts: int, retry_after: float | None) -> float | None:
        """Seconds until the next attempt after `attempts` failures; None when the schedule is exhausted."""
        if attempts >= len(RETRY_SCHEDULE):
            return None
        base = RETRY_SCHEDULE[attempts] * self.retry_scale
        delay = base * random.uniform(1 - JITTER, 1 + JITTER)
        if retry_after:
            delay = max(delay, retry_after * min(self.retry_scale, 1.0))
        return delay

    async def _retry_later(self, job: Job, error: str, retry_after: float | None) -> bool:
        delay = self.delay_for(job.attempts, retry_after)
        if delay is None:
            return await self._finish(job, JobStatus.DEAD, error=error)
        moment = self.clock()
        return await self._write_leased(
            job,
            status=JobStatus.PENDING,
            next_attempt_at=moment + delay,
            lease_until=None,
            last_error=_storable(error),
            updated_at=moment,
        )

    async def _finish(
        self, job: Job, status: JobStatus, error: str | None = None, result: dict[str, Any] | None = None
    ) -> bool:
        recorded = await self._write_leased(
            job,
            status=status,
            lease_until=None,
            last_error=_storable(error),
            result_json=json.dumps(result) if result is not None else None,
            updated_at=self.clock(),
        )
        self.wakeup.set()
        return recorded

    # --- the worker -----------------------------------------------------------------------------------------------

    def _ran(self, running: set[asyncio.Task[Job]]) -> Callable[[asyncio.Task[Job]], None]:
        def done(task: asyncio.Task[Job]) -> None:
            running.discard(task)
            self.wakeup.set()  # a slot is free, and the group's next job may be due

        return done

    async def work(self, concurrency: int = 20, idle: float = 0.5) -> None:
        """Run due jobs until cancelled."""
        running: set[asyncio.Task[Job]] = set()
        while True:
            self.wakeup.clear()
            free = concurrency - len(running)
            try:
                jobs = await self.claim(free) if free > 0 else []
            except Exception:  # the database is down or busy: keep the worker alive and try again
                log.warning("claiming jobs failed; retrying", exc_info=True)
                await asyncio.sleep(idle)
                continue
            for job in jobs:
                task = asyncio.create_task(self.run(job))
                running.add(task)
                task.add_done_callback(self._ran(running))
            if not jobs:
                try:
                    await asyncio.wait_for(self.wakeup.wait(), idle)
                except TimeoutError:
                    pass
