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
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    Executable,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    literal_column,
    or_,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from bridge.errors import BadRequest, BridgeError, PermanentError, RetriableError
from bridge.states import JobStatus
from bridge.store import Database, Job, Prepared, Statement, execute, now

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
        self._waiters: dict[int, asyncio.Event] = {}  # job id -> set when this process records its outcome
        self._group_waiters: dict[str, set[int]] = {}  # ordering key -> ids of the jobs waited for
        self._with_outcome: dict[int, builtins.list[Statement]] = {}  # see after()

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.handlers[kind] = fn
            return fn

        return register

    # --- enqueue and inspect ------------------------------------------------------------------------------------

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        key: str,
        ordering_key: str | None = None,
        delay: float = 0.0,
        *,
        claim: bool = False,
        also: Sequence[Statement] = (),
    ) -> tuple[Job, bool]:
        """Store a job; returns (job, created). An existing key returns the stored job and created=False.

        `claim`: the job is stored already leased to this process (status running) when nothing of its group is
        open before it, in the same statement, so the caller runs it without another transaction. `also`:
        statements committed with the job or not at all (a signature's claim); an IntegrityError from them
        propagates and stores nothing."""
        moment = self.clock()
        params = {
            **_insert_params(kind, payload, key, ordering_key, moment, moment + delay),
            "lease_until": moment + self.lease_seconds,
            "lease_token": uuid.uuid4().hex,
        }
        statement = _insert_statement(self.db.is_sqlite, claim, ordering_key is not None)

        async def store(s: Any) -> tuple[Job, bool]:
            for extra in also:
                await execute(s, extra)
            if ordering_key is not None and not self.db.is_sqlite:
                # Stores of one group take turns, so two of them never both find the group free (SQLite has one
                # writer at a time anyway).
                await s.exec(GROUP_TURN, params={"k": ordering_key})
            stored = (await s.exec(statement, params=params)).scalars().first()
            if stored is not None:
                return stored, True
            existing = (await s.exec(select(Job).where(Job.key == key))).first()
            assert existing is not None, "a conflicting key is never deleted while its job is open"
            return existing, False

        job, created = await self.db.run(store)
        if created and job.status == JobStatus.PENDING:
            self.wakeup.set()
        return job, created

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

    async def claim(self, limit: int = 10, job_id: int | None = None) -> builtins.list[Job]:
        """Take up to `limit` due jobs, or just `job_id` if it is due and not behind another of its group."""
        moment = self.clock()

        async def take(s: Any) -> builtins.list[Job]:
            if job_id is not None:
                candidates = [job_id]  # the compare-and-set below is the whole check
            else:
                # Pending jobs that are due, and running ones whose lease ran out, each on its partial index.
                found = set()
                for status in OPEN_STATUSES:
                    query = _candidates(self.db.is_sqlite, status)
                    found.update((await s.exec(query, params={"moment": moment, "limit": limit})).all())
                candidates = sorted(found)
            claimed: builtins.list[Job] = []
            for candidate in candidates[:limit]:
                params = {"job_id": candidate, "moment": moment, "lease_until": moment + self.lease_seconds}
                result = await s.exec(_CLAIM, params={**params, "token": uuid.uuid4().hex})
                claimed += result.scalars().all()
            return claimed

        return await self.db.run(take)

    async def checkpoint(self, job: Job, *also: Statement, **progress: Any) -> None:
        """Merge `progress` into the job's payload, so a later attempt skips the steps already done; `also` are
        statements recording the same step elsewhere (a link), committed with it or not at all.

        Raises LeaseLost when another runner holds the job now: its progress must not be overwritten."""
        payload_json = json.dumps({**job.payload, **progress})
        async with self.db.session() as s:
            for statement in also:
                await execute(s, statement)
            result = await s.exec(  # type: ignore[call-overload]
                update(Job)
                .where(col(Job.id) == job.id, col(Job.lease_token) == job.lease_token)
                .values(payload_json=payload_json, updated_at=self.clock())
            )
            if result.rowcount != 1:
                raise LeaseLost(f"job {job.id} was taken by another runner")  # rolls back `also` too
        job.payload_json = payload_json

    async def _write_leased(self, job: Job, *also: Statement, **values: Any) -> bool:
        """Update the job (and `job` with it) while its lease token is still the stored one; False when it is not.
        `also` are committed with it or not at all."""

        statement = _leased_update(tuple(sorted(values)))
        params = {"job_id": job.id, "token": job.lease_token, **{f"v_{k}": v for k, v in values.items()}}

        async def write(s: Any) -> int:
            for extra in also:
                await execute(s, extra)
            result = await s.exec(statement, params=params)
            if result.rowcount != 1:
                await s.rollback()  # `also` belongs to this runner's outcome: not recorded without it
            return int(result.rowcount or 0)

        if await self.db.run(write) != 1:
            return False
        for name, value in values.items():
            setattr(job, name, value)
        if "status" in values:
            self._settled(job)
        return True

    def after(self, job: Job, *statements: Statement) -> None:
        """Statements to commit with the job's successful outcome (one transaction: a link changed by the job)."""
        self._with_outcome.setdefault(job.id or 0, []).extend(statements)

    def follow_up(
        self, job: Job, kind: str, payload: dict[str, Any], key: str, ordering_key: str | None = None
    ) -> None:
        """Store another job with the job's successful outcome (one transaction); the worker takes it."""
        moment = self.clock()
        params = _insert_params(kind, payload, key, ordering_key, moment, moment)
        self.after(job, Prepared(_insert_statement(self.db.is_sqlite, False, ordering_key is not None), params))

    def waiter(self, job: Job) -> asyncio.Event:
        """An event set when this process records an outcome of the job or of any job of its group (done,
        failed, or a retry later): the job may be over, or free to run."""
        event = self._waiters.setdefault(job.id or 0, asyncio.Event())
        if job.ordering_key is not None:
            self._group_waiters.setdefault(job.ordering_key, set()).add(job.id or 0)
        return event

    def forget_waiter(self, job: Job) -> None:
        self._waiters.pop(job.id or 0, None)
        waiting = self._group_waiters.get(job.ordering_key or "")
        if waiting is not None:
            waiting.discard(job.id or 0)
            if not waiting:
                del self._group_waiters[job.ordering_key or ""]

    def _settled(self, job: Job) -> None:
        for job_id in (job.id or 0, *self._group_waiters.get(job.ordering_key or "", ())):
            event = self._waiters.get(job_id)
            if event is not None:
                event.set()

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
        self._with_outcome.pop(job.id or 0, None)
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
        self._with_outcome.pop(job.id or 0, None)
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
        also = self._with_outcome.pop(job.id or 0, [])
        recorded = await self._write_leased(
            job,
            *(also if status == JobStatus.DONE else ()),
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


# --- the queue's statements, built once (see store.Prepared) ----------------------------------------------------------

GROUP_TURN = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")


def _status_in(column: Any, *statuses: JobStatus) -> Any:
    """`column` among `statuses`, written as literals: a partial index is used only when the query's condition
    implies the index's (`status = 'pending'`...), which SQLite cannot tell of a bound parameter."""
    values: list[Any] = [literal_column(f"'{status.value}'") for status in statuses]
    return column == values[0] if len(values) == 1 else column.in_(values)


def _claimable() -> Any:
    """Due and not behind an open job of its group. Every condition reads open jobs only, through the partial
    indexes of migration 0005, so finished jobs cost nothing however many there are."""
    earlier = aliased(Job)
    blocked = exists().where(
        col(earlier.ordering_key) == col(Job.ordering_key),
        _status_in(col(earlier.status), *OPEN_STATUSES),
        col(earlier.id) < col(Job.id),
    )
    moment: Any = bindparam("moment")
    due = or_(
        and_(_status_in(col(Job.status), JobStatus.PENDING), col(Job.next_attempt_at) <= moment),
        and_(_status_in(col(Job.status), JobStatus.RUNNING), col(Job.lease_until) < moment),
    )
    return and_(due, or_(col(Job.ordering_key).is_(None), ~blocked))


_CLAIM = (
    update(Job)
    .where(col(Job.id) == bindparam("job_id"), _claimable())
    .values(
        status=JobStatus.RUNNING,
        lease_until=bindparam("lease_until"),
        lease_token=bindparam("token"),
        attempts=Job.attempts + 1,
        updated_at=bindparam("moment"),
    )
    .returning(Job)
)


@cache
def _candidates(is_sqlite: bool, status: JobStatus) -> Any:
    query = (
        select(Job.id)
        .where(_status_in(col(Job.status), status), _claimable())
        .order_by(col(Job.id))
        .limit(bindparam("limit", type_=Integer))
    )
    if not is_sqlite:  # several processes: each passes over rows another is taking
        query = query.with_for_update(skip_locked=True, of=Job)  # type: ignore[arg-type]
    return query


def _insert_params(
    kind: str, payload: dict[str, Any], key: str, ordering_key: str | None, moment: float, due: float
) -> dict[str, Any]:
    """The parameters every job insert (_insert_statement) takes."""
    return {
        "kind": kind,
        "key": key,
        "ordering_key": ordering_key,
        "payload_json": json.dumps(payload),
        "next_attempt_at": due,
        "moment": moment,
    }


@cache
def _insert_statement(is_sqlite: bool, claim: bool, grouped: bool) -> Any:
    """Store a job; with `claim`, leased at once (running, attempt 1) when its group has nothing open."""
    values: dict[str, Any] = {
        name: bindparam(name) for name in ("kind", "key", "ordering_key", "payload_json", "next_attempt_at")
    }
    values.update(created_at=bindparam("moment"), updated_at=bindparam("moment"))
    if not claim:
        values.update(status=JobStatus.PENDING, attempts=0, lease_until=None, lease_token=None)
    else:
        free: Any = literal(True)
        if grouped:
            earlier = aliased(Job)
            free = ~exists().where(
                col(earlier.ordering_key) == bindparam("ordering_key", type_=String),
                _status_in(col(earlier.status), *OPEN_STATUSES),
            )
        values.update(
            status=case((free, JobStatus.RUNNING), else_=JobStatus.PENDING),
            attempts=case((free, 1), else_=0),
            lease_until=case((free, bindparam("lease_until", type_=Float)), else_=None),
            lease_token=case((free, bindparam("lease_token", type_=String)), else_=None),
        )
    insert = sqlite_insert if is_sqlite else postgresql_insert
    return insert(Job).values(**values).on_conflict_do_nothing(index_elements=["key"]).returning(Job)


@cache
def _leased_update(names: tuple[str, ...]) -> Any:
    """Set `names` on a job while its lease token is the stored one (parameters job_id, token, v_<name>)."""
    return (
        update(Job)
        .where(col(Job.id) == bindparam("job_id"), col(Job.lease_token) == bindparam("token"))
        .values({name: bindparam(f"v_{name}") for name in names})
    )
